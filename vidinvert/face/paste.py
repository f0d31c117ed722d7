"""Paste generated faces back into their frames.

Two modes, for aligned crops ``[B,3,S,S]`` in [-1,1] and crop-space masks ``[B,1,S,S]``:

- ``full``: ``out = src + w*m * (warp(edited) - src)``: the generated face replaces the source
  inside the mask (optionally colour-matched to the source first).
- ``delta``: ``out = src + w*m * warp(edited - recon)``: only the change the edit made is added,
  ``recon`` being the unedited reconstruction G(w, F). Every source detail the inversion missed
  (skin texture, exact colours, teeth, hair strands) survives, and an unedited frame is returned
  exactly. This is the recommended default (see the report/benchmarks for figures).

``w`` is the per-frame edit weight (fades) and ``m`` the mask warped into the frame. The work is
done only inside the bounding box of the mask's support in the frame; everything outside is a
copy, and inside the box pixels where the warped mask is exactly 0 are copied too, so the
result is bit-identical to the source outside the mask's support. When the crop is larger than
its footprint in the frame (the usual 1024 face into a smaller face), crops and masks are first
downscaled with a bicubic antialiasing filter to 1.5x the footprint's size, then sampled with
batched ``grid_sample`` calls (content bicubic, mask bilinear) for the whole batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vidinvert.errors import VidinvertError
from vidinvert.face.align import crop_to_frame, frame_to_crop, quad_scale
from vidinvert.face.types import PASTE_MODES

# Minification: when the crop is much larger than its footprint, it is first shrunk with a bicubic
# antialias filter to 1.5x the footprint, then sampled bicubically (the mask bilinearly, which keeps
# its exact zeros). Unedited round trip on astronaut (175 px face): 41.5 dB through a 1024 crop,
# 42.7 dB through a 256 crop; the aliasing of a 0.8 cycles/pixel pattern drops 15x, of 2 c/px 50x.
# (Bilinear sampling is ~4x cheaper on a CPU but loses 2-5 dB; a prefilter to exactly the footprint
# aliases less near Nyquist but blurs, 37.9 dB.) Shrinks by less than 1.25x are skipped.
_PREFILTER = "bicubic"
_OVERSAMPLE = 1.5
_MIN_SHRINK = 1.25
_SAMPLER = "bicubic"


def match_color(edited: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Per-channel mean/std of ``edited`` inside ``mask`` set to those of ``reference``.

    ``edited``, ``reference``: ``[B,3,S,S]`` in [-1,1]; ``mask``: ``[B,1,S,S]`` in [0,1]
    (resized to S when needed). Returns ``[B,3,S,S]`` clamped to [-1,1].
    """
    if mask.shape[-1] != edited.shape[-1]:
        mask = F.interpolate(mask, size=edited.shape[-2:], mode="bilinear", align_corners=False)
    if reference.shape[-1] != edited.shape[-1]:
        reference = F.interpolate(reference, size=edited.shape[-2:], mode="bilinear", align_corners=False,
                                  antialias=True)
    wsum = mask.sum((2, 3), keepdim=True).clamp(min=eps)

    def stats(x):
        mu = (x * mask).sum((2, 3), keepdim=True) / wsum
        var = (((x - mu) ** 2) * mask).sum((2, 3), keepdim=True) / wsum
        return mu, var.clamp(min=0).sqrt()

    mu_e, sd_e = stats(edited)
    mu_r, sd_r = stats(reference)
    return ((edited - mu_e) * (sd_r / sd_e.clamp(min=eps)) + mu_r).clamp(-1, 1)


