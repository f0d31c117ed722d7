"""Applying an edit to inverted latents: ``w~ = w + 15 S d`` and ``F~ = F + G_K(w~) - G_K(w)``.

:func:`edit_feature_local` adds region masks on the feature grid (``--region``) and a pull of F
towards the generator's own G_K(w) (``--feature-keep``) for stronger edits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vidinvert.timespec import Keyframes, check_unit_schedule


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


def edit_feature_local(
    feature: torch.Tensor,
    g_k_w: torch.Tensor,
    g_k_w_edit: torch.Tensor,
    unchanged: torch.Tensor | None = None,
    *,
    mask16: torch.Tensor | None = None,
    keep: torch.Tensor | float = 1.0,
    rho: torch.Tensor | None = None,
) -> torch.Tensor:
    """Local and stronger feature edits (``--region``, ``--feature-keep``)::

        F~ = F + M * (G_K(w~) - G_K(w)) - (1 - B) * rho * M * (F - G_K(w))

    feature, g_k_w, g_k_w_edit: ``[B, C, h, w]`` (h = w = 16); computed in the feature's dtype.
    mask16: the region mask on the feature grid ``[B|1, 1, h, w]`` in [0,1] (``feature_grid_mask``),
    None for the whole grid; cells where it is exactly 0 keep ``F`` exactly. keep: ``B`` in [0,1], a
    float or ``[B]``; 1 keeps the encoder's F (eq. 1), smaller values pull F towards the generator's
    own G_K(w) by ``(1 - B) * rho``. rho: per-frame edit weight ``[B]`` in [0,1]
    (:func:`edit_weight_rho`), None for 1. Rows flagged in ``unchanged`` ([B] bool) keep ``F`` exactly.

    With ``mask16`` None and ``keep`` 1 this is :func:`edit_feature`, bit for bit.
    """
    dt, dev = feature.dtype, feature.device
    keep_t = torch.as_tensor(keep, dtype=dt, device=dev)
    full_keep = bool((keep_t == 1).all())
    if mask16 is None and full_keep:
        return edit_feature(feature, g_k_w, g_k_w_edit, unchanged)
    g_k_w = g_k_w.to(dt)
    delta = g_k_w_edit.to(dt) - g_k_w
    if not full_keep:
        if not bool(((keep_t >= 0) & (keep_t <= 1)).all()):
            raise ValueError("feature keep B must lie in [0, 1]")
        pull = (1 - keep_t).reshape(-1, 1, 1, 1) if keep_t.ndim else 1 - keep_t
        if rho is not None:
            pull = pull * torch.as_tensor(rho, dtype=dt, device=dev).reshape(-1, 1, 1, 1)
        delta = delta - pull * (feature - g_k_w)
    if mask16 is None:
        out = feature + delta
    else:
        m = mask16.to(device=dev, dtype=dt)
        if m.ndim != 4 or m.shape[1] != 1 or m.shape[-2:] != feature.shape[-2:]:
            raise ValueError(f"mask16 must be [B,1,{feature.shape[-2]},{feature.shape[-1]}], got {tuple(m.shape)}")
        out = torch.where(m > 0, feature + m * delta, feature)
    if unchanged is not None and bool(unchanged.any()):
        out = torch.where(unchanged.view(-1, 1, 1, 1).to(out.device), feature, out)
    return out


def edit_weight_rho(strengths: torch.Tensor | Sequence[float], fade_weights: torch.Tensor | Sequence[float],
                    peak: float | None = None) -> torch.Tensor:
    """Per-frame edit weight ``rho_t = |S_t| / max |S| * fade_t``: ``[T]`` float32 in [0,1].

    strengths: the strength schedule ``S_t`` ``[T]`` before any fade (the keyframe value, or the
    constant strength); fade_weights: ``[T]`` in [0,1] (``AlignedFace.edit_weight``: fades around
    gaps and track ends, 0 for passthrough). peak: ``max |S|`` over the clip (:func:`strength_peak`
    for a streamed clip); None takes the maximum of ``strengths``. A zero peak gives all zeros.
    """
    s = torch.as_tensor(strengths, dtype=torch.float64).abs().reshape(-1)
    fade = torch.as_tensor(fade_weights, dtype=torch.float64).reshape(-1)
    if s.shape != fade.shape:
        raise ValueError(f"strengths {tuple(s.shape)} and fade weights {tuple(fade.shape)} differ in length")
    top = float(s.max()) if peak is None and len(s) else float(abs(peak or 0.0))
    if top == 0.0:
        return torch.zeros(len(s), dtype=torch.float32)
    return ((s / top).clamp(max=1.0) * fade.clamp(0, 1)).float()


def strength_peak(strength: float | Keyframes) -> float:
    """``max |S|`` of a strength schedule: ``|S|`` for a constant, the largest ``|value|`` of the keys
    for keyframes (piecewise linear, so the extremes are at keys; keys outside a trimmed clip count)."""
    if isinstance(strength, Keyframes):
        return max(abs(float(v)) for _, v in strength.keys)
    return abs(float(strength))


def check_feature_keep(value: float | Keyframes) -> None:
    """``--feature-keep``: a finite number (or keyframe values) in [0, 1] (1 keeps the encoder's F)."""
    check_unit_schedule("--feature-keep", value)
