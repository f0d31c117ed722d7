"""FFHQ crop quads and the batched alignment warp.

A quad is ``[4,2]`` float64 frame coordinates (pixel-index convention, see ``types``) of the
crop's corners in FFHQ's order: top-left, bottom-left, bottom-right, top-right (``c-x-y, c-x+y,
c+x+y, c+x-y``). FFHQ quads are squares (parallelograms in the stored pixels of anamorphic
frames, see :mod:`vidinvert.face.geometry`), so the crop is an affine map; only corners 0, 1
and 3 are used. Output pixel ``(u, v)`` of an ``S x S`` crop samples the frame at
``q0 + (u+0.5)/S * (q3-q0) + (v+0.5)/S * (q1-q0)``, which is what FFHQ's
``PIL.Image.transform(QUAD, (quad + 0.5).flatten())`` computes.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from vidinvert.convert import unit_from_uint8
from vidinvert.device import to_device
from vidinvert.errors import VidinvertError
from vidinvert.face.types import EYE_LEFT, EYE_RIGHT, MOUTH_LEFT, MOUTH_RIGHT, Face


def _quad(eye_left: np.ndarray, eye_right: np.ndarray, mouth_left: np.ndarray, mouth_right: np.ndarray) -> np.ndarray:
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (mouth_left + mouth_right) * 0.5
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x = x / np.hypot(*x)
    x = x * max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def quad_from_68(lm68: np.ndarray) -> np.ndarray:
    """FFHQ's crop quad ``[4,2]`` from dlib's 68 landmarks ``[68,2]`` (eyes = mean of 6 points, outer mouth corners)."""
    lm = np.asarray(lm68, np.float64)
    return _quad(lm[EYE_LEFT].mean(0), lm[EYE_RIGHT].mean(0), lm[MOUTH_LEFT], lm[MOUTH_RIGHT])


def quad_from_5(lm5: np.ndarray) -> np.ndarray:
    """The same quad ``[4,2]`` from 5 points ``[5,2]`` (eye centres, nose, mouth corners); the nose is unused."""
    lm = np.asarray(lm5, np.float64)
    return _quad(lm[0], lm[1], lm[3], lm[4])


def quad_from_face(face: Face) -> np.ndarray:
    """68-point quad when the face has 68 landmarks, else the 5-point quad."""
    return quad_from_68(face.landmarks68) if face.landmarks68 is not None else quad_from_5(face.landmarks5)


def quad_to_params(quads: np.ndarray) -> np.ndarray:
    """Quads ``[...,4,2]`` -> ``[...,4]`` = centre (2) and half x-axis vector (2)."""
    q = np.asarray(quads, np.float64)
    c = q.mean(-2)
    x = (q[..., 3, :] + q[..., 2, :] - q[..., 0, :] - q[..., 1, :]) / 4
    return np.concatenate([c, x], -1)


def params_to_quad(params: np.ndarray) -> np.ndarray:
    """Inverse of :func:`quad_to_params` (square quads): ``[...,4]`` -> ``[...,4,2]``."""
    p = np.asarray(params, np.float64)
    c, x = p[..., :2], p[..., 2:]
    y = np.stack([-x[..., 1], x[..., 0]], -1)
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y], -2)


def crop_to_frame(quads: np.ndarray, size: int) -> np.ndarray:
    """Affine maps ``[B,2,3]``: crop pixel ``(u, v, 1)`` -> frame pixel ``(x, y)`` for an ``S x S`` crop."""
    q = np.asarray(quads, np.float64).reshape(-1, 4, 2)
    ex = (q[:, 3] - q[:, 0]) / size
    ey = (q[:, 1] - q[:, 0]) / size
    t = q[:, 0] + 0.5 * (ex + ey)
    return np.stack([ex, ey, t], -1)


def frame_to_crop(quads: np.ndarray, size: int) -> np.ndarray:
    """Inverse affine maps ``[B,2,3]``: frame pixel -> crop pixel."""
    m = crop_to_frame(quads, size)
    a = np.linalg.inv(m[:, :, :2])
    return np.concatenate([a, -(a @ m[:, :, 2:])], -1)


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply ``[2,3]`` (or ``[B,2,3]``) affine maps to points ``[...,K,2]``."""
    m = np.asarray(m, np.float64)
    return np.einsum("...ij,...kj->...ki", m[..., :, :2], np.asarray(pts, np.float64)) + m[..., None, :, 2]


