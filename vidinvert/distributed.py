"""Processes started by ``torchrun`` (several GPUs or machines): one helper for ``train`` and ``eval``.

``torchrun`` sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
without them (or with ``WORLD_SIZE=1``) everything runs in this process and every helper here is a
no-op. Backend: NCCL when the ranks run on CUDA (each on ``cuda:LOCAL_RANK``), gloo on the CPU.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from vidinvert.errors import VidinvertError

if TYPE_CHECKING:  # torch is imported where it is used: parsing shards and ranks needs none
    import torch

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """This process's place in the run: ``rank`` of ``world_size``; ``local_rank`` picks the GPU."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int, env: Mapping[str, str] | None = None) -> int:
    raw = (os.environ if env is None else env).get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise VidinvertError(f"environment variable {name}={raw!r} is not an integer (set by torchrun)") from None


def context_from_env(env: Mapping[str, str] | None = None) -> DistContext:
    """Rank and world size from torchrun's environment (``os.environ`` unless ``env`` is given;
    a single process when absent)."""
    world = _env_int("WORLD_SIZE", 1, env)
    if world <= 1:
        return DistContext()
    rank, local = _env_int("RANK", 0, env), _env_int("LOCAL_RANK", 0, env)
    if not 0 <= rank < world:
        raise VidinvertError(f"RANK {rank} is outside 0..{world - 1} (WORLD_SIZE {world}): launch with torchrun")
    return DistContext(rank, world, local)


def local_world_size(env: Mapping[str, str] | None = None) -> int:
    """How many processes torchrun started on this machine (``LOCAL_WORLD_SIZE``; 1 without torchrun)."""
    n = _env_int("LOCAL_WORLD_SIZE", 1, env)
    if n < 1:
        raise VidinvertError(f"LOCAL_WORLD_SIZE {n} must be at least 1 (set by torchrun)")
    return n


def default_cpu_threads(env: Mapping[str, str] | None = None) -> int:
    """Intra-op threads for one process on the CPU: this machine's usable cores shared evenly
    by torchrun's local processes (``cores // LOCAL_WORLD_SIZE``, at least 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // local_world_size(env))


def device_for(ctx: DistContext, device: torch.device) -> torch.device:
    """The device this rank works on: ``cuda:LOCAL_RANK`` when the run is on CUDA, else ``device``."""
    import torch

    if device.type != "cuda" or not ctx.distributed:
        return device
    if ctx.local_rank >= torch.cuda.device_count():
        raise VidinvertError(
            f"LOCAL_RANK {ctx.local_rank} but only {torch.cuda.device_count()} CUDA device(s) are visible:"
            " start torchrun with --nproc-per-node at most the number of GPUs"
        )
    return torch.device("cuda", ctx.local_rank)


def init_process_group(ctx: DistContext, device: torch.device,
                       timeout: _dt.timedelta = _dt.timedelta(minutes=30)) -> DistContext:
    """Join torchrun's process group (NCCL on CUDA, gloo otherwise); ``ctx`` with its backend.

    ``device`` is this rank's device (:func:`device_for`); with CUDA it becomes the current device.
    ``timeout`` bounds every collective: ``eval`` passes a long one because rank 0 waits at the
    gather for the slowest rank's whole slice. No-op for a single process.
    """
    import torch
    import torch.distributed as dist

    if not ctx.distributed:
        return ctx
    if dist.is_initialized():
        return replace(ctx, backend=dist.get_backend())
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs: dict[str, Any] = {"backend": backend, "rank": ctx.rank, "world_size": ctx.world_size, "timeout": timeout}
    if device.type == "cuda":
        torch.cuda.set_device(device)
        kwargs["device_id"] = device
    dist.init_process_group(**kwargs)
    log.info(f"rank {ctx.rank}/{ctx.world_size} joined ({backend})")
    return replace(ctx, backend=backend)


def shutdown() -> None:
    """Leave the process group (no-op when none was joined)."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def shard(items: Sequence[T], ctx: DistContext) -> list[T]:
    """This rank's slice: every ``world_size``-th item starting at ``rank`` (balanced, deterministic)."""
    return list(items[ctx.rank::ctx.world_size])


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over processes (in place, returned); identity for a single process."""
    import torch.distributed as dist

    if _active():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def gather_to_main(ctx: DistContext, obj: Any) -> list[Any] | None:
    """Every rank's ``obj`` (picklable) on rank 0, in rank order; None on the other ranks."""
    import torch.distributed as dist

    if not _active():
        return [obj]
    out: list[Any] | None = [None] * ctx.world_size if ctx.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out


def broadcast_from_main(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (e.g. an error found while checking the output folder)."""
    import torch.distributed as dist

    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def agree_on_token(ctx: DistContext, token: str,
                   timeout: _dt.timedelta = _dt.timedelta(minutes=30)) -> str:
    """Rank 0's ``token`` on every rank, through one broadcast at the start of a run.

    Joins a gloo group for it when none is joined (and leaves it again), so nothing afterwards
    waits on other ranks: a corpus run's ranks then work independently for hours. Identity for a
    single process.
    """
    import torch
    import torch.distributed as dist

    if not ctx.distributed:
        return token
    joined = not dist.is_initialized()
    if joined:
        init_process_group(ctx, torch.device("cpu"), timeout=timeout)
    try:
        return str(broadcast_from_main(token))
    finally:
        if joined:
            shutdown()
