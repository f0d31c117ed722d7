"""Training checkpoints: atomic writes, the latest one of a run folder, RNG states.

A checkpoint ``RUN_DIR/checkpoints/ckpt-<iteration:08d>.pt`` is a dict of tensors and plain
values only (it loads with ``torch.load(weights_only=True)``)::

    {"format": "vidinvert-train-checkpoint", "version": 1, "iteration": int (optimiser steps done),
     "encoder": state_dict, "optimizer": ..., "scheduler": ..., "rng": {...},
     "config": nested dict, "world_size": int}

It is written to a temp file in the same folder and renamed, so a kill leaves either the old
or the new file, never a truncated one. Only the newest ``keep`` checkpoints are kept.
"""

from __future__ import annotations

import os
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidinvert.errors import VidinvertError

FORMAT = "vidinvert-train-checkpoint"
VERSION = 1
CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^ckpt-(\d{8,})\.pt$")


def checkpoint_path(run_dir: Path, iteration: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"ckpt-{iteration:08d}.pt"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(iteration, path) of every complete checkpoint in the run folder, oldest first."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _NAME.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def rng_state() -> dict[str, Any]:
    """Every global RNG state, as tensors and plain values (torch, CUDA, numpy, python)."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "gauss": float(np_state[4]),
        },
        "python": {"version": py_version, "internal": torch.tensor(py_internal, dtype=torch.int64), "gauss": py_gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["internal"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def save_checkpoint(run_dir: Path, iteration: int, payload: dict[str, Any], keep: int = 3) -> Path:
    """Write ``payload`` (+ format, version, iteration) atomically; prune all but the newest ``keep``."""
    dest = checkpoint_path(run_dir, iteration)
    dest.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": FORMAT, "version": VERSION, "iteration": int(iteration), **payload}
    fd, tmp = tempfile.mkstemp(prefix=".ckpt-partial-", suffix=".pt", dir=dest.parent)
    os.close(fd)
    try:
        torch.save(data, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    for _, old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return dest


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a training checkpoint (weights_only); errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise VidinvertError(f"checkpoint not found: {p}")
    try:
        data = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise VidinvertError(f"cannot read checkpoint {p}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise VidinvertError(f"{p} is not a vidinvert training checkpoint")
    if int(data.get("version", 0)) > VERSION:
        raise VidinvertError(f"checkpoint {p} was written by a newer vidinvert (format version {data['version']})")
    return data


__all__ = [
    "CHECKPOINT_DIR",
    "checkpoint_path",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]