def quad_scale(quads: np.ndarray, size: int) -> np.ndarray:
    """Frame pixels per crop pixel ``[B]`` (> 1: aligning minifies the frame), along the crop's
    longer axis in the frame (the axes differ for anamorphic frames, where a quad is a
    parallelogram in stored pixels)."""
    q = np.asarray(quads, np.float64).reshape(-1, 4, 2)
    return np.maximum(np.hypot(*(q[:, 3] - q[:, 0]).T), np.hypot(*(q[:, 1] - q[:, 0]).T)) / size


def reflect_indices(idx: np.ndarray, n: int) -> np.ndarray:
    """Integer pixel indices reflected into ``[0, n)`` like OpenCV's ``BORDER_REFLECT`` (edge pixel
    repeated: ``... 1 0 | 0 1 ... n-1 | n-1 n-2 ...``), which is torch's ``padding_mode='reflection'``
    with ``align_corners=False``."""
    i = np.mod(idx, 2 * n)
    return np.where(i >= n, 2 * n - 1 - i, i)


def _normalised_out_to_crop(size: int) -> np.ndarray:
    """3x3: normalised output coordinates (align_corners=False) -> crop pixel coordinates."""
    return np.array([[size / 2, 0, (size - 1) / 2], [0, size / 2, (size - 1) / 2], [0, 0, 1.0]])


def _pixel_to_normalised(w: int, h: int) -> np.ndarray:
    """3x3: pixel coordinates of a ``w x h`` image -> normalised coordinates (align_corners=False)."""
    return np.array([[2 / w, 0, 1 / w - 1], [0, 2 / h, 1 / h - 1], [0, 0, 1.0]])


def _h(m: np.ndarray) -> np.ndarray:
    """[B,2,3] -> [B,3,3]."""
    bottom = np.broadcast_to(np.array([0, 0, 1.0]), (m.shape[0], 1, 3))
    return np.concatenate([m, bottom], 1)