def combine_masks(paste_mask: torch.Tensor, region_mask: torch.Tensor | None) -> torch.Tensor:
    """Restrict a paste mask to a region (``--region``): their product, ``[B,1,r,r]`` float32 in [0,1].

    Both span the whole crop; ``region_mask`` ``[B,1,q,q]`` is resized bilinearly to the paste
    mask's resolution r when q != r (bilinear keeps exact zeros far from the support). Where either
    is exactly 0 the product is exactly 0, so ``paste_faces`` leaves those pixels bit-identical.
    None returns the paste mask unchanged.
    """
    if region_mask is None:
        return paste_mask
    region_mask = region_mask.to(paste_mask.device, torch.float32)
    if region_mask.shape[-1] != paste_mask.shape[-1]:
        region_mask = F.interpolate(region_mask, size=paste_mask.shape[-2:], mode="bilinear", align_corners=False,
                                    antialias=region_mask.shape[-1] > paste_mask.shape[-1])
    return (paste_mask.float() * region_mask.clamp(0, 1)).clamp_(0, 1)


def _support_boxes(masks: torch.Tensor, quads: np.ndarray, size: int, frame_hw: tuple[int, int]) -> np.ndarray:
    """Frame-pixel boxes ``[B,4]`` (x0, y0, x1, y1; exclusive end) covering each mask's support.

    ``masks`` ``[B,1,r,r]`` may be at any resolution r (it spans the whole ``size`` crop)."""
    b, _, r, _ = masks.shape
    m2 = crop_to_frame(quads, size)
    boxes = np.zeros((b, 4), np.int64)
    nz = masks[:, 0] > 0
    rows = nz.any(2).cpu().numpy()
    cols = nz.any(1).cpu().numpy()
    h, w = frame_hw
    for i in range(b):
        if not rows[i].any():
            continue
        rr, cc = np.flatnonzero(rows[i]), np.flatnonzero(cols[i])
        # support in crop pixels: mask pixel j spans [j, j+1) * size/r, plus a mask pixel of bilinear reach
        f = size / r
        u0, u1 = (cc[0] - 1) * f - 0.5, (cc[-1] + 2) * f - 0.5
        v0, v1 = (rr[0] - 1) * f - 0.5, (rr[-1] + 2) * f - 0.5
        corners = np.array([[u0, v0], [u1, v0], [u0, v1], [u1, v1]])
        pts = corners @ m2[i, :, :2].T + m2[i, :, 2]
        x0, y0 = np.floor(pts.min(0) - 3).astype(int)  # + reach of the antialias filter
        x1, y1 = np.ceil(pts.max(0) + 4).astype(int)
        boxes[i] = [max(0, x0), max(0, y0), min(w, x1), min(h, y1)]
    return boxes



def _paste_content(edited: torch.Tensor, masks: torch.Tensor, mode: str, recon: torch.Tensor | None,
                   color_reference: torch.Tensor | None) -> torch.Tensor:
    """What is pasted, ``[B,3,S,S]`` float32: the edit's change (``delta``: ``edited - recon``) or
    the synthesis itself (``full``, colour-matched to ``color_reference`` when given)."""
    if mode == "delta":
        if recon is None:
            raise ValueError("paste mode 'delta' needs the unedited reconstruction (recon)")
        return edited.float() - recon.to(edited.device).float()
    content = edited.float()
    if color_reference is not None:
        content = match_color(content, color_reference.to(edited.device).float(), masks)
    return content

@dataclass(frozen=True, eq=False)
class PasteField:
    """One face's paste in frame space, independent of the picture it goes into.

    ``box``: (x0, y0, x1, y1) frame pixels, exclusive end; ``weight``: ``[h,w]`` float32 tensor, the
    warped mask times the edit weight, in [0,1], exactly 0 outside the mask's support; ``value``:
    ``[3,h,w]`` float32 RGB in [-1,1] units: the change (``delta``) or the synthesis (``full``).
    """

    box: tuple[int, int, int, int]
    weight: torch.Tensor
    value: torch.Tensor
    mode: str


