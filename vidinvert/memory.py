"""Running out of memory inside a network batch: halve the batch, retry the same rows, go on.

One mechanism for every batched call site (the video's encoder and generator passes, a photo's
faces, aligned images, ``eval``, RetinaFace, a training step): a :class:`BatchSize` per stage
holds the largest batch it may use. When a batch fails with an out-of-memory error (CUDA's
``torch.cuda.OutOfMemoryError``, the CPU allocator's ``RuntimeError`` "... not enough memory",
a ``MemoryError``), what can be freed is freed (``torch.cuda.empty_cache()`` for CUDA), the limit
is halved and the SAME rows are tried again; nothing of the failed attempt is kept, so no row is
lost or done twice. The smaller limit stays for the rest of the input and is announced once per
reduction ("GPU memory: batch 16 → 8 (generator passes, clip.mp4)"); :func:`batch_report` puts
it in ``run.json`` and the reports. Only a batch of one that still fails stops the run, with one
line (:class:`OutOfMemoryStop`, a :class:`~vidinvert.errors.VidinvertError`).

A batch's work must be a function of its rows whose effects are kept only once it returns
(results returned, or written idempotently): :meth:`BatchSize.batches` yields each batch's result
for the caller to commit.

The starting size is :meth:`~vidinvert.pipeline.settings.JobSettings.batch_size` (from the free GPU
memory, or ``--batch-size``). Torch-free at import (the CLI's error rendering uses
:func:`is_out_of_memory` before any model loads); torch is imported where memory is freed.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from vidinvert.errors import VidinvertError

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

# The CPU allocator's and cuDNN/cuBLAS's words for an allocation that failed.
_OOM_WORDS = ("out of memory", "not enough memory", "defaultcpuallocator", "alloc_failed")


class OutOfMemoryStop(VidinvertError):
    """A batch of one row still ran out of memory: the run stops here (one line)."""


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure: ``torch.cuda.OutOfMemoryError`` (any class of
    that name), a ``RuntimeError`` whose first line says the memory ran out (the CPU allocator's
    "DefaultCPUAllocator: not enough memory", older CUDA builds, cuDNN/cuBLAS ALLOC_FAILED), or
    ``MemoryError``."""
    if isinstance(exc, MemoryError) or any(c.__name__ == "OutOfMemoryError" for c in type(exc).__mro__):
        return True
    return isinstance(exc, RuntimeError) and any(w in first_line(exc).lower() for w in _OOM_WORDS)


def is_gpu_error(exc: BaseException) -> bool:
    """Whether an out-of-memory error is the GPU's (CUDA) rather than the host's."""
    text = first_line(exc).lower()
    named = any(c.__name__ == "OutOfMemoryError" for c in type(exc).__mro__)
    return (named or "cuda" in text or "cudnn" in text or "cublas" in text) and "cpuallocator" not in text


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def memory_error_line(exc: BaseException) -> str:
    """The one-line error for an out-of-memory error that no backoff caught (outside a batch)."""
    if is_gpu_error(exc):
        return (f"the GPU ran out of memory ({first_line(exc)[:160]}): pass a smaller --batch-size, "
                "or close other programs that use the GPU")
    return "the machine ran out of memory: pass a smaller --batch-size, or close other programs"


def release_memory(device: Any = None, *, gpu: bool = False) -> None:
    """Free what a failed batch left: unreachable objects, then CUDA's cached blocks when the
    device (a ``torch.device`` or its name) is CUDA or the error was the GPU's."""
    gc.collect()
    if gpu or str(device or "").startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


@dataclasses.dataclass(frozen=True)
class Reduction:
    """One halving: the stage's limit went from ``before`` to ``after`` because of ``error``."""

    stage: str
    before: int
    after: int
    error: str
    gpu: bool

    def as_dict(self) -> dict:
        return {"stage": self.stage, "from": self.before, "to": self.after, "error": self.error,
                "memory": "gpu" if self.gpu else "host"}


