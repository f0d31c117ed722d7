"""Video I/O benchmark: decode and decode+encode frames/s, and peak RSS vs clip length.

Generates its own clips (H.264 ``veryfast`` with an AAC sine track, moving gradients plus
film-grain-like noise), then runs every measurement in a fresh subprocess so each peak RSS
is the measurement's own (``VmHWM``; see :func:`peak_rss_kib` for why not ``ru_maxrss``):

* ``decode``: ``open_video(clip)`` -> upright RGB frames (numpy), nothing kept;
* ``transcode``: the same plus ``VideoWriter`` with the defaults (libx264, CRF 18, preset
  medium, audio copied) -> a temporary .mp4;
* memory: the transcode of a short clip and of one 10x longer; the target is < 5 % growth.

Wall-clock frames/s depend on what else runs on the machine; the CPU time per frame (user +
system, summed over the encoder's and decoder's threads) is steadier on a shared machine.

    python benchmarks/bench_video.py                      # 720p + 1080p, 60 frames; RSS at 1080p 60 vs 600
    python benchmarks/bench_video.py --frames 30 --rss-frames 20 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

SIZES = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}


def make_clip(path: Path, width: int, height: int, n_frames: int, fps: int = 30) -> None:
    """A clip with motion and grain, so the encoder has real work (not flat colour)."""
    import av

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([60 + 120 * x / width, 60 + 120 * y / height, 100 + 50 * np.sin((x + y) / 40)], -1)
    grain = rng.normal(0, 6, (height, width, 3)).astype(np.float32)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.codec_context.options = {"preset": "veryfast", "crf": "20"}
        a = c.add_stream("aac", rate=48000, layout="stereo")
        for i in range(n_frames):
            img = np.roll(base, 4 * i, axis=1) + np.roll(grain, 7 * i, axis=0)
            s0 = (i * 8) % (width - 200)
            img[200:400, s0 : s0 + 200] = (230, 220, 200)
            f = av.VideoFrame.from_ndarray(np.clip(img, 0, 255).astype(np.uint8), format="rgb24")
            f.pts = i
            for pk in s.encode(f):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
        n = int(48000 * n_frames / fps)
        t = np.arange(n) / 48000
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, n, 1024):
            block = np.ascontiguousarray(np.stack([tone[start : start + 1024]] * 2))
            af = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
            af.sample_rate, af.pts, af.time_base = 48000, start, Fraction(1, 48000)
            for pk in a.encode(af):
                c.mux(pk)
        for pk in a.encode():
            c.mux(pk)


def child(mode: str, clip: str, out_dir: str) -> dict:
    """Runs in a fresh process: one measurement, returns frames, seconds, peak RSS."""
    from vidinvert.video import VideoWriter, open_video

    reader = open_video(clip)
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    n = 0
    if mode == "decode":
        for frame in reader:
            n += 1
            del frame
    else:
        dest = Path(out_dir) / "out.mp4"
        with VideoWriter(dest, like=reader.info, carry_from=clip, overwrite=True) as w:
            for frame in reader:
                w.write_frame(frame)
                n += 1
    seconds = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)  # all threads
    return {"mode": mode, "frames": n, "seconds": seconds, "fps": n / seconds, "ms_per_frame": 1000 * seconds / n,
            "cpu_ms_per_frame": 1000 * cpu / n,
            "peak_rss_mib": peak_rss_kib() / 1024,
            "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def peak_rss_kib() -> float:
    """This process's own peak RSS (KiB).

    ``/proc/self/status`` VmHWM where available: on Linux ``getrusage().ru_maxrss`` of an
    exec'd child also counts the parent's peak at fork time (``exec`` folds the old memory map's
    high-water mark into it), which would hide the child's own figure.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1])
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def run_child(mode: str, clip: Path, out_dir: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--clip", str(clip), "--out-dir", str(out_dir)]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="720p,1080p", help="comma list of 360p, 720p, 1080p")
    ap.add_argument("--frames", type=int, default=60, help="frames per speed clip")
    ap.add_argument("--rss-size", default="1080p")
    ap.add_argument("--rss-frames", type=int, default=60,
                    help="short clip for RSS (>= the encoder lookahead, ~50 frames); the long one has 10x")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--child", choices=["decode", "transcode"], help=argparse.SUPPRESS)
    ap.add_argument("--clip", help=argparse.SUPPRESS)
    ap.add_argument("--out-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.clip, args.out_dir)))
        return

    results: dict = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                 "python": platform.python_version()}, "speed": [], "memory": {}}
    try:
        import av

        results["machine"]["pyav"] = av.__version__
    except ImportError:  # pragma: no cover
        pass
    with tempfile.TemporaryDirectory(prefix="vidinvert-bench-") as tmp:
        tmp = Path(tmp)
        for name in args.sizes.split(","):
            w, h = SIZES[name]
            clip = tmp / f"{name}.mp4"
            make_clip(clip, w, h, args.frames)
            for mode in ("decode", "transcode"):
                r = run_child(mode, clip, tmp)
                r["size"] = name
                results["speed"].append(r)
                print(f"{name:>6} {mode:<10} {r['frames']:4d} frames  {r['fps']:7.1f} frames/s  "
                      f"{r['ms_per_frame']:7.1f} ms/frame (CPU {r['cpu_ms_per_frame']:6.1f} ms/frame, all threads)  "
                      f"peak RSS {r['peak_rss_mib']:.0f} MiB", flush=True)
        w, h = SIZES[args.rss_size]
        mem = {}
        for label, n in (("short", args.rss_frames), ("long", 10 * args.rss_frames)):
            clip = tmp / f"rss_{label}.mp4"
            make_clip(clip, w, h, n)
            mem[label] = run_child("transcode", clip, tmp)
            print(f"RSS {args.rss_size} transcode {label:<5} {n:4d} frames  peak RSS {mem[label]['peak_rss_mib']:.1f} MiB",
                  flush=True)
        growth = mem["long"]["peak_rss_mib"] / mem["short"]["peak_rss_mib"] - 1
        results["memory"] = {"size": args.rss_size, "short": mem["short"], "long": mem["long"],
                             "growth": growth, "within_5_percent": abs(growth) <= 0.05}
        print(f"peak RSS growth for the 10x clip: {100 * growth:+.1f} % "
              f"({'within' if abs(growth) <= 0.05 else 'NOT within'} 5 %)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
