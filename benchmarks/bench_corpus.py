"""Inputs per hour of ``vidinvert edit`` over a corpus with the tiny models: 1 process vs 2.

Generates ``--inputs`` face clips of different lengths (ffv1, 128x112, the astronaut's face) in
nested folders and runs ``vidinvert edit CORPUS --out-dir OUT --direction d.npy --codec ffv1
--batch-size 4 --device cpu`` once as one process and once under ``torchrun --nproc-per-node 2``
(two gloo ranks; ``--mode shard`` runs ``--shard 0/2`` and ``--shard 1/2`` at once instead), one
CPU thread per process. Wall times include starting Python, torch and the models in each process.
Per-GPU projection: ranks share nothing but the output folder, so N GPUs give N times one
process's rate, less the imbalance of the longest-first split.

    .venv/bin/python benchmarks/bench_corpus.py --inputs 6 --json bench_corpus.json
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

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.face_clips (clip maker)


def _run(procs: int, mode: str, corpus: Path, out: Path, w: dict) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "VIDINVERT_CPU_THREADS": "1"}
    cli = ["-m", "vidinvert", "edit", str(corpus), "--out-dir", str(out), "--direction", str(w["dir"]),
           "--encoder", str(w["encoder"]), "--generator", str(w["generator"]), "--device", "cpu",
           "--batch-size", "4", "--codec", "ffv1"]
    if procs == 1:
        cmds = [[sys.executable, *cli]]
    elif mode == "torchrun":
        cmds = [[sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs), *cli]]
    else:
        cmds = [[sys.executable, *cli, "--shard", f"{i}/{procs}"] for i in range(procs)]
    t0 = time.perf_counter()
    running = [subprocess.Popen(c, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for c in cmds]
    codes = [p.wait() for p in running]
    if any(codes):
        raise SystemExit(f"a run failed ({codes}): rerun the command by hand to see why")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=6)
    ap.add_argument("--mode", choices=("torchrun", "shard"), default="torchrun")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    from tests.face_clips import face_frame, make_face_clip
    from vidinvert.models import tiny_pair

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        gen, enc = tiny_pair(0)
        w = {"generator": tmp / "g.pt", "encoder": tmp / "e.pth", "dir": tmp / "d.npy"}
        torch.save({"g_ema": gen.state_dict(), "latent_avg": enc.latent_avg[0].clone()}, w["generator"])
        torch.save(enc.state_dict(), w["encoder"])
        np.save(w["dir"], np.random.default_rng(0).standard_normal(64).astype(np.float32))
        corpus = tmp / "corpus"
        frames = [3 + 2 * (i % 4) for i in range(a.inputs)]
        for i, n in enumerate(frames):
            path = corpus / f"set{i % 2}" / f"clip{i:03d}.mkv"
            path.parent.mkdir(parents=True, exist_ok=True)
            make_face_clip(path, n_frames=n, size=(128, 112), codec="ffv1",
                           frame_fn=lambda k: face_frame(k, (128, 112), face_px=80, faces=((24, 16),)))
        rows = {}
        for procs in (1, 2):
            seconds = _run(procs, a.mode, corpus, tmp / f"out{procs}", w)
            rows[procs] = {"seconds": round(seconds, 2), "inputs_per_hour": round(a.inputs * 3600 / seconds),
                           "frames_per_second": round(sum(frames) / seconds, 2)}
            print(f"{procs} process(es): {a.inputs} inputs ({sum(frames)} frames) in {seconds:.1f} s, "
                  f"{rows[procs]['inputs_per_hour']} inputs/hour, {rows[procs]['frames_per_second']} frames/s")
    result = {"date": _dt.date.today().isoformat(), "machine": platform.processor() or platform.machine(),
              "cpus": os.cpu_count(), "mode": a.mode, "inputs": a.inputs, "frames": sum(frames), "runs": rows,
              "per_gpu_projection": "one process's inputs/hour x number of GPUs (ranks are independent)"}
    if a.json:
        a.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
