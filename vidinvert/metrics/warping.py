"""Warping error (Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018) of aligned crops.

For consecutive frames t, t+1 of one face track, the optical flow is computed forward
``F_fw = F_{t->t+1}`` and backward ``F_bw = F_{t+1->t}`` on the **source**'s aligned crops (grey,
8-bit, :data:`WARP_SIZE` px) with OpenCV's DIS (preset :data:`DIS_PRESET`). An output's crop t+1
is sampled (bilinearly) at ``x + F_fw(x)`` and compared with its crop t over the valid pixels:

* Lai's forward-backward consistency (Ruder et al.'s occlusion test), with ``w_bw`` the backward
  flow sampled at ``x + F_fw(x)``: ``|F_fw + w_bw|^2 <= 0.01 (|F_fw|^2 + |w_bw|^2) + 0.5``;
* Lai's motion-boundary test on ``F_fw`` (forward differences ``du``, ``dv`` of both components):
  ``|du u|^2 + |dv u|^2 + |du v|^2 + |dv v|^2 <= 0.01 |F_fw|^2 + 0.002``;
* the sample point ``x + F_fw(x)`` lies inside the crop;
* ``x`` lies inside frame t's paste mask (mask >= 0.5), when a mask is given.

``E_t = sum(valid * |out_t - warp(out_{t+1})|^2) / sum(valid)`` with both sums over the three
channels, images in [0,1] (Lai's code counts the mask over three channels, so E is a per-channel
mean); a clip's warping error is the mean of E_t over its pairs. A pair with no valid pixel is
left out and counted (``empty``; Lai's code would add 0). These figures measure the aligned face
crop at 256 px with DIS, not whole frames with FlowNet2 as published: they compare runs with each
other, not with published warping errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

WARP_SIZE = 256
DIS_PRESET = "medium"
LABEL = f"warping error (DIS, {WARP_SIZE} px aligned crops)"
MASK_THRESHOLD = 0.5
_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
            "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


def to_warp_size(crops: torch.Tensor, size: int = WARP_SIZE) -> np.ndarray:
    """Aligned crops ``[B,3,S,S]`` RGB in [-1,1] (any device) -> ``[B,size,size,3]`` float32 RGB in
    [0,1] on the host: area-averaged when S > size, bilinear when S < size."""
    x = crops.detach().float()
    if x.shape[-1] > size:
        x = F.interpolate(x, size=(size, size), mode="area")
    elif x.shape[-1] < size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return ((x.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).contiguous().cpu().numpy()


def mask_to_warp_size(masks: torch.Tensor | None, size: int = WARP_SIZE) -> np.ndarray | None:
    """Paste masks ``[B,1,r,r]`` in [0,1] (spanning the crop) -> bool ``[B,size,size]`` (mask >= 0.5)."""
    if masks is None:
        return None
    m = masks.detach().float()
    if m.shape[-1] != size:
        m = F.interpolate(m, size=(size, size), mode="bilinear", align_corners=False)
    return (m[:, 0] >= MASK_THRESHOLD).cpu().numpy()


def grey8(rgb01: np.ndarray) -> np.ndarray:
    """``[H,W,3]`` float RGB in [0,1] -> ``[H,W]`` uint8 grey (ITU-R BT.601 luma, as OpenCV)."""
    u8 = np.clip(np.rint(rgb01 * 255.0), 0, 255).astype(np.uint8)
    return cv2.cvtColor(u8, cv2.COLOR_RGB2GRAY)


def dis_flow(a: np.ndarray, b: np.ndarray, dis=None) -> np.ndarray:
    """DIS optical flow ``[H,W,2]`` float32 (x, y in pixels) from grey uint8 ``a`` to ``b``:
    ``a(x) ~ b(x + flow(x))``."""
    dis = dis if dis is not None else cv2.DISOpticalFlow_create(_PRESETS[DIS_PRESET])
    return dis.calc(a, b, None)


_GRIDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates ``x``, ``y`` ``[H,W]`` float32 (cached per size)."""
    if (h, w) not in _GRIDS:
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        _GRIDS[(h, w)] = (gx, gy)
    return _GRIDS[(h, w)]


