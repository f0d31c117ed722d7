"""Style from a reference photo (``--style ref.jpg``, paper Fig. 7).

The feature code F carries the geometry of a face (pose, shape, expression) and the latent code
w+ its appearance (eye colour, make-up, skin tone, lighting). The reference is inverted once;
every frame keeps its own F_t and mixes the chosen rows of its w_t towards the reference::

    w'_t = w_t + A_t * M * (w_ref - w_t)

with M the selected rows (:func:`vidinvert.edit.layers.parse_layers`) and A_t in [0,1]. At
A = 1 the selected rows are exactly w_ref's (``torch.lerp`` is exact at both ends), so over all
rows each frame renders exactly ``G(w_ref, F_t)``. Further edits apply on top of w'_t with the
feature code following eq. (1) from there: ``F~ = F_t + G_K(w'~) - G_K(w')``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vidinvert.convert import to_tensor
from vidinvert.errors import VidinvertError
from vidinvert.face.align import quad_from_face, warp_faces
from vidinvert.imagefile import read_image
from vidinvert.timespec import Keyframes, check_unit_schedule

log = logging.getLogger(__name__)


def style_mix(w: torch.Tensor, w_ref: torch.Tensor, amount: torch.Tensor | float,
              rows_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``w' = w + A * M * (w_ref - w)`` for ``w`` ``[B,L,D]`` and ``w_ref`` ``[1|B,L,D]`` (float32).

    amount: A in [0,1], a float or ``[B]``; rows_mask: ``[L]`` bool (None = every row). Rows
    outside the mask and frames with A = 0 return ``w`` exactly; at A = 1 the selected rows are
    exactly ``w_ref``'s.
    """
    if w_ref.ndim != 3 or w_ref.shape[1:] != w.shape[1:] or w_ref.shape[0] not in (1, w.shape[0]):
        raise ValueError(f"w_ref {tuple(w_ref.shape)} does not match w {tuple(w.shape)}")
    a = torch.as_tensor(amount, dtype=w.dtype, device=w.device)
    if a.ndim == 0:
        a = a.expand(w.shape[0])
    weight = a.reshape(-1, 1, 1).expand(w.shape[0], w.shape[1], 1)
    if rows_mask is not None:
        m = rows_mask.to(device=w.device, dtype=torch.bool).reshape(1, -1, 1)
        weight = torch.where(m, weight, torch.zeros_like(weight))
    ref = w_ref.to(device=w.device, dtype=w.dtype).expand_as(w)
    return torch.lerp(w, ref, weight.expand_as(w))


def check_style_strength(value: float | Keyframes) -> None:
    """``--style-strength``: a finite number (or keyframe values) in [0, 1] (1 takes the reference's w)."""
    check_unit_schedule("--style-strength", value)


def style_amounts(strength: float | Keyframes, frames: Sequence[tuple[int, float]]) -> torch.Tensor:
    """A_t for frames given as ``(index, time_s)``: ``[T]`` float32 (keyframes interpolated)."""
    if isinstance(strength, Keyframes):
        vals = [strength.value_at(i, t) for i, t in frames]
    else:
        vals = [float(strength)] * len(frames)
    return torch.tensor(vals, dtype=torch.float32)


def style_tag(reference: Path | str) -> str:
    """Output tag of a style edit: ``ref.jpg`` -> ``style-ref`` (``clip.style-ref.mp4``)."""
    stem = Path(reference).stem.strip() or "reference"
    return "style-" + "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)


def reference_crop(path: Path | str, size: int, *, detector=None, align: bool = True,
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """The reference photo as an aligned crop ``[1,3,size,size]`` float32 RGB in [-1,1].

    ``align``: detect the largest face with ``detector`` (a :class:`~vidinvert.face.detect.FaceDetector`)
    and FFHQ-align it like any photo; ``align=False``: the image is already an aligned square crop
    (resized to ``size`` when needed). No face found raises VidinvertError.
    """
    p = Path(path)
    rgb = read_image(p)
    h, w = rgb.shape[:2]
    if not align:
        if h != w:
            raise VidinvertError(f"--style {p}: {w}x{h} is not a square aligned face; drop --no-align to align it")
        t = to_tensor(rgb, device=device)
        if h != size:
            t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=h > size)
        return t

    if detector is None:
        raise ValueError("reference_crop(align=True) needs a face detector")
    faces = detector.detect([rgb])[0]
    if not faces:
        raise VidinvertError(f"no face found in the --style reference {p}: use a clearer photo, "
                             "or an aligned crop with --no-align")
    face = max(faces, key=lambda f: f.size)
    if len(faces) > 1:
        log.info(f"--style {p.name}: {len(faces)} faces, using the largest")
    quad = quad_from_face(face)
    return warp_faces([rgb], np.asarray(quad)[None], size, device=device)
