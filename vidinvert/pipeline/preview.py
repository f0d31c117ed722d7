"""``vidinvert directions preview``: a labelled contact sheet of directions x strengths for one face.

One row per direction, one column per strength. Rows are w+ directions (``--attr``, ``.npy``),
StyleSpace directions (``.npz``) and single channels (``--channel L_C[=S]``, one row each: the cell
of column c moves the channel by c * S standard deviations; default columns -10..10). The face is a raw photo (detected and
FFHQ-aligned), an aligned crop (``no_align``) or one frame of a clip (``at``). It is inverted
once; per direction only the edit (w~, the early-exit G_K(w~)) and the syntheses of all its
strengths (one batch) run. ``preview_size`` renders the generator's intermediate skip RGB at that
resolution instead of the full image (faster; labelled on the sheet). Beside the PNG a JSON
layout gives the image size, rows, columns, strengths and every cell's box ``[x0, y0, x1, y1)``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vidinvert.convert import to_tensor, to_uint8
from vidinvert.edit.conditional import restrict_and_condition
from vidinvert.edit.directions import (
    EDIT_STEP,
    Direction,
    load_direction,
    load_named,
    resolve_attr,
)
from vidinvert.edit.layers import default_strengths
from vidinvert.engine import Inverter, Latents
from vidinvert.errors import VidinvertError
from vidinvert.face.detect import make_detector
from vidinvert.face.geometry import PixelGeometry
from vidinvert.face.single import align_single
from vidinvert.fileio import check_output, write_json
from vidinvert.imagefile import is_image_path, read_image, write_image
from vidinvert.models.stylespace import is_style_direction_path, parse_channels, read_style_direction
from vidinvert.pipeline.contact_sheet import compose_sheet
from vidinvert.pipeline.style_edits import resolve_styles
from vidinvert.pipeline.text_edits import text_styles
from vidinvert.specs import TEXT_BETA, TEXT_NEUTRAL
from vidinvert.timespec import parse_time
from vidinvert.video.random_access import RandomAccessVideo

#: Default columns of a sheet of StyleSpace rows: standard deviations per unit of S.
STYLE_STRENGTHS = (-10.0, -5.0, 0.0, 5.0, 10.0)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreviewRequest:
    """A contact sheet. ``attrs`` (names resolved like ``--attr``) and ``directions`` (files) give the
    rows, in that order; ``keep`` (names or files) conditions every row (see edit.conditional);
    ``layers`` restricts every row (see edit.layers; S rows keep the layers its rows drive);
    ``channels`` (``L_C[=S]``) add one StyleSpace row each, as ``.npz`` files in ``directions`` do, and so
    does each prompt of ``texts`` (StyleCLIP global directions; columns are α), to compare wordings.
    ``strengths`` None: :func:`default_strengths` (w+ rows) or :data:`STYLE_STRENGTHS` (S rows).
    ``at``: the frame of a clip (``2.5s`` / ``75f``; default the first). ``layout``: default
    ``output`` with ``.json``."""

    input: Path
    output: Path
    attrs: tuple[str, ...] = ()
    directions: tuple[Path, ...] = ()
    strengths: tuple[float, ...] | None = None
    at: str | None = None
    no_align: bool = False
    preview_size: int | None = None
    layers: str | None = None
    keep: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()
    text_neutral: str = TEXT_NEUTRAL
    text_beta: float = TEXT_BETA
    text_matrix: Path | None = None
    face: str = "largest"
    detector: str = "auto"
    weights_dir: Path | None = None
    overwrite: bool = False
    layout: Path | None = None

    @property
    def layout_path(self) -> Path:
        return self.layout or Path(self.output).with_suffix(".json")


def check_preview_request(request: PreviewRequest) -> None:
    """Everything that can be checked before the models load: inputs, outputs, numbers."""
    if not request.attrs and not request.directions and not request.channels and not request.texts:
        raise VidinvertError("nothing to preview: give --attr NAME, --direction FILE.npy, --channel L_C or --text PROMPT")
    for t in request.texts:
        if not str(t).strip():
            raise VidinvertError("--text: an empty prompt")
    parse_channels(request.channels)
    styles = [p for p in request.directions if is_style_direction_path(p)]
    for p in styles:
        read_style_direction(p)
    has_w = bool(request.attrs) or len(styles) < len(request.directions)
    if request.keep and (styles or request.channels or request.texts):
        raise VidinvertError("--keep conditions w+ directions; it cannot be applied to StyleSpace rows "
                             "(--channel or an .npz direction)")
    if has_w and (styles or request.channels or request.texts) and request.strengths is None:
        raise VidinvertError("w+ and StyleSpace rows together need --strengths (their default columns differ: "
                             "about +-3 per w+ row, +-10 standard deviations)")
    if not Path(request.input).exists():
        raise VidinvertError(f"input not found: {request.input}")
    if request.strengths is not None:
        if not request.strengths:
            raise VidinvertError("--strengths is empty: give numbers such as -1,0,1")
        if not all(np.isfinite(s) for s in request.strengths):
            raise VidinvertError("--strengths must be finite numbers")
    if request.preview_size is not None and (request.preview_size < 4 or request.preview_size & (request.preview_size - 1)):
        raise VidinvertError(f"--preview-size must be a power of two (e.g. 256), got {request.preview_size}")
    if request.at is not None and is_image_path(request.input):
        raise VidinvertError("--at picks a frame of a video; the input is an image")
    if request.layout_path == Path(request.output):
        raise VidinvertError("the layout JSON would overwrite the grid image: give a .png output")
    for p in (request.output, request.layout_path):
        check_output(Path(p), overwrite=request.overwrite, inputs=[Path(request.input)])


def preview_directions(request: PreviewRequest, n_latent: int, style_dim: int) -> list[Direction]:
    """The w+ rows: each direction loaded by the one rule, restricted to ``layers``, then conditioned on
    ``keep`` (see :func:`vidinvert.edit.conditional.restrict_and_condition`)."""
    dirs = [load_direction(resolve_attr(a, request.weights_dir)[1], n_latent, style_dim, name=a)
            for a in request.attrs]
    dirs += [load_direction(p, n_latent, style_dim) for p in request.directions if not is_style_direction_path(p)]
    if not dirs:
        return []
    kept = [load_named(k, n_latent, style_dim, request.weights_dir) for k in request.keep]
    return restrict_and_condition(dirs, n_latent=n_latent, layers=request.layers, keep=kept)


def preview_styles(request: PreviewRequest, inverter: Inverter) -> list:
    """The StyleSpace rows (:class:`~vidinvert.edit.stylespace.StyleDirection`): each ``.npz``
    direction, then each channel alone."""
    files = [p for p in request.directions if is_style_direction_path(p)]
    if not files and not request.channels and not request.texts:
        return []
    groups = [(c,) for c in parse_channels(request.channels)]
    out = resolve_styles(inverter, files, groups, layers=request.layers, weights_dir=request.weights_dir)
    return out + text_styles(request.texts, inverter, neutral=request.text_neutral, beta=request.text_beta,
                             text_matrix=request.text_matrix, weights_dir=request.weights_dir, layers=request.layers)


def read_source(request: PreviewRequest) -> tuple[np.ndarray, dict]:
    """The image to preview, uint8 RGB ``[H,W,3]``, and where it came from (file, frame index, time)."""
    if is_image_path(request.input):
        return read_image(request.input), {"file": str(request.input), "frame": None, "time": None}

    point = parse_time(request.at if request.at is not None else "0f", what="--at")
    with RandomAccessVideo(request.input) as video:
        if point.frame is not None:
            index = point.frame
            if index >= len(video):
                raise VidinvertError(f"--at {request.at}: the clip has {len(video)} frames")
        else:
            times = video.times
            if point.seconds > float(times[-1]) + 1e-6:
                raise VidinvertError(f"--at {request.at}: the clip ends at {float(times[-1]):.3f}s")
            index = int(np.searchsorted(times, point.seconds + 1e-6, side="right") - 1)
        frame = video.get(max(index, 0))
        geometry = PixelGeometry.for_frames(video.info.pixel_aspect, frame.rgb.shape[1])
    # as displayed (anamorphic clips): the preview shows crops only, nothing goes back into the frame
    return geometry.display_image(frame.rgb), {"file": str(request.input), "frame": frame.index, "time": frame.time}


def face_crop(rgb: np.ndarray, request: PreviewRequest, size: int, device) -> torch.Tensor:
    """The aligned face ``[1,3,size,size]`` in [-1,1]: detected and aligned, or (``no_align``) the
    square image itself resized to ``size``."""
    if request.no_align:
        h, w = rgb.shape[:2]
        if h != w:
            raise VidinvertError(f"{request.input}: {w}x{h} is not a square aligned face (--no-align)")
        t = to_tensor(rgb, device)
        if h != size:
            t = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", antialias=h > size,
                                                align_corners=False)
        return t
    detector = make_detector(request.detector, request.weights_dir, device="cpu")
    crop, _ = align_single(rgb, detector, face=request.face, size=size)
    return crop.to(device)


@torch.inference_mode()
def render_rows(inverter: Inverter, crop: torch.Tensor, directions: list, strengths: tuple[float, ...],
                preview_size: int | None = None, progress: Callable[[int, int], None] | None = None) -> list[np.ndarray]:
    """Invert ``crop`` once, then per direction (a w+ :class:`Direction` or a
    :class:`~vidinvert.edit.stylespace.StyleDirection`) edit and synthesize every strength in one batch.
    Returns one uint8 ``[len(strengths), R, R, 3]`` array per direction (R = preview_size or size);
    ``progress(rows done, rows)`` after each row."""
    latents = inverter.invert(crop)
    g_k_w = inverter.feature_at_k(latents.w)
    n = len(strengths)
    s = torch.tensor(strengths, dtype=torch.float32, device=latents.w.device)
    rep = Latents(latents.w.expand(n, -1, -1), latents.f.expand(n, -1, -1, -1))
    rows = []
    for d in directions:
        if isinstance(d, Direction):
            edited = inverter.edit(rep, d.vector * EDIT_STEP, s, g_k_w=g_k_w.expand(n, -1, -1, -1))
        else:
            edited = inverter.edit(rep, None, s, g_k_w=g_k_w.expand(n, -1, -1, -1), style_delta=d.delta)
        rows.append(to_uint8(synthesize_at(inverter, edited, preview_size)))
        if progress is not None:
            progress(len(rows), len(directions))
    return rows


def synthesize_at(inverter: Inverter, latents: Latents, preview_size: int | None) -> torch.Tensor:
    """``G(w, F)`` at full size, or the generator's skip RGB at ``preview_size`` ([B,3,R,R] float32)."""
    if preview_size is None or preview_size == inverter.size:
        return inverter.synthesize(latents)
    if preview_size > inverter.size:
        raise VidinvertError(f"--preview-size {preview_size} exceeds the generator's {inverter.size} px")
    dev = inverter.compute.device
    with torch.inference_mode(), inverter.compute.autocast():
        img = inverter.generator(latents.w.to(dev), latents.f.to(dev), feature_index=inverter.feature_index,
                                 noise=inverter.noise, rgb_size=preview_size,
                                 style_offset=None if latents.ds is None else latents.ds.to(dev))
    return img.float()