def _sample(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``img`` (``[H,W]`` or ``[H,W,C]`` float32) sampled bilinearly at ``x + flow(x)`` (0 outside)."""
    gx, gy = _grid(*flow.shape[:2])
    return cv2.remap(img, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                     borderValue=0)


def _sq(v: np.ndarray) -> np.ndarray:
    """Squared length ``[H,W]`` of ``[H,W,2]`` vectors."""
    return v[..., 0] * v[..., 0] + v[..., 1] * v[..., 1]


def consistent_pixels(fw: np.ndarray, bw: np.ndarray) -> np.ndarray:
    """Lai's non-occlusion mask in frame t: bool ``[H,W]``, True where the forward-backward test and
    the motion-boundary test pass and ``x + fw(x)`` lies inside the image. fw/bw: ``[H,W,2]`` float32."""
    h, w = fw.shape[:2]
    bw_w = _sample(np.ascontiguousarray(bw), fw)
    fw_sq = _sq(fw)
    occluded = _sq(fw + bw_w) > 0.01 * (fw_sq + _sq(bw_w)) + 0.5
    grad = np.zeros((h, w), np.float32)
    du = fw[:, :-1] - fw[:, 1:]
    dv = fw[:-1, :] - fw[1:, :]
    grad[:, :-1] += _sq(du)
    grad[:-1, :] += _sq(dv)
    boundary = grad > 0.01 * fw_sq + 0.002
    gx, gy = _grid(h, w)
    x, y = gx + fw[..., 0], gy + fw[..., 1]
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    return ~occluded & ~boundary & inside


def pair_error(out_t: np.ndarray, out_next: np.ndarray, fw: np.ndarray, valid: np.ndarray) -> float | None:
    """E_t of one pair: ``[H,W,3]`` float32 in [0,1] crops t and t+1, forward flow ``fw``, bool
    ``valid`` ``[H,W]``; None when no pixel is valid."""
    n = int(valid.sum())
    if n == 0:
        return None
    d = _sample(np.ascontiguousarray(out_next, dtype=np.float32), fw) - out_t
    per_pixel = (d * d).sum(-1)
    return float(per_pixel[valid].sum(dtype=np.float64) / (3 * n))


class WarpingErrorMeter:
    """Streaming warping error of several streams of one face track (module docstring).

    ``update(crops, masks)``: ``crops`` name -> ``[B,3,S,S]`` RGB in [-1,1], the same B consecutive
    frames for every stream, ``"source"`` among them (its flow drives every stream; the source's own
    warping error is that of the ``"source"`` stream); ``masks``: frame t's paste masks
    ``[B,1,r,r]`` in [0,1] or None (the whole crop). ``reset()`` at a gap: no pair spans it.
    ``per_frame[name]``: one value per frame fed (the pair ending there; None at a run's first frame
    or for an empty pair). :meth:`state` / :meth:`load` carry it across chunks for ``--resume``.
    """

    def __init__(self, names: Sequence[str], size: int = WARP_SIZE) -> None:
        if "source" not in names:
            raise ValueError("the warping error needs the 'source' stream (its flow drives every stream)")
        self.names = tuple(names)
        self.size = size
        self._dis = None
        self._last: _Frame | None = None
        self.sums = {k: 0.0 for k in self.names}
        self.pairs = 0
        self.empty = 0
        self.per_frame: dict[str, list[float | None]] = {k: [] for k in self.names}

    def reset(self) -> None:
        self._last = None

    def _flow(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if self._dis is None:
            self._dis = cv2.DISOpticalFlow_create(_PRESETS[DIS_PRESET])
        return dis_flow(a, b, self._dis)

    def update(self, crops: Mapping[str, torch.Tensor], masks: torch.Tensor | None = None) -> None:
        n = crops["source"].shape[0]
        if n == 0:
            return
        imgs = {k: to_warp_size(crops[k], self.size) for k in self.names}
        valid_masks = mask_to_warp_size(masks, self.size)
        for b in range(n):
            cur = _Frame({k: imgs[k][b] for k in self.names}, grey8(imgs["source"][b]),
                         valid_masks[b] if valid_masks is not None else np.ones((self.size, self.size), bool))
            values = self._pair(self._last, cur) if self._last is not None else {k: None for k in self.names}
            for k in self.names:
                self.per_frame[k].append(values[k])
            self._last = cur

    def _pair(self, last: _Frame, cur: _Frame) -> dict[str, float | None]:
        fw = self._flow(last.grey, cur.grey)
        bw = self._flow(cur.grey, last.grey)
        valid = consistent_pixels(fw, bw) & last.mask
        if not valid.any():
            self.empty += 1
            return {k: None for k in self.names}
        out = {k: pair_error(last.crops[k], cur.crops[k], fw, valid) for k in self.names}
        self.pairs += 1
        for k, v in out.items():
            self.sums[k] += float(v)
        return out

    def value(self, name: str) -> float | None:
        """The mean of E_t over the pairs so far (None before the first pair)."""
        return self.sums[name] / self.pairs if self.pairs else None

    # state for --resume: tensors only (read back with weights_only=True)
    def state(self) -> dict:
        nan = float("nan")
        st = {"sums": torch.tensor([self.sums[k] for k in self.names], dtype=torch.float64),
              "counts": torch.tensor([self.pairs, self.empty]),
              "per_frame": torch.tensor([[nan if v is None else v for v in self.per_frame[k]] for k in self.names],
                                        dtype=torch.float64).reshape(len(self.names), -1)}
        if self._last is not None:
            st["last_crops"] = {k: torch.from_numpy(v.copy()) for k, v in self._last.crops.items()}
            st["last_grey"] = torch.from_numpy(self._last.grey.copy())
            st["last_mask"] = torch.from_numpy(self._last.mask.copy())
        return st

    def load(self, st: dict) -> None:
        self.sums = {k: float(v) for k, v in zip(self.names, st["sums"].tolist())}
        self.pairs, self.empty = (int(v) for v in st["counts"].tolist())
        self.per_frame = {k: [None if np.isnan(v) else float(v) for v in row]
                          for k, row in zip(self.names, st["per_frame"].tolist())}
        self._last = None
        if "last_grey" in st:
            self._last = _Frame({k: v.numpy() for k, v in st["last_crops"].items()}, st["last_grey"].numpy(),
                                st["last_mask"].numpy())


@dataclass
class _Frame:
    """What the meter keeps of the previous frame: each stream's crop ``[S,S,3]`` float32 in [0,1],
    the source's grey uint8 ``[S,S]`` and the paste mask as bool ``[S,S]``."""

    crops: dict[str, np.ndarray]
    grey: np.ndarray
    mask: np.ndarray
