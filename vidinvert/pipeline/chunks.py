"""Chunks of a video run: frames with their faces (one per track), latents per (frame, track),
the network batches (whole frames, faces of the same frames mixed) and the temporal filters,
which run per track and never mix two people's latents.

A face is keyed by ``(p, t)``: ``p`` its frame's position in the chunk, ``t`` its track id. Keys
are ordered by frame, then track. With one face the keys are ``(p, 0)`` and everything reduces to
the one-face pipeline exactly (same batches, same filters).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from vidinvert.edit.temporal import smooth_window
from vidinvert.engine import Latents
from vidinvert.face.stage import AlignedFace
from vidinvert.face.stream import FaceFrame
from vidinvert.pipeline.state import RunState

Key = tuple[int, int]


@dataclass
class Chunk:
    """Frames of one chunk (their timestamps travel with them) and, once inverted, the raw
    latents (before the filters) of each face with a crop, by :data:`Key`."""

    number: int
    frames: list[FaceFrame]
    latents: dict[Key, Latents] = field(default_factory=dict)

    @property
    def keys(self) -> list[Key]:
        """Every face with a crop (quad set), by frame then track."""
        return [(p, a.track) for p, ff in enumerate(self.frames) for a in ff.faces if a.quad is not None]

    def face(self, key: Key) -> AlignedFace:
        p, t = key
        return next(a for a in self.frames[p].faces if a.track == t)

    @property
    def tracks(self) -> set[int]:
        return {a.track for ff in self.frames for a in ff.faces}

    @property
    def pts(self) -> list[int | None]:
        return [ff.pts for ff in self.frames]

    @property
    def durations(self) -> list[int | None]:
        return [ff.duration for ff in self.frames]

    def track_latents(self, tid: int) -> list[Latents | None]:
        """Track ``tid``'s latents per frame of the chunk (None where it has none)."""
        return [self.latents.get((p, tid)) for p in range(len(self.frames))]

    def drop_pixels(self) -> None:
        """Free a finished chunk's pixels (its latents stay for the filters' context)."""
        for ff in self.frames:
            ff.frame = None  # type: ignore[assignment]
            ff.planes = None
            for a in ff.faces:
                a.frame = None  # type: ignore[assignment]


def batches(keys: list[Key], batch_size: int) -> list[list[Key]]:
    """Network batches of whole frames: consecutive frames whose faces add up to at most
    ``batch_size`` (a frame with more faces is a batch of its own). With one face per frame these
    are runs of ``batch_size`` faces, as in the one-face pipeline."""
    out: list[list[Key]] = []
    cur: list[Key] = []
    for p in sorted({k[0] for k in keys}):
        frame_keys = [k for k in keys if k[0] == p]
        if cur and len(cur) + len(frame_keys) > batch_size:
            out.append(cur)
            cur = []
        cur += frame_keys
    if cur:
        out.append(cur)
    return out


def filter_latents(before: Chunk | None, chunk: Chunk, after: Chunk | None, *, sigma: float,
                   fine_mean: bool, fine_start: int, state: RunState) -> dict[Key, Latents]:
    """``chunk``'s latents after the temporal filters, per track, with the neighbouring chunks as
    context: centred Gaussian smoothing of w+ and F (``sigma`` frames; 0 = off) and the fine rows
    of w+ replaced by their running mean (``fine_mean``; the mean restarts where a track has no
    face). w ``[1,L,D]``, F ``[1,C,16,16]`` float per key."""
    out: dict[Key, Latents] = dict(chunk.latents)
    in_chunk = sorted({t for _, t in chunk.latents})
    if sigma > 0:
        r = int(np.ceil(3 * sigma))
        for t in in_chunk:
            head = before.track_latents(t)[-r:] if before is not None else []
            mid = chunk.track_latents(t)
            tail = after.track_latents(t)[:r] if after is not None else []
            seq = head + mid + tail
            valid = [x is not None for x in seq]
            proto = next(x for x in seq if x is not None)
            w = torch.cat([x.w if x is not None else torch.zeros_like(proto.w) for x in seq])
            f = torch.cat([x.f if x is not None else torch.zeros_like(proto.f) for x in seq])
            targets = range(len(head), len(head) + len(mid))
            ws = smooth_window(w, valid, targets, sigma)
            fs = smooth_window(f, valid, targets, sigma)
            for k, x in enumerate(mid):
                if x is not None:
                    out[(k, t)] = Latents(ws[k : k + 1], fs[k : k + 1])
    if fine_mean:
        for t in sorted(set(state.tracks) | set(in_chunk)):
            fine = state.track(t).fine
            for p in range(len(chunk.frames)):
                lat = out.get((p, t))
                if lat is None:
                    fine.reset()
                else:
                    out[(p, t)] = Latents(fine.apply(lat.w[0], fine_start)[None], lat.f)
    return out
