"""What the jobs return: one :class:`InputResult` per input, gathered in an :class:`EditResult`;
and the progress protocol every job takes."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ContextManager

from vidinvert.pipeline.request import VIDEO

Advance = Callable[[str, int], None]
#: ``progress(title, totals per stage, unit)`` -> a context whose value is ``advance(stage, n)``
ProgressFactory = Callable[[str, dict, str], ContextManager[Advance]]


@contextlib.contextmanager
def no_progress(title: str, totals: dict, unit: str) -> Iterator[Advance]:
    """The progress factory that shows nothing."""
    yield lambda stage, n: None


@dataclass
class InputResult:
    """What happened to one input: its outputs, its report (clips; images with ``report``), or
    the one-line reason it failed."""

    source: Path
    kind: str
    outputs: dict[str, Path] = field(default_factory=dict)
    report: dict | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class EditResult:
    """The result of :func:`~vidinvert.pipeline.job.run_edit`: one :class:`InputResult` per input (in
    order), the device, the model files and the seconds spent checking inputs, loading models and running."""

    items: list[InputResult]
    device: str | None = None
    models: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def failed(self) -> list[InputResult]:
        return [r for r in self.items if not r.ok]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def as_dict(self) -> dict:
        """JSON-able: ``inputs`` (one entry each), ``videos`` (the clips' reports), ``outputs``
        (every file written), ``failed`` (inputs), ``device``, ``models``, ``seconds``."""
        return {"inputs": [{"input": str(r.source), "kind": r.kind, "outputs": {k: str(v) for k, v in r.outputs.items()},
                            "error": r.error} for r in self.items],
                "videos": [r.report for r in self.items if r.ok and r.kind == VIDEO],
                "images": [r.report for r in self.items if r.ok and r.kind != VIDEO and r.report is not None],
                "outputs": [str(v) for r in self.items for v in r.outputs.values()],
                "failed": [str(r.source) for r in self.failed], "device": self.device, "models": self.models,
                "seconds": self.seconds}