def antialias_factors(quads: np.ndarray, size: int, antialias: bool = True, max_grid: int = 2048) -> tuple[int, int]:
    """``(pre, k)`` for the warp: an integer area pre-downscale of the source and the number of
    sub-samples per crop pixel and axis, so that ``pre * k >= scale`` (no unfiltered minification)
    while the supersampled grid stays within ``max_grid`` pixels a side."""
    if not antialias or len(quads) == 0:
        return 1, 1
    s = float(quad_scale(quads, size).max())
    k_max = max(1, min(4, max_grid // size))
    pre = 1 if s <= k_max else int(math.ceil(s / k_max - 1e-6))
    k = int(min(k_max, max(1, math.ceil(s / pre - 1e-6))))
    return pre, k


def _check_frames(frames, b: int) -> None:
    """One frame per quad: uint8 ``[H,W,3]`` arrays of one size, or a float tensor ``[B,3,H,W]``."""
    if isinstance(frames, torch.Tensor):
        if frames.ndim != 4 or frames.shape[1] != 3 or frames.shape[0] != b:
            raise VidinvertError(f"warp_faces: frames must be [B={b},3,H,W], got {list(frames.shape)}")
        return
    if len(frames) != b:
        raise VidinvertError(f"warp_faces: {len(frames)} frames for {b} quads (one frame per quad)")
    shapes = {tuple(np.shape(f)) for f in frames}
    if len(shapes) > 1 or any(len(sh) != 3 or sh[2] != 3 for sh in shapes):
        raise VidinvertError(f"warp_faces: frames must be uint8 RGB [H,W,3] of one size, got {sorted(shapes)}")


def warp_faces(frames: Sequence[np.ndarray] | torch.Tensor, quads: np.ndarray, size: int, *,
               device: torch.device | str | None = None, antialias: bool = True,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Aligned crops of the quads: one batched ``grid_sample`` -> ``[B,3,S,S]`` float in [-1,1], RGB.

    frames: B uint8 RGB ``[H,W,3]`` arrays of one size (only the region each quad covers is read,
    reflected at the frame border, and sent to the device), or a float tensor ``[B,3,H,W]`` in
    [-1,1] (on the device; reflection by ``grid_sample``). quads: ``[B,4,2]``. Reflection at the
    border is FFHQ's reflect padding for quads that stick out of the frame. Antialiasing (when a
    crop pixel covers more than one frame pixel): each crop pixel averages ``k x k`` bilinear
    sub-samples of its footprint (k = ceil(scale), an area prefilter at the crop's resolution)
    inside the same batched call; at scales beyond what a 2048-px sub-sample grid allows, an
    integer area pre-downscale (``avg_pool2d``) of the source comes first.
    """
    quads = np.asarray(quads, np.float64)
    if quads.ndim != 3 or quads.shape[1:] != (4, 2):
        raise VidinvertError(f"warp_faces: quads must be [B,4,2], got {list(quads.shape)}")
    b = len(quads)
    _check_frames(frames, b)
    if isinstance(frames, torch.Tensor):
        device = frames.device if device is None else device
    device = torch.device(device or "cpu")
    if b == 0:
        return torch.zeros(0, 3, size, size, dtype=dtype, device=device)
    pre, k = antialias_factors(quads, size, antialias)
    n = size * k
    out_to_frame = _h(crop_to_frame(quads, size)) @ _normalised_out_to_crop(size)  # [B,3,3]

    if isinstance(frames, torch.Tensor):
        src = frames.to(device=device, dtype=dtype)
        h, w = src.shape[-2:]
        origin = np.zeros((b, 2))
        padding = "reflection"
    else:
        h, w = frames[0].shape[:2]
        if any(f.shape[:2] != (h, w) for f in frames):
            raise ValueError("warp_faces: all frames of a batch must have the same size")
        lo = np.floor(quads.min(1)) - 1
        hi = np.ceil(quads.max(1)) + 2
        lo = np.floor(lo / pre) * pre  # blocks of the pre-downscale aligned to the frame grid
        hi = lo + np.ceil((hi - lo) / pre) * pre
        ext = (hi - lo).astype(np.int64)
        cw, ch = int(ext[:, 0].max()), int(ext[:, 1].max())
        buf = np.empty((b, ch, cw, 3), np.uint8)
        for i, f in enumerate(frames):
            x0, y0 = int(lo[i, 0]), int(lo[i, 1])
            if x0 >= 0 and y0 >= 0 and x0 + cw <= w and y0 + ch <= h:
                buf[i] = f[y0:y0 + ch, x0:x0 + cw]
            else:  # reflect at the frame border by index arithmetic
                rows = reflect_indices(np.arange(y0, y0 + ch), h)
                cols = reflect_indices(np.arange(x0, x0 + cw), w)
                buf[i] = f[rows[:, None], cols[None, :]]
        src = unit_from_uint8(to_device(torch.from_numpy(buf), device).permute(0, 3, 1, 2), dtype)
        origin = lo
        h, w = ch, cw
        padding = "border"
    if pre > 1:
        src = F.avg_pool2d(src, pre, ceil_mode=True)
    sh, sw = src.shape[-2:]
    # frame pixel -> source-buffer pixel (shift, then the pooled grid) -> normalised
    to_buf = np.zeros((b, 3, 3))
    to_buf[:, 0, 0] = to_buf[:, 1, 1] = 1.0 / pre
    to_buf[:, :2, 2] = (-origin - (pre - 1) / 2) / pre
    to_buf[:, 2, 2] = 1.0
    theta = (_pixel_to_normalised(sw, sh) @ to_buf @ out_to_frame)[:, :2]
    grid = F.affine_grid(torch.as_tensor(theta, dtype=dtype, device=device), [b, 3, n, n], align_corners=False)
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode=padding, align_corners=False)
    if k > 1:
        out = F.avg_pool2d(out, k)
    return out
