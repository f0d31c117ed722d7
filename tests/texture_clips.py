"""Textured clips with known sub-pixel motion for the warping-error and report tests."""

from __future__ import annotations

import cv2
import numpy as np
import torch

SHIFT = (0.37, -0.23)  # the window's step per frame (px, sub-pixel): the content moves by -SHIFT


def texture(seed: int, size: int, sigma: float = 2.5) -> np.ndarray:
    """``[3,size,size]`` float32 in [0,1]: smooth random texture, mean 0.5, sd 0.15."""
    g = np.random.default_rng(seed).random((3, size, size)).astype(np.float32)
    g = np.stack([cv2.GaussianBlur(c, (0, 0), sigma) for c in g])
    return np.clip((g - g.mean()) / g.std() * 0.15 + 0.5, 0, 1)


def moving_clip(n: int = 8, seed: int = 0, size: int = 256) -> np.ndarray:
    """``[n,3,size,size]`` in [0,1]: a window into a larger texture stepping by SHIFT per frame (bicubic)."""
    base = texture(seed, size + 144)
    out = []
    for t in range(n):
        m = np.float32([[1, 0, -60 - SHIFT[0] * t], [0, 1, -60 - SHIFT[1] * t]])
        out.append(np.stack([cv2.warpAffine(c, m, (size, size), flags=cv2.INTER_CUBIC) for c in base]))
    return np.clip(np.stack(out), 0, 1)


def as_crops(x01: np.ndarray) -> torch.Tensor:
    """``[n,3,S,S]`` in [0,1] (numpy) -> float32 tensor in [-1,1], the pipeline's crop format."""
    return torch.from_numpy(x01 * 2 - 1).float()