def blend_rgb(image: np.ndarray, fld: PasteField) -> None:
    """Blend ``fld`` into ``image`` (uint8 RGB ``[H,W,3]``, modified in place)."""
    x0, y0, x1, y1 = fld.box
    src = torch.from_numpy(np.ascontiguousarray(image[y0:y1, x0:x1])).to(fld.value.device).permute(2, 0, 1).float()
    m = fld.weight[None]
    # Where m == 0 exactly, both formulas add +-0.0 to the integer-valued source: bit-identical.
    if fld.mode == "delta":
        src.addcmul_(m, fld.value, value=127.5)
    else:
        src.addcmul_(m, (fld.value + 1).mul_(127.5).sub_(src))
    image[y0:y1, x0:x1] = src.round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def paste_fields(frame_hw: tuple[int, int], quads: np.ndarray, edited: torch.Tensor, masks: torch.Tensor, *,
                 mode: str = "delta", recon: torch.Tensor | None = None,
                 weights: Sequence[float] | np.ndarray | None = None,
                 color_reference: torch.Tensor | None = None, antialias: bool = True) -> list[PasteField | None]:
    """The :class:`PasteField` of each of B faces, one per frame of size ``frame_hw`` (None where
    nothing is pasted: an empty mask or weight 0); arguments as :func:`paste_faces`."""
    if mode not in PASTE_MODES:
        raise VidinvertError(f"unknown paste mode {mode!r}: choose one of {', '.join(PASTE_MODES)}")
    quads = np.asarray(quads, np.float64).reshape(-1, 4, 2)
    b = len(quads)
    out: list[PasteField | None] = [None] * b
    if b == 0:
        return out
    device = edited.device
    s = edited.shape[-1]
    masks = masks.to(device, torch.float32)
    content = _paste_content(edited, masks, mode, recon, color_reference)
    wts = torch.ones(b, device=device) if weights is None else torch.as_tensor(
        np.asarray(weights, np.float64), dtype=torch.float32, device=device)
    boxes = _support_boxes(masks, quads, s, frame_hw)
    ext = boxes[:, 2:] - boxes[:, :2]
    active = np.flatnonzero((ext > 0).all(1) & (np.asarray(wts.cpu()) > 0))
    if len(active) == 0:
        return out
    bw, bh = int(ext[active, 0].max()), int(ext[active, 1].max())

    # antialias: shrink crop and mask to about the footprint's size (one size for the batch)
    idx = torch.as_tensor(active, device=device)
    content, masks = content[idx], masks[idx]
    side = float(np.max(quad_scale(quads[active], 1)))  # frame pixels across a crop
    t = int(math.ceil(side * _OVERSAMPLE))
    if antialias and t * _MIN_SHRINK < s:
        content = F.interpolate(content, size=(t, t), mode=_PREFILTER, align_corners=False, antialias=True)
        if masks.shape[-1] > t:
            masks = F.interpolate(masks, size=(t, t), mode="bilinear", align_corners=False, antialias=True)

    # normalised region coords -> region pixel -> frame pixel -> crop pixel -> normalised crop coords
    na = len(active)
    reg = np.zeros((na, 3, 3))
    reg[:, 0, 0], reg[:, 1, 1], reg[:, 2, 2] = bw / 2, bh / 2, 1.0
    reg[:, 0, 2] = (bw - 1) / 2 + boxes[active, 0]
    reg[:, 1, 2] = (bh - 1) / 2 + boxes[active, 1]
    inv = np.concatenate([frame_to_crop(quads[active], s), np.broadcast_to([[[0, 0, 1.0]]], (na, 1, 3))], 1)
    norm = np.array([[2 / s, 0, 1 / s - 1], [0, 2 / s, 1 / s - 1], [0, 0, 1.0]])
    theta = torch.as_tensor((norm @ inv @ reg)[:, :2], dtype=torch.float32, device=device)
    grid = F.affine_grid(theta, [na, 1, bh, bw], align_corners=False)
    val = F.grid_sample(content, grid, mode=_SAMPLER, padding_mode="zeros", align_corners=False)
    m = F.grid_sample(masks, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    m = m.clamp_(0, 1).mul_(wts[idx].view(-1, 1, 1, 1))
    val = torch.nan_to_num_(val, nan=0.0, posinf=0.0, neginf=0.0)  # 0 * NaN would leak outside the mask
    for j, i in enumerate(active):
        x0, y0, x1, y1 = (int(v) for v in boxes[i])
        out[i] = PasteField((x0, y0, x1, y1), m[j, 0, : y1 - y0, : x1 - x0], val[j, :, : y1 - y0, : x1 - x0], mode)
    return out


def paste_faces(frames: Sequence[np.ndarray], quads: np.ndarray, edited: torch.Tensor, masks: torch.Tensor, *,
                mode: str = "delta", recon: torch.Tensor | None = None,
                weights: Sequence[float] | np.ndarray | None = None,
                color_reference: torch.Tensor | None = None, antialias: bool = True,
                inplace: bool = False) -> list[np.ndarray]:
    """Blend aligned crops back into their frames.

    frames: B uint8 RGB ``[H,W,3]`` of one size. quads: ``[B,4,2]`` (the quads the crops were
    aligned with). edited: ``[B,3,S,S]`` RGB in [-1,1]. masks: ``[B,1,r,r]`` in [0,1] covering the
    crop at any resolution r (a smooth mask at 256 is plenty and cheaper than at S).
    mode ``delta`` needs ``recon`` ``[B,3,S,S]``. weights: per-frame edit weight in [0,1] (fades).
    color_reference (``full`` only): the aligned source crops; the edited face's colours are matched
    to them inside the mask. Returns new uint8 frames (or the same arrays, modified, with ``inplace``).
    """
    fields = paste_fields(frames[0].shape[:2] if len(frames) else (0, 0), quads, edited, masks, mode=mode,
                          recon=recon, weights=weights, color_reference=color_reference, antialias=antialias)
    outs = [f if inplace else f.copy() for f in frames]
    for img, fld in zip(outs, fields):
        if fld is not None:
            blend_rgb(img, fld)
    return outs


# --------------------------------------------------------------------------- several faces, one image
def depth_order(quads: np.ndarray) -> np.ndarray:
    """Indices of the faces from the farthest to the nearest: ascending crop size in the image
    (ties keep their given order). Nearer faces are pasted last and their masks win."""
    q = np.asarray(quads, np.float64).reshape(-1, 4, 2)
    return np.argsort(quad_scale(q, 1), kind="stable")


def _warp_into(x: torch.Tensor, quad: np.ndarray, size: int, box: Sequence[int], mode: str) -> torch.Tensor:
    """Crop-space ``[1,C,r,r]`` (spanning an ``size`` crop of ``quad``) sampled at the frame pixels of
    ``box`` (x0, y0, x1, y1; exclusive end) -> ``[1,C,y1-y0,x1-x0]``; zero outside the crop."""
    x0, y0, x1, y1 = (int(v) for v in box)
    bw, bh = x1 - x0, y1 - y0
    reg = np.array([[bw / 2, 0, (bw - 1) / 2 + x0], [0, bh / 2, (bh - 1) / 2 + y0], [0, 0, 1.0]])
    inv = np.concatenate([frame_to_crop(np.asarray(quad)[None], size)[0], [[0, 0, 1.0]]])
    norm = np.array([[2 / size, 0, 1 / size - 1], [0, 2 / size, 1 / size - 1], [0, 0, 1.0]])
    theta = torch.as_tensor((norm @ inv @ reg)[None, :2], dtype=torch.float32, device=x.device)
    grid = F.affine_grid(theta, [1, x.shape[1], bh, bw], align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)


def depth_fields(frame_hw: tuple[int, int], quads: np.ndarray, edited: torch.Tensor, masks: torch.Tensor, *,
                 mode: str = "delta", recon: torch.Tensor | None = None,
                 color_reference: torch.Tensor | None = None, antialias: bool = True,
                 weights: Sequence[float] | np.ndarray | None = None) -> list[PasteField]:
    """The :class:`PasteField` s of N faces of ONE image of size ``frame_hw``, in paste order (farthest
    first), each face's weight cut by ``1 - m_j`` of every nearer face j; arguments as
    :func:`paste_faces_depth`."""
    if mode not in PASTE_MODES:
        raise VidinvertError(f"unknown paste mode {mode!r}: choose one of {', '.join(PASTE_MODES)}")
    quads = np.asarray(quads, np.float64).reshape(-1, 4, 2)
    n = len(quads)
    if n == 0:
        return []
    device = edited.device
    s = edited.shape[-1]
    masks = masks.to(device, torch.float32)
    content = _paste_content(edited, masks, mode, recon, color_reference)
    boxes = _support_boxes(masks, quads, s, frame_hw)
    order = [int(i) for i in depth_order(quads)]
    wts = np.ones(n) if weights is None else np.asarray(weights, np.float64).reshape(n)
    out: list[PasteField] = []
    for k, i in enumerate(order):
        x0, y0, x1, y1 = (int(v) for v in boxes[i])
        if x1 <= x0 or y1 <= y0 or wts[i] <= 0:
            continue
        c, m_crop = content[i : i + 1], masks[i : i + 1]
        t = math.ceil(float(quad_scale(quads[i], 1)[0]) * _OVERSAMPLE)
        if antialias and t * _MIN_SHRINK < s:
            c = F.interpolate(c, size=(t, t), mode=_PREFILTER, align_corners=False, antialias=True)
            if m_crop.shape[-1] > t:
                m_crop = F.interpolate(m_crop, size=(t, t), mode="bilinear", align_corners=False, antialias=True)
        m = _warp_into(m_crop, quads[i], s, boxes[i], "bilinear").clamp_(0, 1)
        for j in order[k + 1 :]:  # nearer faces cut this face's mask
            a0, b0 = max(x0, int(boxes[j][0])), max(y0, int(boxes[j][1]))
            a1, b1 = min(x1, int(boxes[j][2])), min(y1, int(boxes[j][3]))
            if a1 <= a0 or b1 <= b0:
                continue
            mj = _warp_into(masks[j : j + 1], quads[j], s, (a0, b0, a1, b1), "bilinear").clamp_(0, 1)
            m[..., b0 - y0 : b1 - y0, a0 - x0 : a1 - x0] *= 1 - mj
        if wts[i] != 1:
            m = m * float(wts[i])
        val = torch.nan_to_num_(_warp_into(c, quads[i], s, boxes[i], _SAMPLER), nan=0.0, posinf=0.0, neginf=0.0)
        out.append(PasteField((x0, y0, x1, y1), m[0, 0], val[0], mode))
    return out


def paste_faces_depth(image: np.ndarray, quads: np.ndarray, edited: torch.Tensor, masks: torch.Tensor, *,
                      mode: str = "delta", recon: torch.Tensor | None = None,
                      color_reference: torch.Tensor | None = None, antialias: bool = True,
                      inplace: bool = False, weights: Sequence[float] | np.ndarray | None = None) -> np.ndarray:
    """Paste N aligned faces into ONE image, farthest (smallest) first, with masks that do not bleed.

    image: uint8 RGB ``[H,W,3]``. quads: ``[N,4,2]``. edited: ``[N,3,S,S]`` RGB in [-1,1].
    masks: ``[N,1,r,r]`` in [0,1] at any resolution r. ``delta`` needs ``recon`` ``[N,3,S,S]``;
    ``color_reference`` (``full`` only): the aligned source crops. Each face's mask, in the image,
    is multiplied by ``1 - m_j`` of every nearer face j (see :func:`depth_order`), so a face's edit
    stops where a nearer face begins; the faces are then blended one after the other. Work is done
    in each mask's bounding box: pixels outside the union of the masks' supports are bit-identical
    (``inplace=False`` returns a copy: the only full-size array made here). weights: per-face edit
    weight in [0,1] (a video track's fades) scaling its mask; a face of weight 0 is not pasted but
    still cuts the masks of farther faces.
    """
    fields = depth_fields(image.shape[:2], quads, edited, masks, mode=mode, recon=recon,
                          color_reference=color_reference, antialias=antialias, weights=weights)
    out = image if inplace else image.copy()
    for fld in fields:
        blend_rgb(out, fld)
    return out
