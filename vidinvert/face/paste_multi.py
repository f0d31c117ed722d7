"""Paste several edited faces back into one frame, in depth order, without bleeding into each other.

Faces are pasted farther first: a smaller crop footprint (``quad_scale``) counts as farther. Each
face's mask is first cut by the masks of every nearer face, warped into its crop and grown by the
reach of the paste's interpolation (``m_k * prod_j (1 - m_j)`` over nearer faces j), so the
farther face's edit never reaches pixels a nearer face covers: in ``delta`` mode the changes
would otherwise add up there, in ``full`` mode a farther face's pixels would show through the
nearer one's soft mask edge. Then each face is
pasted with :func:`vidinvert.face.paste.paste_faces` (same modes, fades, antialiasing, and the same
guarantee: pixels outside every mask's support are bit-identical to the source).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from vidinvert.face.align import crop_to_frame, frame_to_crop, quad_scale
from vidinvert.face.paste import paste_faces


def depth_order(quads: np.ndarray) -> np.ndarray:
    """Indices of ``quads [F,4,2]`` from farthest (smallest footprint) to nearest; ties keep input order."""
    return np.argsort(quad_scale(np.asarray(quads, np.float64).reshape(-1, 4, 2), 1), kind="stable")


def occlusion_cut_masks(quads: np.ndarray, masks: torch.Tensor, size: int) -> torch.Tensor:
    """Crop-space masks ``[F,1,r,r]`` in [0,1] (crops of ``size`` px aligned by ``quads [F,4,2]``) ->
    the same masks, each multiplied by ``1 - m_j`` for every nearer face j (see the module docstring)."""
    quads = np.asarray(quads, np.float64).reshape(-1, 4, 2)
    order = depth_order(quads)
    masks = masks.float()
    out = masks.clone()
    r = masks.shape[-1]
    # normalised mask coords (align_corners=False) <-> crop pixel coords, as 3x3 matrices
    denorm = np.array([[size / 2, 0, size / 2 - 0.5], [0, size / 2, size / 2 - 0.5], [0, 0, 1.0]])
    norm = np.linalg.inv(denorm)
    c2f = np.concatenate([crop_to_frame(quads, size), np.broadcast_to([[[0, 0, 1.0]]], (len(quads), 1, 3))], 1)
    f2c = np.concatenate([frame_to_crop(quads, size), np.broadcast_to([[[0, 0, 1.0]]], (len(quads), 1, 3))], 1)
    lo, hi = quads.min(1), quads.max(1)  # frame bounding boxes of the crops
    for pos, k in enumerate(order):
        nearer = [j for j in order[pos + 1:] if (lo[j] < hi[k]).all() and (lo[k] < hi[j]).all()]
        if len(nearer) == 0:
            continue
        theta = np.stack([(norm @ f2c[j] @ c2f[k] @ denorm)[:2] for j in nearer])
        grid = F.affine_grid(torch.as_tensor(theta, dtype=torch.float32, device=masks.device),
                             [len(nearer), 1, r, r], align_corners=False)
        other = F.grid_sample(masks[torch.as_tensor(nearer, device=masks.device)], grid, mode="bilinear",
                              padding_mode="zeros", align_corners=False).clamp_(0, 1)
        # grown by the reach of the paste's mask interpolation (and antialias shrink), so the cut
        # mask is exactly 0 wherever the nearer face's own mask is 1 in the frame
        m = max(1, math.ceil(2 * r / (1.5 * float(quad_scale(quads[k], 1)[0]))))
        other = F.max_pool2d(other, 2 * m + 1, stride=1, padding=m)
        out[k] = out[k] * torch.prod(1 - other, 0)
    return out


def paste_faces_multi(frame: np.ndarray, crops: torch.Tensor, quads: np.ndarray, masks: torch.Tensor,
                      mode: str = "delta", recon: torch.Tensor | None = None,
                      weights: Sequence[float] | np.ndarray | None = None, *,
                      color_reference: torch.Tensor | None = None, antialias: bool = True) -> np.ndarray:
    """Blend the F edited faces of one frame back into it, farther faces first.

    frame: uint8 RGB ``[H,W,3]`` (not modified). crops: edited faces ``[F,3,S,S]`` RGB in [-1,1].
    quads: ``[F,4,2]`` the crops were aligned with. masks: ``[F,1,r,r]`` in [0,1] over each crop.
    mode ``delta`` needs ``recon`` ``[F,3,S,S]`` (the unedited reconstructions). weights: per-face
    edit weight in [0,1] (each track's fades). color_reference (``full``): aligned source crops.
    Returns a new uint8 ``[H,W,3]`` frame.
    """
    quads = np.asarray(quads, np.float64).reshape(-1, 4, 2)
    out = frame.copy()
    n = len(quads)
    if n == 0:
        return out
    wts = np.ones(n) if weights is None else np.asarray(weights, np.float64).reshape(n)
    cut = occlusion_cut_masks(quads, masks.to(crops.device), crops.shape[-1]) if n > 1 else masks
    for k in depth_order(quads):
        if wts[k] <= 0:
            continue
        sl = slice(int(k), int(k) + 1)
        paste_faces([out], quads[sl], crops[sl], cut[sl], mode=mode,
                    recon=None if recon is None else recon[sl], weights=wts[sl],
                    color_reference=None if color_reference is None else color_reference[sl],
                    antialias=antialias, inplace=True)
    return out
