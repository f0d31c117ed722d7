"""Inputs per hour of a corpus run with the tiny models: 1 process vs 2 ``--shard`` processes.

Generates ``--inputs`` clips of different lengths (ffv1, 48x40) and runs ``tests.corpus_worker``
(the library's run_corpus with a reconstruction process_one, one thread per process) once as
one process and once as two concurrent ``--shard`` processes. Per-GPU projection: the rate of
one process times the number of GPUs (ranks share nothing but the manifest folder).

    .venv/bin/python benchmarks/bench_corpus.py --inputs 8 --json bench_corpus.json
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.video_fixtures (clip maker), tests.corpus_worker


def _run(procs: int, corpus: Path, out: Path, weights: dict) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "tests.corpus_worker", str(out), str(corpus),
            "--encoder", str(weights["encoder"]), "--generator", str(weights["generator"])]
    t0 = time.perf_counter()
    shards = [[] if procs == 1 else ["--shard", f"{i}/{procs}"] for i in range(procs)]
    running = [subprocess.Popen(base + s, cwd=ROOT, env=env, stdout=subprocess.DEVNULL) for s in shards]
    for p in running:
        p.wait()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=8)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    from tests.video_fixtures import make_clip
    from vidinvert.models import tiny_pair

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        gen, enc = tiny_pair(0)
        weights = {"generator": tmp / "g.pt", "encoder": tmp / "e.pth"}
        torch.save({"g_ema": gen.state_dict(), "latent_avg": enc.latent_avg[0].clone()}, weights["generator"])
        torch.save(enc.state_dict(), weights["encoder"])
        corpus = tmp / "corpus"
        corpus.mkdir()
        frames = [4 + 4 * (i % 4) for i in range(a.inputs)]
        for i, n in enumerate(frames):
            make_clip(corpus / f"clip{i:03d}.mkv", size=(48, 40), n_frames=n, codec="ffv1", crf=None)
        rows = {}
        for procs in (1, 2):
            seconds = _run(procs, corpus, tmp / f"out{procs}", weights)
            rows[procs] = {"seconds": round(seconds, 2), "inputs_per_hour": round(a.inputs * 3600 / seconds),
                           "frames_per_second": round(sum(frames) / seconds, 2)}
            print(f"{procs} process(es): {a.inputs} inputs ({sum(frames)} frames) in {seconds:.1f} s, "
                  f"{rows[procs]['inputs_per_hour']} inputs/hour")
    result = {"date": _dt.date.today().isoformat(), "machine": platform.processor() or platform.machine(),
              "cpus": os.cpu_count(), "inputs": a.inputs, "frames": sum(frames), "runs": rows,
              "per_gpu_projection": "inputs/hour x number of GPUs (ranks are independent)"}
    if a.json:
        a.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
