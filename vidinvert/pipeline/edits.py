"""The edits of one job, resolved once the models are loaded, applied batch by batch.

:class:`EditPlan` holds what every output of a job shares: the strength schedule, the feature
keep B (``--feature-keep``), the region masker (``--region``) and the style reference
(``--style``: its inverted w, its strength schedule and rows). :meth:`EditPlan.edit_batch`
turns the (filtered) latents of a batch of aligned faces into each output's edited latents:

    w'  = w + A_t · M · (w_ref − w)                 (style, when given; F unchanged)
    w~  = w' + 15 · S_t · d                           (the output's direction, S_t faded)
    s~  = s(w~) + S_t · Δs                            (the output's StyleSpace part, if any)
    F~  = F + R ⊙ (G_K(s~) − G_K(w')) − (1 − B) · ρ_t · R ⊙ (F − G_K(w'))

with R the region mask on the feature grid (1 without ``--region``) and ρ_t = |S_t| / max|S|
times the frame's fade weight. Without style, region and B < 1 this is exactly eq. (1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from vidinvert.edit.directions import EditSpec
from vidinvert.edit.latent import edit_weight_rho, strength_peak
from vidinvert.edit.style import style_amounts, style_mix
from vidinvert.engine import Inverter, Latents
from vidinvert.timespec import Keyframes


def value_at(schedule: float | Keyframes, index: int, time_s: float) -> float:
    return schedule.value_at(index, time_s) if isinstance(schedule, Keyframes) else float(schedule)


@dataclass
class StyleReference:
    """``--style``: the reference's inverted ``w`` ``[1,L,D]`` float32, its strength schedule A
    (0..1) and the w+ rows it replaces (bool ``[L]``)."""

    path: Path
    w: torch.Tensor
    strength: float | Keyframes
    rows: torch.Tensor
    crop: torch.Tensor | None = None  # the reference's aligned crop [1,3,S,S] in [-1,1] (identity)


@dataclass
class EditPlan:
    """The edits shared by every output of a job (see the module docstring)."""

    strength: float | Keyframes = 0.0
    feature_keep: float | Keyframes = 1.0
    regions: object | None = None  # a RegionMasker
    style: StyleReference | None = None

    @property
    def local(self) -> bool:
        return self.regions is not None

    def strengths(self, frames: Sequence[tuple[int, float]], fades: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per frame ``(S_t · fade_t, ρ_t)`` as ``[B]`` float32 each."""
        raw = [value_at(self.strength, i, t) for i, t in frames]
        faded = torch.tensor([s * float(f) for s, f in zip(raw, fades)], dtype=torch.float32)
        rho = edit_weight_rho(raw, list(fades), peak=strength_peak(self.strength))
        return faded, rho

    def styled(self, lat: Latents, frames: Sequence[tuple[int, float]]) -> Latents:
        """The latents after the style mix (``lat`` itself without ``--style``)."""
        if self.style is None:
            return lat
        amount = style_amounts(self.style.strength, list(frames))
        w = style_mix(lat.w, self.style.w.to(lat.w.device), amount.to(lat.w.device), self.style.rows.to(lat.w.device))
        return Latents(w, lat.f, lat.ds)

    def edit_batch(self, inv: Inverter, lat: Latents, outputs: Sequence[tuple[str, EditSpec | None]],
                   frames: Sequence[tuple[int, float]], fades: Sequence[float],
                   region16: torch.Tensor | None = None) -> dict[str, Latents]:
        """Each output's edited latents: ``outputs`` are ``(name, spec)``; a spec of None is the
        style alone. ``frames``: ``(index, time)`` per row; ``fades``: the rows' fade weights."""
        base = self.styled(lat, frames)
        strengths, rho = self.strengths(frames, fades)
        keep = torch.tensor([value_at(self.feature_keep, i, t) for i, t in frames], dtype=torch.float32)
        g_k_w = None
        out: dict[str, Latents] = {}
        for name, spec in outputs:
            if spec is None:
                out[name] = base
                continue
            if g_k_w is None:
                g_k_w = inv.feature_at_k(base.w, base.ds)
            out[name] = inv.edit(base, spec.delta(), strengths, g_k_w=g_k_w, mask16=region16, keep=keep, rho=rho,
                                 style_delta=spec.style_delta())
        return out


def style_offsets(edited: Sequence[Latents]) -> np.ndarray | None:
    """The edits' style offsets as float32 ``[N, E, N_s]`` (zeros for an edit without one), or None
    when no edit has one."""
    if all(e.ds is None for e in edited):
        return None
    n_s = next(e.ds for e in edited if e.ds is not None).shape[1]
    return torch.stack([torch.zeros(len(e), n_s) if e.ds is None else e.ds.detach().cpu().float()
                        for e in edited], 1).numpy()
