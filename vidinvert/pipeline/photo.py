"""The photo job: a photo is a one-frame clip with any number of faces.

``edit_photo`` reads the photo upright (:func:`vidinvert.imagefile.read_photo`), detects every
face, numbers them left to right and keeps the ``--face`` choice, FFHQ-aligns them all, inverts
them as ONE batch ``[faces,3,S,S]`` (halved when memory runs out: :mod:`vidinvert.memory`),
edits (``w~ = w + S*delta``, ``F~ = F + G_K(w~) - G_K(w)``, G_K(w) computed once for all
edits), synthesizes, pastes the faces back in depth order with
non-bleeding masks (:func:`vidinvert.face.paste.paste_faces_depth`) and writes each output in
the source's kind (:func:`vidinvert.imagefile.write_photo`). Nothing is written when a photo has
no face. Memory: the source, one output image and per-face boxes (no full-size float copies).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vidinvert.choices import PasteMode
from vidinvert.edit.directions import EditSpec
from vidinvert.engine import Inverter, Latents
from vidinvert.errors import VidinvertError
from vidinvert.face.align import warp_faces
from vidinvert.face.detect import FaceDetector, make_detector
from vidinvert.face.masks import outline_masks
from vidinvert.face.paste import blend_rgb, combine_masks, depth_fields
from vidinvert.face.regions import feature_grid_mask
from vidinvert.face.select import NumberedFace, check_min_face, find_faces
from vidinvert.face.stage import to_crop_normalised
from vidinvert.face.types import FaceSelect, parse_face_select
from vidinvert.fileio import atomic_path, check_output
from vidinvert.imagefile import check_photo_output, read_photo, write_photo
from vidinvert.memory import BatchSize, batch_report
from vidinvert.metrics.identity import measure_label, measure_of, paired_identity
from vidinvert.pipeline.composite import composite_field, composite_grey_field, rgb16_planes
from vidinvert.pipeline.edits import EditPlan, style_offsets
from vidinvert.pipeline.request import EditRequest
from vidinvert.pipeline.settings import JobSettings
from vidinvert.timespec import Keyframes

log = logging.getLogger(__name__)

#: output tag of the reconstruction (``vidinvert invert photo.jpg``): pasted in full
INVERSION = "inversion"
#: smallest face the photo detector looks for, as a fraction of the photo's shorter side
PHOTO_MIN_FACE = 0.04
_D = EditRequest.defaults()


@dataclass(frozen=True)
class PhotoFace:
    """One edited face: ``index`` its number from the left, ``box`` the detector's box (x0, y0, x1,
    y1, pixels of the upright photo), ``quad`` the FFHQ crop corners ``[4,2]`` (tuple of pairs),
    ``identity`` per output tag the similarity of the pasted face's crop to the source crop
    (``paired_identity``: cosine of the embeddings; absent without an embedder)."""

    index: int
    box: tuple[float, float, float, float]
    quad: tuple[tuple[float, float], ...]
    score: float
    identity: dict[str, float] = field(default_factory=dict)
    identity_to_reference: dict[str, float] = field(default_factory=dict)  # --style: to the reference crop

    def as_dict(self) -> dict:
        out = {"index": self.index, "box": [round(v, 2) for v in self.box],
               "quad": [[round(x, 3), round(y, 3)] for x, y in self.quad], "score": round(self.score, 4),
               "identity_to_source": {k: round(v, 4) for k, v in self.identity.items()}}
        if self.identity_to_reference:
            out["identity_to_reference"] = {k: round(v, 4) for k, v in self.identity_to_reference.items()}
        return out


@dataclass
class PhotoResult:
    """What :func:`edit_photo` did: outputs written (tag -> path), faces edited, faces detected,
    the photo's kind, the identity embedder's name and per-stage seconds (``networks`` = encoder +
    G_K + generator, ``rest`` = everything else)."""

    source: Path
    outputs: dict[str, Path]
    faces: list[PhotoFace]
    detected: int
    photo: str
    embedder: str | None
    timings: dict[str, float]
    latents: Path | None = None
    batch: dict | None = None  # the face batches (vidinvert.memory.batch_report)

    def as_dict(self) -> dict:
        """JSON-ready summary (for run.json and ``--report``)."""
        return {"source": str(self.source), "photo": self.photo,
                "outputs": {k: str(v) for k, v in self.outputs.items()},
                "faces_detected": self.detected, "faces": [f.as_dict() for f in self.faces],
                "identity_embedder": self.embedder, "identity_measure": measure_label(measure_of(self.embedder)),
                "latents": None if self.latents is None else str(self.latents), "batch_size": self.batch,
                "timings_s": {k: round(v, 4) for k, v in self.timings.items()}}


def make_photo_detector(kind: str = "auto", weights_dir: Path | str | None = None,
                        device: torch.device | str = "cpu", min_face: float = 0.0) -> FaceDetector:
    """The detector for photos: looks for faces down to ``PHOTO_MIN_FACE`` of the shorter side
    (and ``min_face`` px when larger than 20), with the usual ``--detector`` choice."""
    return make_detector(kind, weights_dir, device, min_face=PHOTO_MIN_FACE, min_face_px=max(20.0, float(min_face)))


@dataclass(frozen=True, kw_only=True)
class PhotoConfig:
    """How the faces of a photo are chosen, pasted and written; the defaults are the request's
    (:meth:`from_settings` makes it from a job's resolved settings). ``detector``: a built
    :class:`FaceDetector` or a ``--detector`` name."""

    face_select: str | int | FaceSelect = _D["face"]
    detector: FaceDetector | str = str(_D["detector"])
    paste_mode: str = str(_D["paste"])
    color_match: bool = _D["color_match"]
    min_face: float = _D["min_face"]
    overwrite: bool = _D["overwrite"]
    weights_dir: Path | str | None = _D["weights_dir"]
    mask_size: int = 256

    @classmethod
    def from_settings(cls, s: JobSettings) -> PhotoConfig:
        r = s.request
        return cls(face_select=r.face, detector=str(r.detector), paste_mode=str(r.paste), color_match=r.color_match,
                   min_face=r.min_face, overwrite=r.overwrite, weights_dir=r.weights_dir)


def _validate(edits: Sequence[EditSpec], strength, cfg: PhotoConfig, outputs: Mapping[str, Path], plan=None) -> None:
    """The values of a direct library call (a job's were checked by its request): the same rules."""
    if isinstance(strength, Keyframes):
        raise VidinvertError("--strength keyframes apply to videos; give a single number for images")
    if not math.isfinite(float(strength)):
        raise VidinvertError(f"--strength {strength}: give a finite number")
    PasteMode.parse(cfg.paste_mode, "--paste")
    if not outputs:
        raise ValueError("edit_photo: no outputs")
    names = {e.name for e in edits}
    for tag in outputs:
        if tag != INVERSION and tag not in names and not (plan is not None and plan.style is not None):
            raise ValueError(f"edit_photo: output {tag!r} is neither {INVERSION!r} nor an edit ({sorted(names)})")


def edit_photo(inverter: Inverter, photo_path: str | Path, *, outputs: Mapping[str, Path],
               edits: Sequence[EditSpec] = (), plan: EditPlan | None = None, strength: float = 3.0,
               masker=None, embedder=None, save_latents: Path | None = None, config: PhotoConfig | None = None,
               **config_fields) -> PhotoResult:
    """Invert/edit the chosen faces of one photo and write every output.

    outputs: tag -> path; a tag is an edit's name (``EditSpec.name``) or :data:`INVERSION` (the
    reconstruction, pasted in full). config: a :class:`PhotoConfig` (face choice, detector, paste,
    min face, overwrite, weights folder); ``config_fields`` override its fields (``face_select="all"``,
    ``detector=built_detector``). masker: a ``ParsingMasker`` or None (landmark masks). embedder: an
    identity embedder (``.embed``/``.name``) or None (no identity figures). save_latents: an ``.npz``
    path (see README). plan: the job's :class:`~vidinvert.pipeline.edits.EditPlan` (feature keep,
    regions, style; its strength replaces ``strength``); an output tag without an edit in ``edits``
    is then the style alone.
    Raises :class:`VidinvertError` ("PATH: no face found", bad options, unwritable outputs)
    before anything is written.
    """
    cfg = dataclasses.replace(config or PhotoConfig(), **config_fields)
    overwrite = cfg.overwrite
    t_start = time.perf_counter()
    src_path = Path(photo_path)
    if plan is None:
        plan = EditPlan(strength=strength)
    _validate(edits, plan.strength, cfg, outputs, plan)
    parse_face_select(cfg.face_select)
    check_min_face(cfg.min_face)
    dests = {tag: check_output(Path(p), overwrite=overwrite, inputs=[src_path]) for tag, p in outputs.items()}
    if save_latents is not None:
        check_output(Path(save_latents), overwrite=overwrite, inputs=[src_path])
    timings: dict[str, float] = {}

    def tick(stage: str, t0: float) -> float:
        now = time.perf_counter()
        timings[stage] = timings.get(stage, 0.0) + now - t0
        return now

    t = time.perf_counter()
    photo = read_photo(src_path)
    for p in dests.values():
        check_photo_output(photo, p)
    t = tick("read", t)
    chosen, detected, quads, src = photo_faces(inverter, photo, cfg, str(src_path), tick=tick)
    dev = inverter.compute.device
    t = time.perf_counter()
    tags = [tag for tag in dests if tag != INVERSION]
    # every face in one batch; halved when memory runs out (vidinvert.memory), kept for the photo
    face_batch = BatchSize(None, "faces", source=src_path.name, device=dev)
    lat, recon, edited_lat, edited, region = face_batch.map_rows(
        len(chosen), lambda rows: photo_networks(inverter, src[rows], chosen[rows], tags, edits, plan))
    t = tick("networks", t)

    written, identity = _paste_and_write(photo, chosen, quads, src, recon, edited, dests, region, tick, masker=masker,
                                         cfg=cfg, embedder=embedder, face_batch=face_batch)
    latents_path = None
    if save_latents is not None:
        latents_path = _save_latents(Path(save_latents), chosen, lat, edited_lat, photo.size, src_path, overwrite)
    to_ref: dict[str, list[float]] = {}
    if embedder is not None and plan.style is not None and plan.style.crop is not None:
        ref = plan.style.crop.to(dev).expand(len(chosen), -1, -1, -1)
        to_ref = {tag: _identity(embedder, ref, img, face_batch) for tag, img in edited.items()}
    faces = [PhotoFace(c.number, tuple(float(v) for v in c.face.box),
                       tuple((float(x), float(y)) for x, y in c.quad), c.face.score,
                       {tag: vals[k] for tag, vals in identity.items()},
                       {tag: vals[k] for tag, vals in to_ref.items()}) for k, c in enumerate(chosen)]
    timings["total"] = time.perf_counter() - t_start
    timings["rest"] = timings["total"] - timings["networks"]
    return PhotoResult(src_path, written, faces, detected, photo.describe(),
                       getattr(embedder, "name", None) if embedder is not None else None, timings, latents_path,
                       batch_report([face_batch]))


def photo_faces(inverter: Inverter, photo, cfg: PhotoConfig, what: str, *, tick=None):
    """Find the chosen faces of ``photo`` (numbered from the left; ``cfg.face_select``, ``min_face``)
    and FFHQ-align them: ``(chosen faces, faces detected, quads [N,4,2], crops [N,3,S,S] in [-1,1])``.
    ``tick(stage, t0)`` records timings ("detect", "align")."""
    t = time.perf_counter()
    detector = cfg.detector
    if isinstance(detector, str):
        detector = make_photo_detector(detector, cfg.weights_dir, inverter.compute.device, cfg.min_face)
    chosen, detected = find_faces(photo.rgb, detector, parse_face_select(cfg.face_select),
                                  check_min_face(cfg.min_face), what=what)
    if tick is not None:
        t = tick("detect", t)
    quads = np.stack([c.quad for c in chosen])
    src = warp_faces([photo.rgb] * len(chosen), quads, inverter.size, device=inverter.compute.device)
    if tick is not None:
        tick("align", t)
    return chosen, detected, quads, src


def photo_networks(inverter: Inverter, src: torch.Tensor, chosen: Sequence[NumberedFace], tags: Sequence[str],
                   edits: Sequence[EditSpec], plan: EditPlan):
    """The networks' part of a photo: the faces' crops ``src`` ``[N,3,S,S]`` in [-1,1] inverted as one
    batch, reconstructed, and edited for each output tag (:func:`photo_edits`). Returns ``(latents,
    recon [N,3,S,S], edited latents {tag: Latents}, edited images {tag: [N,3,S,S]}, region masks
    [N,1,s,s] or None)``."""
    lat = inverter.invert(src)
    recon = inverter.synthesize(lat)
    edited_lat, edited, region = photo_edits(inverter, src, chosen, lat, tags, edits, plan)
    return lat, recon, edited_lat, edited, region


def photo_edits(inverter: Inverter, src: torch.Tensor, chosen: Sequence[NumberedFace], lat: Latents,
                tags: Sequence[str], edits: Sequence[EditSpec], plan: EditPlan):
    """Each output tag's edit of the faces' latents ``lat`` and its synthesis (a tag without an edit in
    ``edits`` is the style alone): ``(edited latents {tag: Latents}, images {tag: [N,3,S,S]}, region
    masks [N,1,s,s] or None)``."""
    dev = inverter.compute.device
    by_name = {e.name: e for e in edits}
    region = None
    if plan.regions is not None:
        lm = [to_crop_normalised(c.quad, c.face.landmarks) for c in chosen]
        region = plan.regions.masks(lm, src, device=dev)
    outs = [(tag, by_name.get(tag)) for tag in tags]
    n = len(chosen)
    edited_lat = plan.edit_batch(inverter, lat, outs, [(0, 0.0)] * n, [1.0] * n,
                                 None if region is None else feature_grid_mask(region)) if outs else {}
    edited = {tag: inverter.synthesize(le) for tag, le in edited_lat.items()}
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return edited_lat, edited, region


def photo_masks(chosen, src: torch.Tensor, img: torch.Tensor, *, masker, mask_size: int) -> torch.Tensor:
    """The faces' paste masks ``[N,1,m,m]``: parsing of the source and the synthesis (the union), or
    the landmarks' outline without parsing weights."""
    if masker is not None:
        return masker.masks(src, img, size=mask_size)
    lm = [to_crop_normalised(c.quad, c.face.landmarks) for c in chosen]
    return outline_masks(lm, mask_size, device=src.device)


def paste_photo(photo, chosen, quads, src, recon, img, region, *, inversion: bool, cfg: PhotoConfig,
                masker, mask: torch.Tensor | None = None) -> np.ndarray:
    """One output's full photo, uint8 RGB ``[H,W,3]``: the faces' syntheses ``img`` ``[N,3,S,S]`` pasted
    back in depth order (the reconstruction in full; edits by ``cfg.paste_mode``, inside ``region``).
    ``mask``: the faces' masks when already made (:func:`photo_masks`)."""
    return paste_photo_samples(photo, chosen, quads, src, recon, img, region, inversion=inversion, cfg=cfg,
                               masker=masker, mask=mask)[0]


def paste_photo_samples(photo, chosen, quads, src, recon, img, region, *, inversion: bool, cfg: PhotoConfig,
                        masker, mask: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`paste_photo` and, for a 16-bit photo, the same faces composited into its 16-bit samples
    (the delta added to the 16-bit source: :mod:`vidinvert.pipeline.composite`): uint16 ``[H,W,3]`` for
    colour, ``[H,W]`` for greyscale (:func:`~vidinvert.pipeline.composite.composite_grey_field`); None
    for 8-bit photos."""
    mode = "full" if inversion else cfg.paste_mode
    if mask is None:
        mask = photo_masks(chosen, src, img, masker=masker, mask_size=cfg.mask_size)
    if region is not None and not inversion:
        mask = combine_masks(mask, region)
    fields = depth_fields(photo.rgb.shape[:2], quads, img, mask, mode=mode, recon=recon,
                          color_reference=src if (cfg.color_match and mode == "full") else None)
    rgb = photo.rgb.copy()
    for fld in fields:
        blend_rgb(rgb, fld)
    if photo.high is None:
        return rgb, None
    if photo.grey:
        grey = photo.high.copy()
        for fld in fields:
            composite_grey_field(grey, fld)
        return rgb, grey
    deep = rgb16_planes(photo.high)
    for fld in fields:
        composite_field(deep, fld)
    return rgb, np.stack([deep.data[i] for i in deep.rgb_planes], -1)


def _paste_and_write(photo, chosen, quads, src, recon, edited, dests, region, tick, *, masker, cfg: PhotoConfig,
                     embedder, face_batch: BatchSize):
    """Every output: its faces pasted back (:func:`paste_photo`), written in kind; the identity per face."""
    identity: dict[str, list[float]] = {}
    written: dict[str, Path] = {}
    for tag, dest in dests.items():
        t = time.perf_counter()
        img = recon if tag == INVERSION else edited[tag]
        mask = face_batch.map_rows(len(src), lambda rows, img=img: photo_masks(
            chosen[rows], src[rows], img[rows], masker=masker, mask_size=cfg.mask_size))
        t = tick("masks", t)
        rgb, high = paste_photo_samples(photo, chosen, quads, src, recon, img, region, inversion=tag == INVERSION,
                                        cfg=cfg, masker=masker, mask=mask)
        t = tick("paste", t)
        written[tag] = write_photo(dest, photo, rgb, overwrite=cfg.overwrite, high=high)
        del rgb, high
        t = tick("write", t)
        if embedder is not None:
            identity[tag] = _identity(embedder, src, img, face_batch)
            tick("identity", t)
    return written, identity


def _identity(embedder, src: torch.Tensor, img: torch.Tensor, face_batch: BatchSize) -> list[float]:
    """Per-face identity of ``img`` to the source crops (the embedder's measure: cosine for ArcFace,
    1/0 for within/beyond 0.6 for dlib), in the photo's face batches."""
    def rows(r: slice) -> torch.Tensor:
        e_src, e_img = embedder.embed(src[r]), embedder.embed(img[r].clamp(-1, 1))
        return paired_identity(e_src, e_img, getattr(embedder, "measure", "cosine"))

    return [float(v) for v in face_batch.map_rows(len(src), rows)]


def _save_latents(path: Path, chosen: list[NumberedFace], lat: Latents, edited: dict[str, Latents],
                  image_size: tuple[int, int], source: Path, overwrite: bool) -> Path:
    """``.npz``: ``w`` [N,L,D], ``f`` [N,C,16,16] float32, ``quad`` [N,4,2], ``face_index`` [N],
    ``box`` [N,4], ``image_size`` (W,H), ``source``; with edits ``w_edit``/``f_edit`` [N,E,...] and
    ``edits`` [E] names, and with StyleSpace edits ``s_edit`` [N,E,N_s] (their style offsets)."""
    arrays = {
        "w": lat.w.detach().cpu().float().numpy(), "f": lat.f.detach().cpu().float().numpy(),
        "quad": np.stack([c.quad for c in chosen]).astype(np.float64),
        "face_index": np.array([c.number for c in chosen], np.int64),
        "box": np.stack([c.face.box for c in chosen]).astype(np.float64),
        "image_size": np.array(image_size, np.int64), "source": np.array(str(source)),
    }
    if edited:
        arrays["w_edit"] = torch.stack([v.w.detach().cpu().float() for v in edited.values()], 1).numpy()
        arrays["f_edit"] = torch.stack([v.f.detach().cpu().float() for v in edited.values()], 1).numpy()
        arrays["edits"] = np.array(list(edited))
        if (ds := style_offsets(list(edited.values()))) is not None:
            arrays["s_edit"] = ds
    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def edit_photos(inverter: Inverter, jobs: Sequence[tuple[Path, Mapping[str, Path]]], *,
                save_latents: Sequence[Path | None] | None = None,
                **options) -> list[PhotoResult | VidinvertError]:
    """Several photos with the same options: ``jobs`` = (photo, outputs) pairs; a photo that fails
    with a :class:`VidinvertError` (no face, unreadable file) is returned as that error and the
    others still run. ``options``: the keyword arguments of :func:`edit_photo`."""
    results: list[PhotoResult | VidinvertError] = []
    if isinstance(options.get("detector", "auto"), str):
        options["detector"] = make_photo_detector(options.get("detector", "auto"), options.get("weights_dir"),
                                                  inverter.compute.device, options.get("min_face", 0.0))
    for k, (path, outs) in enumerate(jobs):
        lat = save_latents[k] if save_latents is not None else None
        try:
            results.append(edit_photo(inverter, path, outputs=outs, save_latents=lat, **options))
        except VidinvertError as exc:
            log.error(str(exc))
            results.append(exc)
    return results
