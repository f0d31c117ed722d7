"""Applying an edit to inverted latents: ``w~ = w + 15 S d`` and ``F~ = F + G_K(w~) - G_K(w)``."""

from __future__ import annotations

import torch


def apply_edit(w_plus: torch.Tensor, delta: torch.Tensor, strength: torch.Tensor | float) -> torch.Tensor:
    """``w~ = w + strength * delta``.

    w_plus: ``[B, L, D]`` float; delta: ``[L, D]`` (already ``EDIT_STEP * d``) or ``[B, L, D]``;
    strength: a float or a ``[B]`` tensor (per-frame strengths, e.g. keyframes or fades).
    """
    s = torch.as_tensor(strength, dtype=w_plus.dtype, device=w_plus.device)
    if s.ndim == 1:
        s = s.view(-1, 1, 1)
    return w_plus + s * delta.to(device=w_plus.device, dtype=w_plus.dtype)


def edit_feature(
    feature: torch.Tensor,
    g_k_w: torch.Tensor,
    g_k_w_edit: torch.Tensor,
    unchanged: torch.Tensor | None = None,
) -> torch.Tensor:
    """``F~ = F + (G_K(w~) - G_K(w))``; rows flagged in ``unchanged`` ([B] bool) keep ``F`` exactly.

    All tensors ``[B, C, 16, 16]``; computed in the feature's dtype.
    """
    out = feature + (g_k_w_edit.to(feature.dtype) - g_k_w.to(feature.dtype))
    if unchanged is not None and bool(unchanged.any()):
        out = torch.where(unchanged.view(-1, 1, 1, 1).to(out.device), feature, out)
    return out
