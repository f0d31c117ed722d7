"""Streaming temporal smoothing of crop quads, gap filling and fade weights.

Each frame brings a raw crop (``quad_to_params``: centre and half x-axis, 4 numbers) or None
when the tracked face was not found, plus optional landmarks in crop-normalised coordinates.

- Gaps: a run of frames without the face is *short* when the time from the last frame with the
  face before it to the first frame with it after it is at most ``max_gap`` seconds (default
  0.5 s, from the timestamps, so variable frame rates are fine). Short gaps are filled by linear
  interpolation in time of the crop (and landmarks) and edited ("interpolated"). Longer gaps, and
  frames before the first or after the last sighting, pass through unedited ("passthrough").
- Smoothing: centre and axes are smoothed separately with Gaussian weights (``sigma_center``,
  ``sigma_axes``, in frames) within the contiguous run of edited frames, by Gaussian-weighted
  *local linear* regression: in the middle of a run that is the plain Gaussian average; near a
  run's ends the truncated kernel is renormalised and fitted with a slope, so motion is followed
  without lag and the first and last frames are kept.
- Fades: next to a passthrough stretch the edit weight ramps ``1/(F+1), 2/(F+1), ..., 1`` over
  ``fade_frames = F`` frames, so the edit fades out before a long gap and back in after it
  instead of popping. The clip's own first and last frames do not fade; a stream started with
  ``fade_in=True`` (a face track that begins mid-clip) fades in at its first frame.
- Streaming: a frame is emitted once ``horizon = max(window, fade_frames)`` later frames have
  been seen and resolved (window = ``ceil(truncate * max sigma)``); a gap in progress holds
  emission until it is resolved (at most ``max_gap`` seconds). Memory is bounded by that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from vidinvert.face.align import params_to_quad

DETECTED, INTERPOLATED, PASSTHROUGH = "detected", "interpolated", "passthrough"


@dataclass(frozen=True)
class SmoothConfig:
    """Temporal smoothing and gap handling (sigmas in frames, ``max_gap`` in seconds)."""

    sigma_center: float = 2.0
    sigma_axes: float = 4.0
    sigma_landmarks: float = 2.0
    truncate: float = 3.0
    max_gap: float = 0.5
    fade_frames: int = 5

    @property
    def window(self) -> int:
        """Frames of look-ahead (and look-behind) the smoothing kernel uses."""
        s = max(self.sigma_center, self.sigma_axes, self.sigma_landmarks, 0.0)
        return int(math.ceil(self.truncate * s))

    @property
    def horizon(self) -> int:
        return max(self.window, int(self.fade_frames))


@dataclass
class SmoothedQuad:
    """One output frame: ``quad [4,2]`` (None for passthrough), status, ``edit_weight`` in [0,1],
    ``landmarks_crop [K,2]`` (crop-normalised, 0..1, smoothed) or None."""

    index: int
    time: float
    quad: np.ndarray | None
    status: str
    edit_weight: float
    landmarks_crop: np.ndarray | None = None


@dataclass
class _Entry:
    pos: int
    index: int
    time: float
    params: np.ndarray | None
    extra: np.ndarray | None
    status: str | None


def local_linear(values: np.ndarray, offsets: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-weighted local linear fit evaluated at offset 0.

    values ``[N,D]`` at frame offsets ``[N]`` (0 = the frame being smoothed) -> ``[D]``. Exact for
    linear motion at any position of a truncated window (no lag at the ends of a run).
    """
    values = np.asarray(values, np.float64)
    d = np.asarray(offsets, np.float64)
    if sigma <= 0 or len(d) == 1:
        return values[np.argmin(np.abs(d))]
    w = np.exp(-0.5 * (d / sigma) ** 2)
    s0, s1, s2 = w.sum(), (w * d).sum(), (w * d * d).sum()
    t0 = (w[:, None] * values).sum(0)
    t1 = ((w * d)[:, None] * values).sum(0)
    det = s0 * s2 - s1 * s1
    if det <= 1e-9 * max(s0 * s2, 1e-12):
        return t0 / s0
    return (s2 * t0 - s1 * t1) / det


