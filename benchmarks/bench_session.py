"""The editing session's latency: time to the first exact render of frame 0 and of a frame 10 s into a
1080p clip, and per re-render with the cached inversion (another strength), each split into its steps
(face stage, inversion, render = edit + syntheses + paste, plan), with tiny random models and with 1024 px
models with random weights in the official layout.

The clip is made here with PyAV: 1920x1080, 25 fps, 11 s, the astronaut's head (400 px) drifting over a
plain background, libx264. Faces are found by dlib (the offline detector). Each render's wall time and
the process's CPU time are printed; the machine's load average is recorded with them.

    python benchmarks/bench_session.py --json session.json
    python benchmarks/bench_session.py --models tiny --seconds 4        # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_clip(path: Path, seconds: float, size=(1920, 1080), fps: int = 25) -> Path:
    """A 1080p clip with one face drifting (libx264, crf 18)."""
    import av

    from tests.face_clips import face_patch

    w, h = size
    patch = face_patch(400)
    n = int(round(seconds * fps))
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"crf": "18", "preset": "veryfast"}
        for i in range(n):
            f = np.full((h, w, 3), (90, 110, 130), np.uint8)
            x, y = 500 + int(2 * i), 300 + int(i)
            f[y:y + 400, x:x + 400] = patch
            for pkt in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return path


def model_files(d: Path, kind: str) -> tuple[Path, Path, Path]:
    """(encoder, generator, direction): tiny random models, or 1024 px ones in the official layout."""
    import torch

    from vidinvert.models import tiny_pair
    from vidinvert.models.fs_encoder import FeatureStyleEncoder
    from vidinvert.models.stylegan2 import Generator

    torch.manual_seed(0)
    gp, ep, dp = d / f"{kind}-generator.pt", d / f"{kind}-encoder.pth", d / f"{kind}-d.npy"
    if kind == "tiny":
        gen, enc = tiny_pair(0)
        latent_avg = enc.latent_avg[0].clone()
    else:
        gen, enc = Generator(1024), FeatureStyleEncoder()
        latent_avg = torch.randn(512) * 0.1
    torch.save({"g_ema": gen.state_dict(), "latent_avg": latent_avg}, gp)
    torch.save(enc.state_dict(), ep)
    np.save(dp, np.random.default_rng(0).standard_normal(gen.style_dim).astype("float32"))
    return ep, gp, dp


def timed_render(editor, media, frame: int, settings) -> dict:
    t, c = time.perf_counter(), time.process_time()
    shown = editor.render(media, frame, settings)
    assert shown.exact
    return {"wall_s": round(time.perf_counter() - t, 3), "cpu_s": round(time.process_time() - c, 3),
            "steps": shown.timings}


def bench(kind: str, clip: Path, d: Path, at_seconds: float) -> dict:
    from vidinvert import Editor, EditRequest

    enc, gen, direction = model_files(d, kind)
    t = time.perf_counter()
    editor = Editor.from_request(EditRequest(inputs=(), encoder=str(enc), generator=str(gen), device="cpu",
                                             detector="dlib"))
    load = time.perf_counter() - t
    media = editor.open(clip)
    frame = int(round(at_seconds * 25))
    edit = EditRequest(inputs=(), direction=(direction,), strength="2", detector="dlib")
    other = EditRequest(inputs=(), direction=(direction,), strength="-1", region=("mouth",), detector="dlib")
    out = {"models": kind, "load_s": round(load, 3),
           "first_frame0": timed_render(editor, media, 0, edit),
           "rerender_frame0": timed_render(editor, media, 0, other),
           f"first_frame_{at_seconds:g}s": timed_render(editor, media, frame, edit),
           f"rerender_frame_{at_seconds:g}s": timed_render(editor, media, frame, other)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["tiny", "official"], choices=["tiny", "official"])
    ap.add_argument("--seconds", type=float, default=10.0, help="the later frame, seconds into the clip")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        clip = make_clip(d / "clip1080.mp4", args.seconds + 1.0)
        rows = [bench(kind, clip, d, args.seconds) for kind in args.models]
    rep = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
           "load_average": os.getloadavg(), "date": time.strftime("%Y-%m-%d"), "results": rows}
    print(json.dumps(rep, indent=2))
    if args.json:
        args.json.write_text(json.dumps(rep, indent=2))


if __name__ == "__main__":
    main()
