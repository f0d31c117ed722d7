"""Seconds per video and per frame of the ``vidinvert eval`` loop, and where they go.

Part 1 runs the whole loop (decode, face stage, warp, invert, synthesize, SSIM/PSNR/MSE, LPIPS,
identity, report) with the tiny random models on generated astronaut clips (128x128). Part 2
(``--full``) times one frame through the 1024 models (random weights: the cost does not depend
on them; or real files with --encoder/--generator) and the metrics at 1024 px.

    .venv/bin/python benchmarks/bench_eval.py --videos 4 --frames 8 --full --json bench_eval.json
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.eval_fixtures (clip maker)


def best_of(fn, repeat: int = 3):
    """Best wall time of ``repeat`` runs after one warm-up, and the last result."""
    out = fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def bench_loop(videos: int, frames: int, batch: int, workdir: Path) -> dict:
    from tests.eval_fixtures import astronaut_frames, save_random_alexnet, write_clip
    from vidinvert.evaluate.runner import EvalRun, run_eval
    from vidinvert.models import tiny_pair

    gen, enc = tiny_pair(0)
    wdir = workdir / "weights"
    wdir.mkdir()
    torch.save({"g_ema": gen.state_dict(), "latent_avg": enc.latent_avg[0].clone()}, wdir / "tiny-generator.pt")
    torch.save(enc.state_dict(), wdir / "tiny-encoder.pth")
    save_random_alexnet(wdir / "alexnet-owt-7be5be79.pth")
    for v in range(videos):
        write_clip(workdir / "clips" / f"Actor_{v + 1:02d}" / f"02-01-01-01-01-01-{v + 1:02d}.mp4",
                   astronaut_frames(frames, shift=v))
    run = EvalRun(out=workdir / "out", videos=str(workdir / "clips"), encoder=str(wdir / "tiny-encoder.pth"),
                  generator=str(wdir / "tiny-generator.pt"), weights_dir=wdir, device="cpu", batch_size=batch,
                  detector="dlib")
    t = time.perf_counter()
    summary = run_eval(run)
    wall = time.perf_counter() - t
    tm = summary["timing"]
    return {"videos": videos, "frames_per_video": frames, "batch": batch, "wall_s": wall,
            "s_per_video": tm["seconds_per_item"], "s_per_frame": tm["seconds_per_frame"],
            "frames_evaluated": summary["counts"]["frames_evaluated"]}


def bench_parts(size: int, batch: int, device: torch.device, encoder=None, generator=None) -> dict:
    """Per-frame cost of each step on ``batch`` crops at ``size`` (1024: the real architecture)."""
    from tests.eval_fixtures import astronaut_frames, random_alexnet_features
    from vidinvert.device import resolve_compute
    from vidinvert.engine import Inverter
    from vidinvert.face import FaceConfig, align_frames, warp_faces
    from vidinvert.metrics.identity import make_identity_embedder
    from vidinvert.metrics.image import LPIPSMetric, mse, psnr, ssim, to_unit_interval

    compute = resolve_compute(str(device), "auto")
    if encoder and generator:
        inv = Inverter.from_files(Path(encoder), Path(generator), compute)
    elif size == 1024:
        from vidinvert.models.fs_encoder import FeatureStyleEncoder
        from vidinvert.models.stylegan2 import Generator

        torch.manual_seed(0)
        inv = Inverter(FeatureStyleEncoder(), Generator(1024), compute)
    else:
        from vidinvert.models import tiny_pair

        gen, enc = tiny_pair(0)
        inv = Inverter(enc, gen, compute)
    rows: dict[str, float] = {}
    frames = astronaut_frames(batch, size=128)
    aligned = list(align_frames(frames, FaceConfig(detector="dlib")))
    quads = np.stack([a.quad for a in aligned])
    rows["face stage (dlib, 128 px frames)"] = best_of(lambda: list(align_frames(frames, FaceConfig(detector="dlib"))), 1)[0] / batch
    rows["warp"], crops = best_of(lambda: warp_faces([a.frame for a in aligned], quads, inv.size, device=device), 2)
    rows["warp"] /= batch
    rows["invert"], lat = best_of(lambda: inv.invert(crops), 1)
    rows["invert"] /= batch
    rows["synthesize"], rec = best_of(lambda: inv.synthesize(lat), 1)
    rows["synthesize"] /= batch
    a, b = to_unit_interval(crops), to_unit_interval(rec)
    rows["ssim+psnr+mse (float64)"] = best_of(lambda: (ssim(a, b), psnr(a, b), mse(a, b)), 2)[0] / batch
    lp = LPIPSMetric.from_alexnet_state(random_alexnet_features(0), device)
    rows["lpips (alexnet)"] = best_of(lambda: lp(a, b), 2)[0] / batch
    emb = make_identity_embedder(None, device)
    rows[f"identity x2 ({emb.name})"] = best_of(lambda: (emb.embed(a * 2 - 1), emb.embed(b * 2 - 1)), 1)[0] / batch
    rows["total"] = sum(rows.values())
    return {"size": inv.size, "batch": batch, "device": compute.describe(), "s_per_frame": rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--frames", type=int, default=8, help="frames per generated clip")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--full", action="store_true", help="also time one frame through the 1024 models")
    ap.add_argument("--full-batch", type=int, default=1)
    ap.add_argument("--encoder", default=None, help="real encoder file for --full (default: random weights)")
    ap.add_argument("--generator", default=None, help="real generator file for --full")
    ap.add_argument("--json", default=None, help="write the figures here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("VIDINVERT_NO_USER_CACHE", "1")
    device = torch.device(args.device)
    results: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {args.threads}",
        "date": _dt.date.today().isoformat(), "command": " ".join(sys.argv),
    }
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["VIDINVERT_HOME"] = str(Path(tmp) / "home")
        loop = bench_loop(args.videos, args.frames, args.batch, Path(tmp))
    results["loop_tiny"] = loop
    print(f"eval loop, tiny models ({loop['videos']} videos x {loop['frames_per_video']} frames of 128x128, "
          f"batch {loop['batch']}, CPU):")
    print(f"  {loop['s_per_video']:.2f} s/video   {loop['s_per_frame']:.3f} s/frame   (wall {loop['wall_s']:.1f} s incl. loading)")
    parts = [bench_parts(64, args.batch, device)]
    if args.full:
        parts.append(bench_parts(1024, args.full_batch, device, args.encoder, args.generator))
    results["parts"] = parts
    for p in parts:
        print(f"\nper frame at {p['size']} px ({p['device']}, batch {p['batch']}):")
        for name, s in p["s_per_frame"].items():
            print(f"  {name:<36} {s * 1000:10.1f} ms")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
