"""Before any model loads: classify, probe and name the outputs of every input of a request.

:func:`plan_inputs` reads only file headers (PyAV for clips, Pillow for images) and imports no
torch, so a run whose inputs are all bad ends in about a second with one line per bad input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vidinvert.errors import VidinvertError
from vidinvert.fileio import check_output
from vidinvert.imagefile import is_image_path
from vidinvert.mediatypes import OUTPUT_VIDEO_SUFFIXES
from vidinvert.pipeline.request import ALIGNED, PHOTO, VIDEO, InvertRequest


@dataclass
class PlannedInput:
    """One input: its kind, its output per tag (in the request's tag order), and the reason it
    cannot be processed (``error``), if any."""

    source: Path
    kind: str
    outputs: dict[str, Path] = field(default_factory=dict)
    error: str | None = None


def video_output_path(src: Path, tag: str, output: Path | None, out_dir: Path | None, preview: bool) -> Path:
    """``clip.mp4`` + ``smile`` -> ``clip.smile.mp4`` (``.preview`` before the suffix for previews)."""
    if output is not None:
        return output
    suffix = src.suffix.lower() if src.suffix.lower() in OUTPUT_VIDEO_SUFFIXES else ".mp4"
    tag = f"{tag}.preview" if preview else tag
    return (out_dir or src.parent) / f"{src.stem}.{tag}{suffix}"


def image_output_path(src: Path, tag: str, output: Path | None, out_dir: Path | None) -> Path:
    """``face.png`` + ``smile`` -> ``face.smile.png`` (in ``out_dir`` or next to the input)."""
    if output is not None:
        return output
    return (out_dir or src.parent) / f"{src.stem}.{tag}{src.suffix}"


def input_kind(path: Path, no_align: bool) -> str:
    if is_image_path(path):
        return ALIGNED if no_align else PHOTO
    return VIDEO


def _probe(p: PlannedInput) -> None:
    """Read the input's header; raise VidinvertError with the reason it cannot be used."""
    src = p.source
    if not src.exists():
        raise VidinvertError("input not found")
    if src.is_dir():
        raise VidinvertError("is a folder, not a file")
    if p.kind == VIDEO:
        from vidinvert.video.probe import probe

        probe(src, count_frames=False)
        return
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(src) as im:
            w, h = im.size
    except UnidentifiedImageError:
        raise VidinvertError("not an image file (or an unsupported format)") from None
    except OSError as exc:
        raise VidinvertError(f"cannot read the image ({exc})") from None
    if p.kind == ALIGNED and w != h:
        raise VidinvertError(f"{w}x{h} is not a square aligned face; --no-align expects FFHQ-aligned square crops")


def _outputs(req: InvertRequest, p: PlannedInput) -> dict[str, Path]:
    outs = {}
    for tag in req.tags:
        if p.kind == VIDEO:
            path = video_output_path(p.source, tag, req.output, req.out_dir, req.preview)
            if path.suffix.lower() not in OUTPUT_VIDEO_SUFFIXES:
                raise VidinvertError(f"{path}: unsupported output type: use .mp4, .mov or .mkv")
        else:
            path = image_output_path(p.source, tag, req.output, req.out_dir)
        outs[tag] = path
    return outs


def check_planned_outputs(req: InvertRequest, p: PlannedInput, others: list[Path]) -> None:
    """Each output checked: a known type, not an input, not existing without ``overwrite``."""
    from vidinvert.imagefile import IMAGE_SUFFIXES

    for path in p.outputs.values():
        if p.kind != VIDEO and path.suffix.lower() not in IMAGE_SUFFIXES:
            raise VidinvertError(f"{path}: unsupported image output type: use .png or .jpg")
        check_output(path, overwrite=req.overwrite, inputs=others)


def plan_inputs(req: InvertRequest) -> list[PlannedInput]:
    """Every input classified and probed and its outputs named and checked, before any model loads.

    A request-wide problem (an option that does not apply to an input kind, a raw photo where
    photos are not supported) raises; a problem of one input is recorded in its ``error``.
    """
    planned = [PlannedInput(src, input_kind(src, req.no_align)) for src in req.inputs]
    kinds: dict[str, Path] = {}
    for p in planned:
        kinds.setdefault(p.kind, p.source)
    req.refuse_inapplicable(kinds)
    if VIDEO in kinds:
        from vidinvert.video.writer import check_encoder_available

        check_encoder_available(req.for_kind(VIDEO).codec)
    if req.out_dir is not None:
        req.out_dir.mkdir(parents=True, exist_ok=True)
    for p in planned:
        try:
            _probe(p)
            p.outputs = _outputs(req, p)
            check_planned_outputs(req, p, list(req.inputs))
        except VidinvertError as exc:
            p.error = exc.message
    seen: dict[Path, Path] = {}
    for p in planned:
        for path in p.outputs.values():
            key = path.resolve()
            if p.error is None and key in seen:
                p.error = f"its output {path} is also the output of {seen[key]}: use --out-dir with distinct names"
            seen.setdefault(key, p.source)
    if req.report is not None and len(req.inputs) > 1 and not req.report.is_dir():
        raise VidinvertError("--report with several inputs must be an existing folder")
    return planned
