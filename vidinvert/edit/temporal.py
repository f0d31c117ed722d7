"""Temporal filters over per-frame latents, streaming with a bounded look-ahead.

Both filters keep every frame (no dropped first or last frames) and add no lag: the Gaussian
is centred, truncated at the clip's (or a run's) ends and renormalised there.
"""

from __future__ import annotations

import math

import torch


def gaussian_taps(sigma: float, radius: int | None = None) -> torch.Tensor:
    """Unnormalised Gaussian taps ``[2r+1]`` (float64), r = ceil(3 sigma) by default."""
    r = int(math.ceil(3 * sigma)) if radius is None else int(radius)
    x = torch.arange(-r, r + 1, dtype=torch.float64)
    return torch.exp(-0.5 * (x / max(sigma, 1e-12)) ** 2)


class StreamingGaussian:
    """Centred Gaussian smoothing of a stream of per-frame tensors ``[B, ...]``.

    ``push(x)`` returns the smoothed frames that are final (their ``radius`` successors are
    known) as a tensor ``[k, ...]`` (k may be 0); ``flush()`` returns the rest at the end of a
    run (the stream's end, or before a gap: call ``flush()`` then keep pushing). The output has
    exactly as many frames as went in, in order. Memory: ``2*radius+1`` frames.
    ``sigma <= 0`` passes frames through unchanged.
    """

    def __init__(self, sigma: float) -> None:
        self.sigma = float(sigma)
        self.radius = int(math.ceil(3 * sigma)) if sigma > 0 else 0
        self.taps = gaussian_taps(sigma) if sigma > 0 else torch.ones(1, dtype=torch.float64)
        self._buf: list[torch.Tensor] = []  # frames kept for context (last `radius` done + pending)
        self._done_in_buf = 0  # how many frames at the start of _buf are already emitted

    def _emit(self, upto: int) -> list[torch.Tensor]:
        out = []
        r = self.radius
        n = len(self._buf)
        for i in range(self._done_in_buf, upto):
            lo, hi = max(0, i - r), min(n, i + r + 1)
            w = self.taps[lo - i + r : hi - i + r]
            w = (w / w.sum()).to(self._buf[i].dtype)
            stack = torch.stack(self._buf[lo:hi])
            out.append(torch.tensordot(w.to(stack.device), stack, dims=1))
        self._done_in_buf = max(self._done_in_buf, upto)
        # drop frames no longer needed as context
        keep_from = max(0, self._done_in_buf - r)
        if keep_from:
            self._buf = self._buf[keep_from:]
            self._done_in_buf -= keep_from
        return out

    def push(self, x: torch.Tensor) -> torch.Tensor:
        if self.radius == 0:
            return x
        self._buf.extend(list(x))
        ready = len(self._buf) - self.radius
        out = self._emit(ready) if ready > self._done_in_buf else []
        return torch.stack(out) if out else x[:0]

    def flush(self) -> torch.Tensor | None:
        if self.radius == 0 or not self._buf:
            self._buf, self._done_in_buf = [], 0
            return None
        out = self._emit(len(self._buf))
        self._buf, self._done_in_buf = [], 0
        return torch.stack(out) if out else None


class RunningFineMean:
    """Fine-layer averaging: rows ``start..`` of w+ replaced by their running mean over the run.

    The fine rows (9..17 at 1024 px) drive texture and colour; averaging them removes texture
    flicker without touching pose and expression (coarse/middle rows). Streaming and causal:
    frame t gets the mean of frames 0..t of the current run. ``reset()`` at a gap.
    """

    def __init__(self, start: int = 9) -> None:
        self.start = start
        self._sum: torch.Tensor | None = None
        self._n = 0

    def reset(self) -> None:
        self._sum, self._n = None, 0

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        """``w``: ``[B, L, D]`` -> same shape with rows ``start..`` replaced."""
        out = w.clone()
        fine = w[:, self.start :].double()
        csum = fine.cumsum(0)
        if self._sum is not None:
            csum = csum + self._sum
        counts = torch.arange(1, w.shape[0] + 1, dtype=torch.float64, device=w.device).view(-1, 1, 1) + self._n
        out[:, self.start :] = (csum / counts).to(w.dtype)
        self._sum = csum[-1]
        self._n += w.shape[0]
        return out