class StreamingQuadSmoother:
    """Push frames in order; get :class:`SmoothedQuad` items back in order, each exactly once."""

    def __init__(self, config: SmoothConfig = SmoothConfig(), fade_in: bool = False):
        """``fade_in``: the first frame pushed follows a passthrough stretch (a track that starts
        mid-clip), so the edit fades in there; else the stream's start is the clip's (no fade)."""
        self.cfg = config
        self.fade_in = bool(fade_in)
        self._entries: dict[int, _Entry] = {}
        self._next = 0
        self._emit = 0
        self._last_face: _Entry | None = None
        self._gap: list[_Entry] = []
        self._finished = False

    @property
    def buffered(self) -> int:
        """Frames pushed but not yet emitted."""
        return self._next - self._emit

    def push(self, index: int, time: float, params: np.ndarray | None,
             landmarks_crop: np.ndarray | None = None) -> list[SmoothedQuad]:
        """Add one frame: ``params [4]`` (see ``quad_to_params``) or None, optional ``[K,2]`` landmarks."""
        if self._finished:
            raise RuntimeError("push after finish")
        e = _Entry(self._next, int(index), float(time),
                   None if params is None else np.asarray(params, np.float64).reshape(4),
                   None if landmarks_crop is None else np.asarray(landmarks_crop, np.float64),
                   None)
        self._entries[e.pos] = e
        self._next += 1
        if e.params is not None:
            self._close_gap(e)
            e.status = DETECTED
            self._last_face = e
        elif self._last_face is None:
            e.status = PASSTHROUGH
        else:
            self._gap.append(e)
            if e.time - self._last_face.time > self.cfg.max_gap:
                self._pass_gap()
        return self._drain(final=False)

    def finish(self) -> list[SmoothedQuad]:
        """End of stream: resolve a trailing gap (passthrough) and emit everything left."""
        self._pass_gap()
        self._finished = True
        return self._drain(final=True)

    def run(self, items: Iterable[tuple[int, float, np.ndarray | None]]) -> list[SmoothedQuad]:
        """Convenience: push ``(index, time, params)`` for a whole sequence, then finish."""
        out: list[SmoothedQuad] = []
        for index, time, params in items:
            out += self.push(index, time, params)
        return out + self.finish()

    # ------------------------------------------------------------------ internals
    def _pass_gap(self) -> None:
        for g in self._gap:
            g.status = PASSTHROUGH
        self._gap = []

    def _close_gap(self, e: _Entry) -> None:
        if not self._gap:
            return
        a = self._last_face
        if a is None or e.time - a.time > self.cfg.max_gap:
            self._pass_gap()
            return
        span = e.time - a.time
        lm_ok = a.extra is not None and e.extra is not None and a.extra.shape == e.extra.shape
        for g in self._gap:
            t = (g.time - a.time) / span if span > 0 else (g.pos - a.pos) / (e.pos - a.pos)
            t = float(np.clip(t, 0.0, 1.0))
            g.params = (1 - t) * a.params + t * e.params
            g.extra = (1 - t) * a.extra + t * e.extra if lm_ok else None
            g.status = INTERPOLATED
        self._gap = []

    def _ready(self, pos: int, final: bool) -> bool:
        e = self._entries[pos]
        if e.status is None:
            return False
        if final:
            return True
        last = pos + self.cfg.horizon
        if last >= self._next:
            return False
        return all(self._entries[p].status is not None for p in range(pos + 1, last + 1))

    def _drain(self, final: bool) -> list[SmoothedQuad]:
        out = []
        while self._emit < self._next and self._ready(self._emit, final):
            out.append(self._smooth(self._entries[self._emit]))
            self._emit += 1
            old = self._emit - self.cfg.horizon - 1
            self._entries.pop(old, None)
        return out

    def _run_side(self, e: _Entry, step: int) -> tuple[list[_Entry], int | None]:
        """Edited neighbours of ``e`` in direction ``step`` (within the horizon) and the distance to
        the first passthrough frame on that side (None: none within the horizon or the clip ends)."""
        found, p = [], e.pos + step
        for dist in range(1, self.cfg.horizon + 1):
            q = self._entries.get(p)
            if q is None:
                return found, (dist if p < 0 and self.fade_in else None)
            if q.status == PASSTHROUGH:
                return found, dist
            found.append(q)
            p += step
        return found, None

    def _smooth(self, e: _Entry) -> SmoothedQuad:
        if e.status == PASSTHROUGH:
            return SmoothedQuad(e.index, e.time, None, PASSTHROUGH, 0.0, None)
        cfg = self.cfg
        left, dl = self._run_side(e, -1)
        right, dr = self._run_side(e, +1)
        weight = 1.0
        for dist in (dl, dr):
            if dist is not None:
                weight = min(weight, dist / (cfg.fade_frames + 1))
        run = [q for q in left[::-1] if e.pos - q.pos <= cfg.window] + [e]
        run += [q for q in right if q.pos - e.pos <= cfg.window]
        off = np.array([q.pos - e.pos for q in run], np.float64)
        params = np.stack([q.params for q in run])
        centre = local_linear(params[:, :2], off, cfg.sigma_center)
        axes = local_linear(params[:, 2:], off, cfg.sigma_axes)
        quad = params_to_quad(np.concatenate([centre, axes]))
        lm = None
        if e.extra is not None:
            same = [i for i, q in enumerate(run) if q.extra is not None and q.extra.shape == e.extra.shape]
            vals = np.stack([run[i].extra.reshape(-1) for i in same])
            lm = local_linear(vals, off[same], cfg.sigma_landmarks).reshape(e.extra.shape)
        return SmoothedQuad(e.index, e.time, quad, e.status, float(weight), lm)
