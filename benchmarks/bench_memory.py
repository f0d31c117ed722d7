#!/usr/bin/env python
"""The largest batch that fits per network stage, and what the out-of-memory backoff costs.

Random-weight models of the official layout at ``--size`` (1024: the paper's generator and the
Feature-Style encoder) under autocast ``--dtype`` (bf16 on CUDA). For each stage of a video run,

  - ``encoder``: ``Inverter.invert`` of aligned crops,
  - ``generator passes``: what one render batch runs (``synthesize(w, F)``, the edit's early-exit
    pair ``G_K(w), G_K(w~)`` and ``synthesize(w~, F~)``),

the batch is doubled from 1 until the device runs out of memory, then bisected: the largest batch
that fits, its peak memory (``torch.cuda.max_memory_allocated``) and its time per frame. The
batch :meth:`vidinvert.pipeline.settings.JobSettings.batch_size` picks from the free memory is reported next to
it. The backoff cost: ``--rows`` crops run through :class:`vidinvert.memory.BatchSize` starting
at twice the largest batch (one failed attempt, the cache emptied, the rows retried at half)
against the same rows started at the largest batch; the difference is the price of one halving.

    python benchmarks/bench_memory.py --device cuda --dtype bf16 --json memory.json
    python benchmarks/bench_memory.py --size 64 --simulate-capacity 6   # the script's plumbing on a CPU

On the CPU the allocator rarely fails before the machine swaps: ``--simulate-capacity N`` raises
the CUDA out-of-memory error for batches over N rows instead (timings then say nothing of a GPU).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from vidinvert.device import _DTYPES, Compute  # noqa: E402
from vidinvert.engine import Inverter, Latents  # noqa: E402
from vidinvert.memory import BatchSize, is_out_of_memory, release_memory  # noqa: E402
from vidinvert.pipeline.request import VIDEO, InvertRequest  # noqa: E402
from vidinvert.pipeline.settings import JobSettings  # noqa: E402


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default=None, choices=sorted(_DTYPES), help="default bf16 on CUDA, fp32 on the CPU")
    ap.add_argument("--size", type=int, default=1024, help="generator resolution")
    ap.add_argument("--max-batch", type=int, default=512, help="stop doubling here")
    ap.add_argument("--rows", type=int, default=None, help="crops for the backoff cost (default 4x the largest batch)")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs of each largest batch (best kept)")
    ap.add_argument("--simulate-capacity", type=int, default=None,
                    help="raise out-of-memory above this many rows (CPU plumbing check)")
    ap.add_argument("--stages", nargs="+", default=["encoder", "generator passes"])
    ap.add_argument("--json", type=Path, default=None)
    return ap.parse_args(argv)


def build(device: torch.device, dtype: torch.dtype, size: int) -> Inverter:
    from vidinvert.models import fs_encoder
    from vidinvert.models.stylegan2 import Generator

    torch.manual_seed(0)
    gen = Generator(size)
    enc = fs_encoder.FeatureStyleEncoder(n_styles=gen.n_latent)
    return Inverter(enc, gen, Compute(device, dtype))


def stage_fn(inv: Inverter, stage: str, capacity: int | None):
    """``fn(n)``: the stage's work on a batch of ``n`` random rows (synchronised)."""
    dev = inv.compute.device
    delta = 0.3 * torch.randn(inv.n_latent, inv.style_dim, device=dev)

    def run(n: int):
        if capacity is not None and n > capacity:
            raise torch.cuda.OutOfMemoryError(f"simulated: {n} rows > capacity {capacity}")
        if stage == "encoder":
            out = inv.invert(torch.rand(n, 3, inv.size, inv.size, device=dev) * 2 - 1).w
        else:
            lat = Latents(0.5 * torch.randn(n, inv.n_latent, inv.style_dim, device=dev),
                          torch.randn(n, inv.generator.channels[16], 16, 16, device=dev))
            inv.synthesize(lat)
            out = inv.synthesize(inv.edit(lat, delta, 1.0))
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return out.shape[0]

    return run


def fits(run, n: int, dev: torch.device) -> tuple[bool, float | None, int | None]:
    """(fits, seconds, peak bytes) of one batch of ``n``."""
    ok, seconds, peak = False, None, None
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    try:
        t = time.perf_counter()
        run(n)
        seconds = time.perf_counter() - t
        ok = True
        if dev.type == "cuda":
            peak = int(torch.cuda.max_memory_allocated(dev))
    except Exception as exc:  # noqa: BLE001 - only memory errors are a result here
        if not is_out_of_memory(exc):
            raise
    release_memory(dev)
    return ok, seconds, peak


def largest_batch(run, dev: torch.device, max_batch: int) -> tuple[int, int | None]:
    """Double from 1 until a batch fails, then bisect: (largest that fits, smallest that failed)."""
    good, bad, n = 0, None, 1
    while n <= max_batch:
        if fits(run, n, dev)[0]:
            good, n = n, 2 * n
        else:
            bad = n
            break
    if bad is not None:
        while bad - good > 1:
            mid = (good + bad) // 2
            good, bad = (mid, bad) if fits(run, mid, dev)[0] else (good, mid)
    return good, bad


def through_backoff(run, rows: int, start: int, dev) -> tuple[float, BatchSize]:
    size = BatchSize(start, "bench", device=dev)
    t = time.perf_counter()
    done = sum(n for _, n in size.batches(range(rows), lambda sel: run(len(sel))))
    assert done == rows
    return time.perf_counter() - t, size


def main(argv=None) -> int:
    args = parse_args(argv)
    dev = torch.device(args.device)
    dtype = _DTYPES[args.dtype or ("bf16" if dev.type == "cuda" else "fp32")]
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    inv = build(dev, dtype, args.size)
    free_before = torch.cuda.mem_get_info(dev)[0] if dev.type == "cuda" else None
    result = {"device": inv.compute.describe(), "size": args.size, "torch": torch.__version__,
              "python": platform.python_version(), "date": datetime.date.today().isoformat(),
              "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
              "free_bytes_at_start": free_before,
              "default_batch_size": JobSettings.resolve(InvertRequest(), check=False).batch_size(VIDEO, inv.compute,
                                                                                                  args.size),
              "simulated_capacity": args.simulate_capacity, "stages": {}}
    for stage in args.stages:
        run = stage_fn(inv, stage, args.simulate_capacity)
        run(1)  # warm-up (cuDNN autotuning, lazy allocations)
        good, bad = largest_batch(run, dev, args.max_batch)
        if good == 0:
            result["stages"][stage] = {"largest_batch": 0, "note": "a batch of 1 does not fit"}
            continue
        times, peak = [], None
        for _ in range(args.repeats):
            _, sec, peak = fits(run, good, dev)
            times.append(sec)
        rows = args.rows or 4 * good
        direct, _ = through_backoff(run, rows, good, dev)
        backed, size = through_backoff(run, rows, 2 * good, dev)
        result["stages"][stage] = {
            "largest_batch": good, "first_failing_batch": bad, "peak_bytes": peak,
            "ms_per_frame": 1e3 * min(times) / good, "backoff_rows": rows,
            "seconds_at_largest": round(direct, 4), "seconds_from_twice_largest": round(backed, 4),
            "backoff_cost_s": round(backed - direct, 4), "reductions": [r.as_dict() for r in size.reductions],
        }
        print(f"{stage}: largest batch {good} (first failing {bad}), peak {peak} B, "
              f"{1e3 * min(times) / good:.1f} ms/frame; backoff from {2 * good}: +{backed - direct:.3f} s "
              f"over {rows} rows ({len(size.reductions)} halving(s))", flush=True)
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
