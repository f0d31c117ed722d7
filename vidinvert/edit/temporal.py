"""Temporal filters of per-frame latents (w+ and F), applied chunk by chunk with one chunk of look-ahead.

Frames are grouped into runs of consecutive frames that have a face; no filter mixes two runs
(a gap without the face is a cut). The smoother is a Gaussian-weighted local linear fit: in the
middle of a run it is exactly the centred Gaussian, and at a run's ends, where the window is
one-sided, the linear term removes the lag a truncated Gaussian would have. No frame is dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def run_ids(valid: list[bool]) -> torch.Tensor:
    """``[N]`` int64: the run each frame belongs to (a new run starts after every invalid frame)."""
    ids, run, prev = [], 0, False
    for v in valid:
        if v and not prev:
            run += 1
        ids.append(run if v else -1)
        prev = v
    return torch.tensor(ids, dtype=torch.int64)


def smooth_window(x: torch.Tensor, valid: list[bool], targets: range, sigma: float) -> torch.Tensor:
    """Gaussian local linear smoothing (sigma in frames) of ``x`` ``[N, ...]`` at ``targets``.

    ``valid[i]`` says whether frame i has latents (rows of invalid frames are ignored). Returns
    ``[len(targets), ...]``; a target that is not valid gets its own row unchanged. The estimate
    at a target is ``sum_j l_j x_j`` with the local linear fit's equivalent kernel
    ``l_j = g_j (S2 - o_j S1) / (S0 S2 - S1^2)`` (``g`` Gaussian weights, ``o`` offsets,
    ``S_k = sum g o^k``), which is the plain normalised Gaussian when the window is symmetric.
    """
    n = x.shape[0]
    ids = run_ids(valid)
    t = torch.tensor(list(targets), dtype=torch.int64)
    if sigma <= 0 or n == 0:
        return x[t].clone()
    r = int(math.ceil(3 * sigma))
    pos = torch.arange(n)
    dist = (t.view(-1, 1) - pos.view(1, -1)).abs()
    same = (ids[t].view(-1, 1) == ids.view(1, -1)) & (ids.view(1, -1) >= 0) & (dist <= r)
    g = torch.exp(-0.5 * (dist.double() / sigma) ** 2) * same
    off = (pos.view(1, -1) - t.view(-1, 1)).double()
    s0, s1, s2 = g.sum(1, keepdim=True), (g * off).sum(1, keepdim=True), (g * off * off).sum(1, keepdim=True)
    det = s0 * s2 - s1 * s1
    ok = det > 1e-9 * s0 * s0  # a single frame (or a degenerate window) falls back to the plain mean
    w = torch.where(ok, g * (s2 - off * s1) / torch.where(ok, det, torch.ones_like(det)), g / s0.clamp_min(1e-300))
    own = ids[t] < 0
    w[own, :] = 0
    w[own, t[own]] = 1.0
    flat = x.reshape(n, -1).double()
    return (w @ flat).to(x.dtype).reshape((len(t),) + tuple(x.shape[1:]))


@dataclass
class FineMeanState:
    """Running mean of the fine rows of w+ within the current run (state carried across chunks)."""

    total: torch.Tensor | None = None
    count: int = 0

    def reset(self) -> None:
        self.total, self.count = None, 0

    def apply(self, w: torch.Tensor, start: int) -> torch.Tensor:
        """One frame's ``[L, D]`` -> rows ``start..`` replaced by the mean over the run so far."""
        fine = w[start:].double()
        self.total = fine.clone() if self.total is None else self.total + fine
        self.count += 1
        out = w.clone()
        out[start:] = (self.total / self.count).to(w.dtype)
        return out
