"""``vidinvert train``'s one library call: a typed :class:`TrainRequest` and :func:`run_training`.

Under torchrun every rank calls it; only the main rank reports progress and returns the summary.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidinvert.distributed import context_from_env
from vidinvert.errors import VidinvertError
from vidinvert.train.checkpoint import latest_checkpoint
from vidinvert.train.config import load_config
from vidinvert.train.loop import train

log = logging.getLogger("vidinvert.train")


@dataclass(frozen=True)
class TrainRequest:
    """Train (or ``resume``) an encoder: ``config`` (YAML; optional with ``resume``), dotted ``sets``
    overrides (``optim.lr=5e-5``), ``run_dir`` (default ``runs/<config stem>``), ``weights_dir``,
    ``device`` (overrides the config's)."""

    config: Path | None = None
    sets: tuple[str, ...] = ()
    run_dir: Path | None = None
    resume: bool = False
    weights_dir: Path | None = None
    device: str | None = None

    @property
    def overrides(self) -> tuple[str, ...]:
        return (*self.sets, *((f"device={self.device}",) if self.device else ()))

    def resolved_run_dir(self) -> Path:
        if self.run_dir is not None:
            return Path(self.run_dir)
        if self.config is None:
            raise VidinvertError("give a CONFIG file, or --run-dir DIR with --resume")
        return Path("runs") / Path(self.config).stem

    def check(self) -> None:
        """The run folder named and the configuration valid with every override (before anything starts)."""
        self.resolved_run_dir()
        if self.config is not None:
            load_config(self.config, self.overrides)

    def resume_hint(self) -> str | None:
        """After an interruption: how to continue (None when no checkpoint was written yet)."""
        try:
            rd = self.resolved_run_dir()
        except VidinvertError:
            return None
        latest = latest_checkpoint(rd)
        return None if latest is None else f"continue with --resume --run-dir {rd} (from {latest.name})"


ProgressFn = Callable[[int, int, dict[str, float]], None]


def run_training(request: TrainRequest, progress: ProgressFn | None = None) -> dict[str, Any] | None:
    """Train; the summary (iteration, checkpoint, run folder, finished) on the main rank, None on
    the others (which report nothing)."""
    request.check()
    run_dir = request.resolved_run_dir()
    cfg = load_config(request.config) if request.config is not None else None
    info = context_from_env()
    if info.is_main:
        what = "resuming" if request.resume else "training"
        log.info(f"{what} into {run_dir}" + (f" ({info.world_size} processes)" if info.distributed else ""))
    summary = train(cfg, run_dir, resume=request.resume, overrides=request.overrides, weights_dir=request.weights_dir,
                    progress=progress if info.is_main else None)
    return summary if info.is_main else None
