"""What a training run writes besides checkpoints: ``losses.jsonl``, TensorBoard, image grids.

Only the main process logs. ``losses.jsonl`` has one JSON object per logged iteration
(``{"split": "train"|"val", "iteration": steps done, "loss": weighted total, "l2": ...,
"lr": ..., "fade": ..., "elapsed_s": ...}``); on ``--resume`` the records after the checkpoint
are dropped (the continued run writes them again), and TensorBoard purges them likewise.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from vidinvert.convert import uint8_from_unit

log = logging.getLogger(__name__)

LOSSES_FILE = "losses.jsonl"
TB_DIR = "tb"
IMAGES_DIR = "images"


def truncate_jsonl(path: Path, last_iteration: int) -> None:
    """Keep only records with ``iteration <= last_iteration`` (atomic rewrite)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill
        if int(rec.get("iteration", 0)) <= last_iteration:
            kept.append(line)
    fd, tmp = tempfile.mkstemp(prefix=".losses-", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("".join(k + "\n" for k in kept))
    os.replace(tmp, path)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All records of a ``losses.jsonl``."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def image_grid(columns: list[Tensor], max_rows: int = 8, max_side: int = 256) -> np.ndarray:
    """Images [B,3,S,S] in [-1,1] per column -> uint8 HxWx3 grid (one sample per row)."""
    cols = []
    for c in columns:
        c = c[:max_rows].detach().float().cpu()
        if c.shape[-1] > max_side:
            c = torch.nn.functional.interpolate(c, size=(max_side, max_side), mode="area")
        cols.append(c)
    grid = torch.cat([torch.cat(list(c), dim=1) for c in cols], dim=2)  # [3, rows*S, cols*S]
    return uint8_from_unit(grid).permute(1, 2, 0).numpy()


class RunLogger:
    """JSONL + TensorBoard + PNG grids for the main process (a silent stub on the others)."""

    def __init__(self, run_dir: Path, *, enabled: bool, tensorboard: bool, resume_from: int | None) -> None:
        self.enabled = enabled
        self.run_dir = Path(run_dir)
        self._fh = None
        self._tb = None
        if not enabled:
            return
        path = self.run_dir / LOSSES_FILE
        if resume_from is not None:
            truncate_jsonl(path, resume_from)
        self._fh = open(path, "a", encoding="utf-8")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(
                    str(self.run_dir / TB_DIR), purge_step=(resume_from + 1) if resume_from is not None else None
                )
            except ImportError:  # pragma: no cover - tensorboard is in the train extra
                log.warning("tensorboard is not installed: no TensorBoard logs (pip install tensorboard)")

    def scalars(self, split: str, iteration: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        rec = {"split": split, "iteration": int(iteration), **{k: float(v) for k, v in values.items()}}
        self._fh.write(json.dumps(rec) + "\n")
        self._fh.flush()
        if self._tb is not None:
            for k, v in values.items():
                if k != "elapsed_s":
                    self._tb.add_scalar(f"{split}/{k}", float(v), iteration)

    def grid(self, tag: str, iteration: int, columns: list[Tensor]) -> None:
        if not self.enabled:
            return

        arr = image_grid(columns)
        folder = self.run_dir / IMAGES_DIR
        folder.mkdir(exist_ok=True)
        dest = folder / f"{tag}-{iteration:08d}.png"
        fd, tmp = tempfile.mkstemp(prefix=".img-", suffix=".png", dir=folder)
        os.close(fd)
        Image.fromarray(arr).save(tmp)
        os.replace(tmp, dest)
        if self._tb is not None:
            self._tb.add_image(tag, arr, iteration, dataformats="HWC")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()
            self._tb = None


__all__ = ["IMAGES_DIR", "LOSSES_FILE", "RunLogger", "TB_DIR", "image_grid", "read_jsonl", "truncate_jsonl"]
