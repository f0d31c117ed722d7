"""A corpus over several processes: torchrun ranks or job-array shards, resumable and idempotent.

* :func:`plan_corpus`: the inputs of some sources with their probed frame counts (a photo is 1).
* :func:`parse_shard`: which share this process takes: ``I/N``, ``slurm`` (the array task's
  environment) or torchrun's ranks; sharding is never turned on by the environment alone.
* :func:`split_balanced`: greedy longest-first onto the least-loaded rank, ties by path: the same
  split for the same corpus and world size, wherever it is computed.
* :func:`run_corpus`: runs one share through a ``process_one`` callback, one manifest line per
  input (:mod:`vidinvert.pipeline.manifest`), skipping what is done; torchrun's rank 0 then waits
  for the other ranks' ``finished.rank-R.json`` markers by polling (no collective) and merges.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidinvert import distributed
from vidinvert.errors import VidinvertError
from vidinvert.inputs import MEDIA_SUFFIXES, InputFile, is_photo, resolve_inputs
from vidinvert.video.probe import probe

log = logging.getLogger(__name__)
SLURM_VARS = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP", "SLURM_ARRAY_TASK_COUNT")


# ------------------------------------------------------------------------------------------
# Which share: --shard I/N, --shard slurm, torchrun
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shard:
    """This process's share: ``index`` of ``count``. ``kind``: ``single``, ``torchrun`` (rank 0
    waits for the others and merges), ``shard`` (``--shard I/N``) or ``slurm``."""

    index: int = 0
    count: int = 1
    kind: str = "single"
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.index == 0

    def describe(self) -> str:
        return "one process" if self.kind == "single" else f"{self.kind} {self.index}/{self.count}"


def _int_var(env: Mapping[str, str], name: str) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        raise VidinvertError(f"--shard slurm: {name} is not set (run it as a Slurm job array: sbatch --array)")
    try:
        return int(raw)
    except ValueError:
        raise VidinvertError(f"--shard slurm: {name}={raw!r} is not an integer") from None


def slurm_shard(env: Mapping[str, str]) -> Shard:
    """``(SLURM_ARRAY_TASK_ID - MIN) / STEP`` of ``SLURM_ARRAY_TASK_COUNT``."""
    task, low, step, count = (_int_var(env, n) for n in SLURM_VARS)
    if step < 1 or count < 1:
        raise VidinvertError(f"--shard slurm: SLURM_ARRAY_TASK_STEP {step} and COUNT {count} must be positive")
    offset = task - low
    if offset < 0 or offset % step:
        raise VidinvertError(f"--shard slurm: task {task} is not MIN {low} plus a multiple of STEP {step}: "
                             "use a regular array (--array=MIN-MAX:STEP)")
    if offset // step >= count:
        raise VidinvertError(f"--shard slurm: task {task} is shard {offset // step}, past COUNT {count}")
    return Shard(offset // step, count, "slurm")


def parse_shard(text: str | None, env: Mapping[str, str] | None = None) -> Shard:
    """``--shard`` (``I/N``, ``slurm`` or None) and torchrun's environment -> this process's share.

    Without ``--shard`` the share comes from torchrun (``WORLD_SIZE`` > 1) or is everything;
    Slurm variables alone never shard. ``--shard`` under torchrun is refused (one or the other).
    """
    env = os.environ if env is None else env
    world = env.get("WORLD_SIZE", "").strip()
    under_torchrun = bool(world) and world != "1"
    if text is None or not str(text).strip():
        if not under_torchrun:
            return Shard()
        ctx = distributed.context_from_env(env)
        return Shard(ctx.rank, ctx.world_size, "torchrun", ctx.local_rank)
    if under_torchrun:
        raise VidinvertError("--shard under torchrun: use one or the other (torchrun ranks already split the corpus)")
    text = str(text).strip()
    if text.lower() == "slurm":
        return slurm_shard(env)
    head, sep, tail = text.partition("/")
    if not sep or not head.strip().isdigit() or not tail.strip().isdigit():
        raise VidinvertError(f"--shard {text!r}: give I/N (e.g. 0/4, I counted from 0) or slurm")
    index, count = int(head), int(tail)
    if count < 1 or index >= count:
        raise VidinvertError(f"--shard {text}: I must be in 0..N-1 and N at least 1")
    return Shard(index, count, "shard")


# ------------------------------------------------------------------------------------------
# What: inputs with frame counts, and the split
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CorpusInput:
    """One input: ``key`` its path relative to its source root (unique in a corpus; outputs mirror
    it), ``frames`` its probed frame count (a photo 1; 1 when probing failed), ``error`` the
    probe's error line (the input is then recorded as failed without being processed)."""

    path: Path
    key: str
    frames: int
    root: Path | None = None
    error: str | None = None

    def output_dir(self, out_dir: Path) -> Path:
        """Where this input's outputs go: ``out_dir`` plus the folder part of ``key``."""
        return InputFile(self.path, self.root).output_dir(out_dir)


def count_frames(path: Path) -> int:
    """Frames of a clip from its header (exactly counted when the header does not say); 1 for a photo."""
    if is_photo(path):
        return 1

    n = probe(path, count_frames=False).frame_count
    if n is None:
        n = probe(path, count_frames=True).frame_count
    if not n:
        raise VidinvertError(f"{path}: cannot tell how many frames it has")
    return int(n)


def plan_corpus(sources: Sequence[str | Path], *, exclude: Sequence[Path] = (),
                suffixes: frozenset[str] = MEDIA_SUFFIXES) -> list[CorpusInput]:
    """Every input of ``sources`` (files, folders, globs, list files) with its frame count."""
    items = []
    for f in resolve_inputs(sources, suffixes, exclude=exclude):
        try:
            frames, error = count_frames(f.path), None
        except VidinvertError as exc:
            frames, error = 1, str(exc)
        items.append(CorpusInput(f.path, f.relpath, frames, f.root, error))
    return items


def split_balanced(items: Sequence[tuple[str, int]], world: int) -> list[list[tuple[str, int]]]:
    """``(path, frames)`` pairs split over ``world`` ranks: longest first (ties by path), each onto
    the rank with the fewest frames so far (ties: the lowest rank). Each rank's list is in the
    order it was assigned (longest first). Depends only on the set of pairs and ``world``."""
    if world < 1:
        raise VidinvertError(f"world size must be at least 1, got {world}")
    shares: list[list[tuple[str, int]]] = [[] for _ in range(world)]
    heap = [(0, r) for r in range(world)]
    for path, frames in sorted(items, key=lambda it: (-int(it[1]), str(it[0]))):
        load, r = heapq.heappop(heap)
        shares[r].append((path, frames))
        heapq.heappush(heap, (load + int(frames), r))
    return shares


def share_of(items: Sequence[CorpusInput], shard: Shard) -> list[CorpusInput]:
    """This shard's inputs from the whole corpus (:func:`split_balanced` by ``key``)."""
    by_key = {it.key: it for it in items}
    if len(by_key) != len(items):
        raise VidinvertError("two inputs have the same relative path: outputs would collide")
    split = split_balanced([(it.key, it.frames) for it in items], shard.count)
    return [by_key[k] for k, _ in split[shard.index]]


def fingerprint_of(config: Any, exclude: Sequence[str] = ()) -> str:
    """A short stable hash (16 hex digits) of a configuration: a (frozen) dataclass or a mapping,
    without the fields in ``exclude`` (inputs, output folder, shard: what does not change outputs)."""
    data = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    for name in exclude:
        data.pop(name, None)
    text = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
