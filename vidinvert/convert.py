"""The two conversions between the edges (uint8 RGB arrays) and the networks ([-1,1] tensors).

Inside vidinvert images are torch tensors, RGB, NCHW, float in [-1,1]. Files, decoded frames
and encoded frames are numpy uint8 HxWx3 RGB. These two functions are the only places that
convert between them, so the rounding convention is the same everywhere.
"""

from __future__ import annotations

import numpy as np
import torch

from vidinvert.device import to_device

# The ImageNet statistics that torchvision backbones (face parsing, LPIPS, VGG) normalise with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def unit_from_uint8(images: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """uint8 ``[..., 3, H, W]`` tensor (0..255) -> float in [-1,1], same device and layout.

    The official normalisation: ``x/255`` then ``(x-0.5)/0.5`` (= ``x/127.5 - 1``).
    """
    return images.to(dtype or torch.float32).div(127.5).sub_(1.0)


def uint8_from_unit(images: torch.Tensor) -> torch.Tensor:
    """float ``[..., 3, H, W]`` in [-1,1] -> uint8 tensor, same device and layout.

    The official conversion: ``clamp((x+1)/2, 0, 1) * 255 + 0.5`` truncated, in float32.
    """
    x = ((images.detach().float() + 1.0) / 2.0).clamp_(0.0, 1.0).mul_(255.0).add_(0.5).clamp_(0.0, 255.0)
    return x.to(torch.uint8)


def to_tensor(images: np.ndarray | torch.Tensor, device: torch.device | str | None = None,
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 RGB ``[H,W,3]`` or ``[B,H,W,3]`` (numpy or tensor) -> float ``[B,3,H,W]`` in [-1,1].

    Follows the official normalisation: ``x/255`` then ``(x-0.5)/0.5``.
    """
    if isinstance(images, np.ndarray) and not images.flags.writeable:
        images = images.copy()
    t = torch.as_tensor(images)
    if t.dtype != torch.uint8:
        raise TypeError(f"expected uint8 RGB images, got {t.dtype}")
    if t.ndim == 3:
        t = t.unsqueeze(0)
    if t.ndim != 4 or t.shape[-1] != 3:
        raise ValueError(f"expected [B,H,W,3] or [H,W,3] RGB images, got shape {tuple(t.shape)}")
    return unit_from_uint8(to_device(t, device).permute(0, 3, 1, 2), dtype)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float ``[B,3,H,W]`` (or ``[3,H,W]``) in [-1,1] -> uint8 RGB ``[B,H,W,3]`` numpy.

    The official conversion: ``clamp((x+1)/2, 0, 1) * 255 + 0.5`` truncated to uint8, computed
    in float32 whatever the input dtype.
    """
    x = images.detach()
    if x.ndim == 3:
        x = x.unsqueeze(0)
    return uint8_from_unit(x).permute(0, 2, 3, 1).contiguous().cpu().numpy()