class BatchSize:
    """The largest batch one network stage may use, halved on out-of-memory and kept halved.

    ``limit``: the starting ceiling (``--batch-size``, or the size chosen from free memory); None means
    no ceiling until the first failure (a photo's faces: all in one batch). ``stage`` and
    ``source`` name the stage and the input in the notice and the stop line; ``device`` says
    whether CUDA's cache is emptied. ``allowed(n)``: the largest usable batch of at most ``n``
    rows, or None when there is none (default: any ``n >= 1``). ``advice``: what the stop line
    tells the user to do (default: free the GPU or the machine).
    """

    def __init__(self, limit: int | None, stage: str, *, source: str | None = None, device: Any = None,
                 allowed: Callable[[int], int | None] | None = None, advice: str | None = None) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"batch limit {limit} must be at least 1")
        self.start = limit
        self.limit = limit
        self.stage = stage
        self.source = source
        self.device = device
        self.allowed = allowed
        self.advice = advice
        self.reductions: list[Reduction] = []
        self._announced = 0  # reductions already logged

    def size_for(self, rows: int) -> int:
        """The batch to take from ``rows`` pending rows."""
        return rows if self.limit is None else min(self.limit, rows)

    def attempt(self, fn: Callable[..., R], *args: Any, rows: int) -> tuple[bool, R | None]:
        """``(True, fn(*args))``, or ``(False, None)`` after an out-of-memory error in ``fn`` on a
        batch of ``rows`` rows halved the limit (call again with the new :attr:`limit`). Other
        errors propagate; a failure that cannot be halved raises :class:`OutOfMemoryStop`."""
        try:
            return True, fn(*args)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            gpu = is_gpu_error(exc) or str(self.device or "").startswith("cuda")
            current = rows if self.limit is None else min(self.limit, rows)
            target = max(1, current // 2)
            if self.allowed is not None and current > 1:
                target = self.allowed(target)
            if current <= 1 or target is None or target >= current:
                raise OutOfMemoryStop(self._stop_line(exc, current, gpu)) from exc
            error = first_line(exc)[:200]
        # outside the except block: the failed attempt's tensors are unreachable now
        release_memory(self.device, gpu=gpu)
        self.reductions.append(Reduction(self.stage, current, target, error, gpu))
        self.limit = target
        return False, None

    def batches(self, items: Sequence[T], fn: Callable[[Sequence[T]], R],
                take: Callable[[Sequence[T], int], Sequence[T]] | None = None) -> Iterator[tuple[Sequence[T], R]]:
        """``(batch, fn(batch))`` over ``items`` in order, each batch at most :attr:`limit` rows.

        ``take(rest, n)``: the next batch from the pending rows ``rest`` for a limit of ``n``
        (default ``rest[:n]``; the video's render batches keep a frame's faces together). A batch
        that runs out of memory is taken again, smaller, from the same row.
        """
        take = take or (lambda rest, n: rest[:n])
        pos = 0
        while pos < len(items):
            rest = items[pos:]
            sel = take(rest, self.size_for(len(rest)))
            ok, result = self.attempt(fn, sel, rows=len(sel))
            if ok:
                self.announce()
                yield sel, result  # type: ignore[misc]
                pos += len(sel)

    def map_rows(self, n: int, fn: Callable[[slice], Any]) -> Any:
        """``fn(rows)`` over row slices of ``0..n`` (at most :attr:`limit` rows each), the parts
        concatenated along dim 0 (:func:`concat_rows`)."""
        parts = [res for _, res in self.batches(range(n), lambda sel: fn(slice(sel[0], sel[-1] + 1)))]
        return concat_rows(parts)

    def announce(self) -> None:
        """Log the reductions since the last notice as one line ("GPU memory: batch 16 → 8 ...")."""
        new = self.reductions[self._announced:]
        if not new:
            return
        self._announced = len(self.reductions)
        label = "GPU memory" if any(r.gpu for r in new) else "memory"
        where = f"{self.stage}, {self.source}" if self.source else self.stage
        log.warning(f"{label}: batch {new[0].before} → {new[-1].after} ({where}; kept for the rest of the input)")

    def as_dict(self) -> dict:
        return {"stage": self.stage, "start": self.start, "final": self.limit,
                "reductions": [r.as_dict() for r in self.reductions]}

    def _stop_line(self, exc: BaseException, rows: int, gpu: bool) -> str:
        where = f"{self.source}: " if self.source else ""
        what = "the GPU" if gpu else "the machine"
        fix = self.advice or ("close other programs that use the GPU, or use a GPU with more memory" if gpu
                              else "close other programs, or use a machine with more memory")
        return f"{where}{what} ran out of memory at a batch of {rows} ({self.stage}: {first_line(exc)[:160]}): {fix}"


def batch_report(sizes: Iterable[BatchSize | None]) -> dict:
    """The stages' batch sizes for ``run.json`` and the reports: ``start`` and ``final`` per stage
    and every reduction (empty when memory never ran out)."""
    sizes = [s for s in sizes if s is not None]
    return {"start": {s.stage: s.start for s in sizes}, "final": {s.stage: s.limit for s in sizes},
            "reductions": [r.as_dict() for s in sizes for r in s.reductions]}


def concat_rows(parts: Sequence[Any]) -> Any:
    """Parts of one batched result, joined along dim 0: tensors, arrays and lists concatenated, dicts,
    tuples and dataclasses joined field by field, None kept."""
    import numpy as np
    import torch

    first = parts[0]
    if len(parts) == 1 or first is None:
        return first
    if isinstance(first, torch.Tensor):
        return torch.cat(list(parts))
    if isinstance(first, np.ndarray):
        return np.concatenate(list(parts))
    if isinstance(first, dict):
        return {k: concat_rows([p[k] for p in parts]) for k in first}
    if isinstance(first, list):
        return [x for p in parts for x in p]
    if isinstance(first, tuple):
        return tuple(concat_rows(list(col)) for col in zip(*parts))
    if dataclasses.is_dataclass(first):
        return type(first)(**{f.name: concat_rows([getattr(p, f.name) for p in parts])
                              for f in dataclasses.fields(first)})
    raise TypeError(f"concat_rows: cannot join {type(first).__name__}")


__all__ = ["BatchSize", "OutOfMemoryStop", "Reduction", "batch_report", "concat_rows", "is_gpu_error",
           "is_out_of_memory", "memory_error_line", "release_memory"]
