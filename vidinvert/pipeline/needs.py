"""The files a request needs, checked before anything loads (torch-free).

A first run without model files should say, at once and briefly, everything it lacks: the encoder,
the generator, each ``--attr``/``--keep`` direction, the face detector (the RetinaFace file or the
``.[faces]`` extra) and the one command that fetches what can be fetched. :func:`check_needed_files`
raises one :class:`~vidinvert.errors.VidinvertError` with at most three detail lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vidinvert.choices import Detector
from vidinvert.errors import VidinvertError
from vidinvert.pipeline.request import PHOTO, VIDEO, EditRequest, InvertRequest
from vidinvert.weights.directions import registry_name, resolve_attr
from vidinvert.weights.registry import REGISTRY, find, generator_file, install_dir, require, resolve_file

FACES_EXTRA = "pip install 'vidinvert[faces]' (dlib)"


@dataclass(frozen=True)
class Missing:
    """One file a run lacks: ``what`` (``encoder``, ``direction smile`` ...), ``file`` its name,
    ``fetch`` the registry entry that downloads it (None: place it by hand)."""

    what: str
    file: str
    fetch: str | None = None
    error: VidinvertError | None = None  # the one-line error the file's own lookup gave

    @property
    def direction(self) -> bool:
        return self.what.startswith("direction ")

    def describe(self) -> str:
        return f"{self.what} ({self.file})" if self.fetch else f"{self.what} ({self.file}: no download known)"


def _model(arg: str | None, default: str, what: str, weights_dir: Path | None) -> Missing | None:
    name = default if arg is None or str(arg) in REGISTRY else None
    try:
        if what == "generator":
            generator_file(arg, weights_dir)
        else:
            resolve_file(arg, default, weights_dir)
        return None
    except VidinvertError as exc:
        if name is None:
            return Missing(what, f"{arg} not found", error=exc)
        spec = REGISTRY[str(arg) if arg is not None else default]
        return Missing(f"{what} {spec.name}", spec.filename, spec.name, error=exc)


def _direction(name: str, weights_dir: Path | None) -> Missing | None:
    if Path(name).suffix in (".npy", ".pt", ".pth") or Path(name).exists():
        return None if Path(name).is_file() else Missing(f"direction {name}", "file not found")
    try:
        resolve_attr(name, weights_dir)
        return None
    except VidinvertError as exc:
        entry = registry_name(name)
        if entry is None:
            return Missing(f"direction {name}", f"{name}.npy", error=exc)
        return Missing(f"direction {name}", REGISTRY[entry].filename, entry, error=exc)


def _detector_missing(req: InvertRequest) -> str | None:
    """What the face detector lacks, or None (dlib installed, or the RetinaFace file found)."""
    from vidinvert.face.dlib_models import dlib_available

    retina = find("retinaface", req.weights_dir) is not None
    if req.detector == Detector.RETINAFACE:
        return None if retina else f"face detector retinaface ({REGISTRY['retinaface'].filename})"
    if req.detector == Detector.DLIB:
        return None if dlib_available() else f"face detector dlib: {FACES_EXTRA}"
    if retina or dlib_available():
        return None
    return f"face detector: {FACES_EXTRA}, or retinaface ({REGISTRY['retinaface'].filename})"


def _text_files(req: EditRequest) -> list[Missing]:
    """``--text`` needs CLIP and a relevance matrix (StyleCLIP's unless ``--text-matrix``)."""
    if not req.text:
        return []
    out = []
    for entry, needed in (("clip-vit-b32", True), ("styleclip-fs3-ffhq", req.text_matrix is None)):
        if needed and find(entry, req.weights_dir) is None:
            spec = REGISTRY[entry]
            try:
                require(entry, req.weights_dir)
            except VidinvertError as exc:
                out.append(Missing(f"--text file {entry}", spec.filename, entry, error=exc))
    return out


def text_extra_missing(req: InvertRequest) -> str | None:
    """``--text`` without the open_clip library: the extra to install."""
    import importlib.util

    if isinstance(req, EditRequest) and req.text and importlib.util.find_spec("open_clip") is None:
        return "text edits (--text) need CLIP: pip install 'vidinvert[text]'"
    return None


def missing_files(req: InvertRequest, kinds: set[str]) -> tuple[list[Missing], str | None]:
    """The model and direction files ``req`` lacks for inputs of ``kinds``, and what the face
    detector lacks (None when nothing)."""
    missing = [m for m in (_model(req.encoder, "fs-encoder", "encoder", req.weights_dir),
                           _model(req.generator, "stylegan2-ffhq", "generator", req.weights_dir)) if m]
    detector = None
    if isinstance(req, EditRequest):
        missing += [m for n in dict.fromkeys((*req.attr, *req.keep)) if (m := _direction(n, req.weights_dir))]
        missing += _text_files(req)
    needs_faces = bool(kinds & {VIDEO, PHOTO}) or (isinstance(req, EditRequest) and req.style is not None
                                                     and not req.no_align)
    if needs_faces:
        detector = _detector_missing(req)
    return missing, detector


def check_needed_files(req: InvertRequest, kinds: set[str]) -> None:
    """Raise one error naming every file the run lacks, where each goes and the one command that
    fetches them (at most three short detail lines); nothing when all are there. One missing file
    alone is its own lookup's one-line error (where to place it, how to fetch it), and so is a direction
    name that no file here and no download provides (with the names that have a file)."""
    extra = text_extra_missing(req)
    if extra is not None:
        raise VidinvertError(extra)
    missing, detector = missing_files(req, kinds)
    if not missing and detector is None:
        return
    for m in missing:  # a direction name nothing provides is a wrong name (a typo?), not a file to fetch
        if m.direction and m.fetch is None and m.error is not None:
            raise m.error
    if len(missing) == 1 and detector is None and missing[0].error is not None:
        raise missing[0].error
    details = []
    if missing:
        details.append("missing: " + ", ".join(m.describe() for m in missing))
    if detector is not None:
        details.append(detector)
    fetch = [m.fetch for m in missing if m.fetch]
    if detector is not None and detector.startswith("face detector retinaface"):
        fetch.append("retinaface")
    if fetch:
        gated = any(REGISTRY[n].research_only for n in fetch)
        details.append("fetch: vidinvert weights download " + " ".join(dict.fromkeys(fetch))
                       + (" --accept-license (licences are printed first)" if gated else ""))
    where = install_dir(req.weights_dir)
    raise VidinvertError(f"this run needs files that are not here: place them in {where} (or pass --weights-dir)",
                         details=tuple(details))