class EarlyExitSynthesis:
    """An :class:`~vidinvert.engine.Inverter` whose ``synthesize`` stops the generator at ``rgb_size``
    (its skip RGB, :func:`synthesize_at`) and upsamples it bilinearly to the full size: a cheap
    preview of a synthesis, ``[B,3,S,S]`` float32. Everything else is the inverter's own.
    ``rgb_size``: a power of two in ``[32, size)`` (below 32 the image would not yet hold the
    feature code F, which enters at 16 px)."""

    def __init__(self, inverter: Inverter, rgb_size: int) -> None:
        if rgb_size < 32 or rgb_size >= inverter.size or rgb_size & (rgb_size - 1):
            raise VidinvertError(f"preview size {rgb_size}: give a power of two from 32 to below {inverter.size}")
        self.inverter, self.rgb_size = inverter, int(rgb_size)

    def __getattr__(self, name: str):
        return getattr(self.inverter, name)

    @torch.inference_mode()
    def synthesize(self, latents: Latents) -> torch.Tensor:
        self.inverter.check_latents("Inverter.synthesize", latents)
        low = synthesize_at(self.inverter, latents, self.rgb_size)
        size = self.inverter.size
        return torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)


def run_preview(inverter: Inverter, request: PreviewRequest,
                progress: Callable[[int, int], None] | None = None) -> dict:
    """Build the sheet and its layout; write both (atomically). Returns a summary (outputs, layout,
    seconds per stage); ``progress(rows done, rows)`` as the rows are rendered."""
    check_preview_request(request)
    t0 = time.perf_counter()
    directions = preview_directions(request, inverter.n_latent, inverter.style_dim)
    styles = preview_styles(request, inverter)
    if request.strengths:
        strengths = tuple(float(s) for s in request.strengths)
    else:
        strengths = default_strengths(directions) if directions else STYLE_STRENGTHS
    directions = [*directions, *styles]
    rgb, origin = read_source(request)
    crop = face_crop(rgb, request, inverter.size, inverter.compute.device)
    t1 = time.perf_counter()
    cells = render_rows(inverter, crop, directions, strengths, request.preview_size, progress)
    t2 = time.perf_counter()

    size = request.preview_size or inverter.size
    note = (f"rendered at {size} px: the generator's intermediate RGB, not the final {inverter.size} px image"
            if size != inverter.size else f"rendered at {size} px")
    title = f"{Path(request.input).name}" + (f" @ frame {origin['frame']}" if origin["frame"] is not None else "")
    sheet, layout = compose_sheet(cells, [d.name for d in directions], strengths, title=f"{title} - {note}")
    layout.update(render_size=size, generator_size=inverter.size, source=origin,
                  directions=[{"name": d.name, "source": d.source,
                               "space": "w+" if isinstance(d, Direction) else "stylespace"} for d in directions],
                  layers=request.layers, keep=list(request.keep))
    write_image(request.output, sheet, overwrite=request.overwrite)
    write_json(request.layout_path, layout)
    t3 = time.perf_counter()
    return {"output": str(request.output), "layout": str(request.layout_path), "rows": len(directions),
            "columns": len(strengths), "strengths": list(strengths), "render_size": size,
            "seconds": {"prepare": t1 - t0, "render": t2 - t1, "write": t3 - t2}}


__all__ = ["EarlyExitSynthesis", "PreviewRequest", "check_preview_request", "face_crop", "preview_directions", "read_source",
           "render_rows", "run_preview", "synthesize_at"]
