"""The resumable state of a video run: everything carried from one chunk to the next.

A finished chunk's outputs are on disk; what the following chunks still need is, per face track,
the report's running metrics (embeddings, flicker, the warping-error meter with its last frame,
the timeline of measured frames), the fine-layer running mean, the stream position of the last
frame fed to the metrics, plus the run's stage clock. :class:`RunState`
holds exactly that, and :meth:`RunState.snapshot` / :meth:`RunState.load` are what the work folder
saves and restores (``running.pt``, tensors and strings only, read with ``weights_only=True``).
Temporal state is kept per track: filters, flicker and the warping error never pair frames of
two people, and :meth:`TrackState.feed` starts a new run at every gap.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from vidinvert.edit.temporal import FineMeanState
from vidinvert.metrics.warping import WarpingErrorMeter
from vidinvert.pipeline.report import StageClock, StreamMetrics
from vidinvert.pipeline.temporal_report import FrameMark, Timeline


@dataclass
class TrackState:
    """One face track's running state. ``edits``: one :class:`StreamMetrics` per edit output.
    ``warp``: the warping-error meter of every stream; ``timeline``: the measured frames.
    ``frames``: frames fed to the meters; ``first``/``last``: their first and last frame index."""

    edit_names: tuple[str, ...] = ()
    source: StreamMetrics = field(default_factory=StreamMetrics)
    inversion: StreamMetrics = field(default_factory=StreamMetrics)
    edits: dict[str, StreamMetrics] = field(default_factory=dict)
    fine: FineMeanState = field(default_factory=FineMeanState)
    timeline: Timeline = field(default_factory=Timeline)
    warp: WarpingErrorMeter | None = None
    last_pos: int = -2  # stream position of the last frame fed to the flicker meters
    frames: int = 0
    first: int = -1
    last: int = -1

    def __post_init__(self) -> None:
        for name in self.edit_names:
            self.edits.setdefault(name, StreamMetrics())
        if self.warp is None:
            self.warp = WarpingErrorMeter(("source", "inversion", *self.edit_names))

    def streams(self) -> list[StreamMetrics]:
        return [self.source, self.inversion, *self.edits.values()]

    def named_streams(self) -> dict[str, StreamMetrics]:
        return {"source": self.source, "inversion": self.inversion, **self.edits}

    def feed(self, crops: Mapping[str, torch.Tensor], embeddings: Mapping[str, torch.Tensor | None],
             frames: Sequence[FrameMark], mask: torch.Tensor | None, *, new_run: bool) -> None:
        """One run of consecutive frames (or its continuation, ``new_run`` False) to every meter.

        crops: stream name (``source``, ``inversion``, each edit) -> aligned crops ``[n,3,S,S]`` RGB
        in [-1,1]; embeddings: name -> ``[n,D]`` or None; frames: the n frames; mask: frame t's paste
        masks ``[n,1,r,r]`` in [0,1] (None: the whole crop), the warping error's valid set."""
        if new_run:
            for sm in self.streams():
                sm.gap()
            self.warp.reset()
            self.timeline.new_run()
        ids = [f.index for f in frames]
        for name, sm in self.named_streams().items():
            sm.add(crops[name], embeddings.get(name), ids)
        self.warp.update(crops, mask)
        self.timeline.add(frames)
        self.frames += len(frames)
        self.first = ids[0] if self.first < 0 else self.first
        self.last = ids[-1]

    def snapshot(self) -> dict:
        fine = self.fine
        return {"source": self.source.state(), "inversion": self.inversion.state(),
                "edits": {k: v.state() for k, v in self.edits.items()},
                "fine_total": fine.total.clone() if fine.total is not None else torch.zeros(0),
                "fine_count": torch.tensor(fine.count), "last_pos": torch.tensor(self.last_pos),
                "warp": self.warp.state(), "timeline": self.timeline.state(),
                "frames": torch.tensor([self.frames, self.first, self.last])}

    def load(self, st: dict) -> None:
        self.source.load(st["source"])
        self.inversion.load(st["inversion"])
        for k, v in st["edits"].items():
            self.edits.setdefault(k, StreamMetrics()).load(v)
        self.fine.total = st["fine_total"] if st["fine_total"].numel() else None
        self.fine.count = int(st["fine_count"])
        self.last_pos = int(st["last_pos"])
        self.warp.load(st["warp"])
        self.timeline.load(st["timeline"])
        self.frames, self.first, self.last = (int(v) for v in st["frames"].tolist())


@dataclass
class RunState:
    """Per-run running state: a :class:`TrackState` per face track (by id) and the stage clock.
    ``source``/``inversion``/``edits``/``fine``/``last_pos`` are track 0's (the one face of a
    one-face run)."""

    edit_names: tuple[str, ...] = ()
    tracks: dict[int, TrackState] = field(default_factory=dict)
    clock: StageClock = field(default_factory=StageClock)

    def __post_init__(self) -> None:
        self.track(0)

    def track(self, tid: int) -> TrackState:
        """Track ``tid``'s state (created empty the first time it is asked for)."""
        if tid not in self.tracks:
            self.tracks[tid] = TrackState(self.edit_names)
        return self.tracks[tid]

    @property
    def source(self) -> StreamMetrics:
        return self.track(0).source

    @property
    def inversion(self) -> StreamMetrics:
        return self.track(0).inversion

    @property
    def edits(self) -> dict[str, StreamMetrics]:
        return self.track(0).edits

    @property
    def fine(self) -> FineMeanState:
        return self.track(0).fine

    @property
    def last_pos(self) -> int:
        return self.track(0).last_pos

    def snapshot(self) -> dict:
        """The state as a dict of tensors (and JSON strings), detached from later changes."""
        return {"tracks": {str(t): ts.snapshot() for t, ts in sorted(self.tracks.items())},
                "clock": json.dumps(self.clock.state())}

    def load(self, st: dict) -> None:
        """Restore a :meth:`snapshot`."""
        for t, v in st["tracks"].items():
            self.track(int(t)).load(v)
        self.clock.load(json.loads(st["clock"]))
