"""The resumable state of a video run: everything carried from one chunk to the next.

A finished chunk's outputs are on disk; what the following chunks still need is the report's
running metrics (embeddings, flicker), the fine-layer running mean, the stream position of the
last frame fed to the metrics and the stage clock. :class:`RunState` holds exactly that, and
:meth:`RunState.snapshot` / :meth:`RunState.load` are what the work folder saves and restores
(``running.pt``, tensors only, read with ``weights_only=True``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import torch

from vidinvert.edit.temporal import FineMeanState
from vidinvert.pipeline.report import StageClock, StreamMetrics


@dataclass
class RunState:
    """Per-run running state. ``edits``: one :class:`StreamMetrics` per edit output, by name."""

    edit_names: tuple[str, ...] = ()
    source: StreamMetrics = field(default_factory=StreamMetrics)
    inversion: StreamMetrics = field(default_factory=StreamMetrics)
    edits: dict[str, StreamMetrics] = field(default_factory=dict)
    fine: FineMeanState = field(default_factory=FineMeanState)
    last_pos: int = -2  # stream position of the last frame fed to the flicker meters
    clock: StageClock = field(default_factory=StageClock)

    def __post_init__(self) -> None:
        for name in self.edit_names:
            self.edits.setdefault(name, StreamMetrics())

    def snapshot(self) -> dict:
        """The state as a dict of tensors (and one JSON string), detached from later changes."""
        fine = self.fine
        return {"source": self.source.state(), "inversion": self.inversion.state(),
                "edits": {k: v.state() for k, v in self.edits.items()},
                "fine_total": fine.total.clone() if fine.total is not None else torch.zeros(0),
                "fine_count": torch.tensor(fine.count), "last_pos": torch.tensor(self.last_pos),
                "clock": json.dumps(self.clock.state())}

    def load(self, st: dict) -> None:
        """Restore a :meth:`snapshot`."""
        self.source.load(st["source"])
        self.inversion.load(st["inversion"])
        for k, v in st["edits"].items():
            self.edits[k].load(v)
        self.fine.total = st["fine_total"] if st["fine_total"].numel() else None
        self.fine.count = int(st["fine_count"])
        self.last_pos = int(st["last_pos"])
        self.clock.load(json.loads(st["clock"]))
