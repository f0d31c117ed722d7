"""The one timer of the benchmarks: best wall time of a few runs, and that run's CPU time."""

from __future__ import annotations

import time
from typing import Any, Callable


def best_of(fn: Callable[..., Any], *args: Any, repeat: int = 3, warmup: bool = True,
            **kwargs: Any) -> tuple[float, float, Any]:
    """``(wall seconds, CPU seconds, result)`` of the fastest of ``repeat`` calls (after one warm-up
    call). The wall time of the best run is the least disturbed by other processes on a shared
    machine; its CPU time (``time.process_time``, all threads) is less sensitive still."""
    if warmup:
        fn(*args, **kwargs)
    best, cpu, result = float("inf"), float("nan"), None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        result = fn(*args, **kwargs)
        dt = time.perf_counter() - t
        if dt < best:
            best, cpu = dt, time.process_time() - c
    return best, cpu, result
