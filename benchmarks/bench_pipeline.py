"""End-to-end benchmark of ``vidinvert edit`` on generated clips (CPU by default).

Measures frames/s end to end and per stage for 720p and 1080p clips with the tiny random models
and with the 1024 official-layout models (random weights: timing only), the flicker of the output
face with and without latent smoothing on the same clip, and peak memory (VmHWM) for a short and
a 4x longer clip (each run in its own process).

    python benchmarks/bench_pipeline.py --json bench_pipeline.json
    python benchmarks/bench_pipeline.py --device cuda --dtype bf16 --batch 16 --sizes 1080 --models full

Where dlib's models cannot be installed (the lent GPU machines), ``--oracle-faces`` finds the
generated clips' face without a detector (:mod:`benchmarks.oracle_faces`: detection is then left
out of the timings) and ``--identity arcface-random`` times the report's identity metric with a
random ArcFace IResNet-50 on the device (``off``: none; ``dlib``: dlib's CPU embedding, the
default without ArcFace weights).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZES = {720: (1280, 720), 1080: (1920, 1080)}


def make_clip(path: Path, size: tuple[int, int], n: int) -> Path:
    from tests.face_clips import face_frame, make_face_clip

    w, h = size
    face = h // 3
    return make_face_clip(path, n_frames=n, size=size, frame_fn=lambda i: face_frame(
        i, size, face_px=face, faces=((w // 2 - face // 2, h // 3),), drift=1.0))


def models(kind: str, d: Path) -> tuple[Path, Path]:
    import torch

    if kind == "tiny":
        from vidinvert.models import tiny_pair

        gen, enc = tiny_pair(0)
        la = enc.latent_avg[0].clone()
    else:
        from vidinvert.models.fs_encoder import FeatureStyleEncoder
        from vidinvert.models.stylegan2 import Generator

        torch.manual_seed(0)
        gen, enc = Generator(1024), FeatureStyleEncoder()
        la = torch.zeros(512)
    gp, ep = d / f"{kind}-g.pt", d / f"{kind}-e.pth"
    torch.save({"g_ema": gen.state_dict(), "latent_avg": la}, gp)
    torch.save(enc.state_dict(), ep)
    return ep, gp


def run_once(clip: Path, ep: Path, gp: Path, args, extra=()) -> dict:
    import numpy as np

    from vidinvert.cli.app import main

    d = clip.parent
    kind = gp.name.split("-")[0]
    direction = d / f"dir-{kind}.npy"
    if not direction.exists():
        np.save(direction, np.random.default_rng(0).standard_normal(512 if kind == "full" else 64).astype("float32"))
    out, rep = d / f"out-{time.time_ns()}.mp4", d / f"rep-{time.time_ns()}.json"
    t0 = time.perf_counter()
    rc = main(["--quiet", "edit", "--json", str(clip), "--direction", str(direction), "-o", str(out), "--report", str(rep),
               "--encoder", str(ep), "--generator", str(gp), "--device", args.device, "--dtype", args.dtype,
               "--batch-size", str(args.batch), *identity_options(args, d), *extra])
    wall = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"edit failed ({rc})")
    r = json.loads(rep.read_text())
    return {"wall_s": wall, "frames": r["frames"]["total"], "fps": r["fps_end_to_end"], "stages": r["stages"],
            "flicker": r["flicker"]}


def identity_options(args, d: Path) -> list[str]:
    """CLI options for ``--identity``: dlib (default), off, or a random ArcFace in a weights folder."""
    mode = getattr(args, "identity", "dlib")
    if mode == "off":
        return ["--no-identity"]
    if mode == "arcface-random":
        import torch

        from vidinvert.models.iresnet import iresnet50

        wd = d / "weights"
        if not (wd / "backbone.pth").exists():
            wd.mkdir(exist_ok=True)
            torch.manual_seed(0)
            torch.save(iresnet50().state_dict(), wd / "backbone.pth")
        return ["--weights-dir", str(wd)]
    return []


def peak_rss(clip: Path, ep: Path, gp: Path, args) -> float:
    code = (
        "import sys,json; sys.path.insert(0, %r); from benchmarks.bench_pipeline import run_once; "
        "import argparse; a=argparse.Namespace(device=%r, dtype=%r, batch=%d); run_once(__import__('pathlib').Path(%r), "
        "__import__('pathlib').Path(%r), __import__('pathlib').Path(%r), a); "
        "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"
    ) % (str(ROOT), args.device, args.dtype, args.batch, str(clip), str(ep), str(gp))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return int(out.strip().splitlines()[-1]) / 1024


def rss_trace(frames: int, d: Path) -> list[tuple[int, int]]:
    """RSS (MiB) after every finished chunk of one long run (tiny models, 720p, dlib report)."""
    import numpy as np

    from vidinvert.device import resolve_compute
    from vidinvert.edit.directions import Direction, EditSpec, broadcast_direction
    from vidinvert.engine import Inverter
    from vidinvert.face.stage import FaceConfig
    from vidinvert.metrics.identity import DlibEmbedder
    from vidinvert.pipeline.video import OutputSpec, VideoConfig, VideoJob, VideoRun

    clip = make_clip(d / "trace.mp4", SIZES[720], frames)
    ep, gp = models("tiny", d)
    inv = Inverter.from_files(ep, gp, resolve_compute("cpu", "fp32"))
    vec = broadcast_direction(np.ones(inv.style_dim, np.float32), inv.n_latent, inv.style_dim)
    spec = EditSpec("x", (Direction("x", vec, "ones"),), (1.0,))
    job = VideoJob(source=clip, outputs=(OutputSpec("x", d / "trace.out.mp4", spec),),
                   config=VideoConfig(batch_size=2), face=FaceConfig(detector="dlib"))
    trace, done = [], [0]

    def progress(stage: str, n: int) -> None:
        if stage == "render":
            done[0] += n
            rss = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmRSS"))
            trace.append((done[0], rss // 1024))

    VideoRun(inv, job, embedder=DlibEmbedder(), progress=progress).run()
    return trace


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--sizes", type=int, nargs="+", default=[720, 1080])
    ap.add_argument("--models", nargs="+", default=["tiny", "full"])
    ap.add_argument("--frames", type=int, default=24, help="frames per clip for the tiny models")
    ap.add_argument("--full-frames", type=int, default=3, help="frames per clip for the 1024 models")
    ap.add_argument("--rss-frames", type=int, default=128,
                    help="frames of the short clip of the memory check (the long one has 4x); at least a few "
                         "chunks (32 frames each) so the pipeline's bounded buffers are full in both")
    ap.add_argument("--parts", nargs="+", default=["speed", "flicker", "rss"], choices=["speed", "flicker", "rss", "trace"])
    ap.add_argument("--oracle-faces", action="store_true",
                    help="find the generated face without a detector (no dlib needed; detection left out)")
    ap.add_argument("--identity", choices=["dlib", "arcface-random", "off"], default="dlib",
                    help="the report's identity metric: dlib (CPU), a random ArcFace on the device, or none")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.oracle_faces:
        from benchmarks.oracle_faces import use_patch_oracle

        use_patch_oracle()
    results: dict = {"device": args.device, "dtype": args.dtype, "batch": args.batch, "runs": [],
                     "faces": "patch oracle (no detector)" if args.oracle_faces else "detector", "identity": args.identity}
    with tempfile.TemporaryDirectory() as td:
        d = Path(td)
        for kind in (args.models if "speed" in args.parts else []):
            ep, gp = models(kind, d)
            for s in args.sizes:
                n = args.frames if kind == "tiny" else args.full_frames
                clip = make_clip(d / f"clip{s}-{n}.mp4", SIZES[s], n)
                r = run_once(clip, ep, gp, args)
                r.update(models=kind, size=s)
                results["runs"].append(r)
                st = r["stages"]
                net = sum(st.get(k, {}).get("seconds", 0) for k in ("encoder", "synthesize", "edit"))
                other = sum(v["seconds"] for k, v in st.items() if k not in ("encoder", "synthesize", "edit"))
                print(f"{kind:5s} {s}p: {r['fps']:.3f} frames/s end to end; networks {net / r['frames']:.3f} s/frame, "
                      f"other stages {other / r['frames']:.3f} s/frame (+{100 * other / max(net, 1e-9):.0f}%)")
                print("   " + ", ".join(f"{k} {v['fps']} f/s" for k, v in st.items()))
        ep, gp = models("tiny", d)
        if "flicker" in args.parts:
            clip = make_clip(d / "flicker.mp4", SIZES[720], args.frames)
            plain = run_once(clip, ep, gp, args)["flicker"]
            smooth = run_once(clip, ep, gp, args, ["--smooth-latents", "1.5"])["flicker"]
            results["flicker"] = {"no_smoothing": plain, "smooth_latents_1.5": smooth}
            print(f"flicker (tiny, 720p): inversion {plain['inversion']:.5f} -> {smooth['inversion']:.5f} "
                  f"with --smooth-latents 1.5")
        if "rss" in args.parts:
            n = args.rss_frames
            short = make_clip(d / "short.mp4", SIZES[720], n)
            long = make_clip(d / "long.mp4", SIZES[720], n * 4)
            rss = {"short_frames": n, "short_mib": peak_rss(short, ep, gp, args),
                   "long_frames": n * 4, "long_mib": peak_rss(long, ep, gp, args)}
            rss["growth_pct"] = 100 * (rss["long_mib"] / rss["short_mib"] - 1)
            results["peak_rss"] = rss
            print(f"peak RSS (tiny, 720p): {rss['short_mib']:.0f} MiB for {n} frames, "
                  f"{rss['long_mib']:.0f} MiB for {4 * n} frames ({rss['growth_pct']:+.1f}%)")
        if "trace" in args.parts:
            trace = rss_trace(args.rss_frames * 4, d)
            results["rss_trace"] = trace
            print("RSS after each chunk (frames, MiB): " + ", ".join(f"{f}:{m}" for f, m in trace))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
