"""Sharding the benchmark over processes started by ``torchrun`` (several GPUs or machines).

Every rank builds the same ordered item list, takes the slice ``items[rank::world_size]``,
evaluates it (caching each finished item in the output folder) and sends its results to rank 0,
which writes the report. Backend: NCCL when the ranks run on CUDA, gloo on the CPU. Without
torchrun's environment (``WORLD_SIZE`` unset or 1) everything runs in this process.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from dataclasses import dataclass
from typing import Any, Sequence, TypeVar

import torch

from vidinvert.errors import VidinvertError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Ranks finish their slices at different times; rank 0 waits for the slowest one at the gather.
GATHER_TIMEOUT = _dt.timedelta(hours=48)


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


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise VidinvertError(f"environment variable {name}={raw!r} is not an integer (set by torchrun)") from None


def init_distributed(use_cuda: bool) -> DistContext:
    """Join torchrun's process group when ``WORLD_SIZE > 1`` (NCCL if ``use_cuda`` else gloo).

    Uses torchrun's ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``.
    With CUDA the process's current device becomes ``cuda:LOCAL_RANK``.
    """
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return DistContext()
    import torch.distributed as dist

    rank, local = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), local, dist.get_backend())
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        if local >= torch.cuda.device_count():
            raise VidinvertError(
                f"LOCAL_RANK {local} but only {torch.cuda.device_count()} CUDA device(s) are visible:"
                " start torchrun with --nproc-per-node at most the number of GPUs"
            )
        torch.cuda.set_device(local)
    kwargs: dict[str, Any] = {"backend": backend, "rank": rank, "world_size": world, "timeout": GATHER_TIMEOUT}
    dist.init_process_group(**kwargs)
    log.info(f"rank {rank}/{world} joined ({backend})")
    return DistContext(rank, world, local, backend)


def shard(items: Sequence[T], ctx: DistContext) -> list[T]:
    """This rank's slice: every ``world_size``-th item starting at ``rank`` (balanced, deterministic)."""
    return list(items[ctx.rank::ctx.world_size])


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        import torch.distributed as dist

        dist.barrier()


def gather_to_main(ctx: DistContext, obj: Any) -> list[Any] | None:
    """Every rank's ``obj`` (picklable) on rank 0, in rank order; None on the other ranks."""
    if not ctx.distributed:
        return [obj]
    import torch.distributed as dist

    out: list[Any] | None = [None] * ctx.world_size if ctx.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out


def broadcast_from_main(ctx: DistContext, obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (e.g. an error found while checking the output folder)."""
    if not ctx.distributed:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shutdown(ctx: DistContext) -> None:
    """Leave the process group (no-op when not distributed)."""
    if ctx.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
