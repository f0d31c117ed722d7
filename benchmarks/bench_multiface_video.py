"""The video job with several faces at 1080p: cost per extra face per frame (issue 12).

Two parts, as the networks and the rest differ by orders of magnitude on a CPU:

* networks: the 1024 generator and encoder in the official layout with random weights (timing
  only), one batch of F faces ``[F,3,1024,1024]``: encoder, reconstruction synthesis, the edit
  (one direction, G_K for F~) and the edit's synthesis, i.e. one frame's network work with F faces;
* the rest of the video job (align warp, masks, depth-ordered paste, metrics; decode and the face
  stage reported apart) with the tiny models (64 px crops) on a generated 1920x1080 ffv1 clip with
  F astronaut heads (220-300 px) moving, from the run's own stage clock.

    .venv/bin/python benchmarks/bench_multiface_video.py --faces 1 2 3 --net-faces 1 2 --json out.json
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
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.face_clips import make_face_clip
from tests.multi_face_clips import Person, TemplateDetector, render

SIZES = (260, 220, 300, 240)
NETWORK_STAGES = ("encoder", "synthesize", "edit")


def people(n: int) -> list[Person]:
    return [Person(SIZES[k], lambda i, k=k: (80 + 450 * k + 3 * i, 300 + 120 * (k % 2) + i)) for k in range(n)]


def _edit(inv, tmp: Path):
    from vidinvert.edit.directions import EditSpec, load_direction

    p = tmp / f"d{inv.style_dim}.npy"
    np.save(p, np.random.default_rng(0).standard_normal(inv.style_dim).astype(np.float32))
    return EditSpec("e", (load_direction(p, inv.n_latent, inv.style_dim, name="e"),), (1.0,))


def _inverter(enc: Path, gen: Path):
    from vidinvert.device import resolve_compute
    from vidinvert.engine import Inverter

    return Inverter.from_files(enc, gen, resolve_compute("cpu", "fp32"))


def networks(tmp: Path, counts: list[int]) -> dict:
    """Seconds for one frame's network work with F faces (one batch), 1024 random-weight models."""
    from vidinvert.models.fs_encoder import FeatureStyleEncoder
    from vidinvert.models.stylegan2 import Generator
    from vidinvert.pipeline.edits import EditPlan

    torch.manual_seed(0)
    gp, ep = tmp / "stylegan2-ffhq-config-f.pt", tmp / "143_enc.pth"
    torch.save({"g_ema": Generator(1024).state_dict(), "latent_avg": torch.zeros(512)}, gp)
    torch.save(FeatureStyleEncoder().state_dict(), ep)
    inv = _inverter(ep, gp)
    spec = _edit(inv, tmp)
    plan = EditPlan(strength=3.0)
    out = {}
    for n in counts:
        crops = torch.rand(n, 3, 1024, 1024) * 2 - 1
        t0 = time.perf_counter()
        with torch.inference_mode():
            lat = inv.invert(crops)
            inv.synthesize(lat)
            ed = plan.edit_batch(inv, lat, [("e", spec)], [(0, 0.0)] * n, [1.0] * n)
            inv.synthesize(ed["e"])
        out[n] = time.perf_counter() - t0
        print(f"networks, {n} faces: {out[n]:.1f} s", flush=True)
    return out


def rest(tmp: Path, counts: list[int], frames: int, tiny: tuple[Path, Path]) -> dict:
    """Per-frame milliseconds of each stage of the video job with the tiny models, per face count."""
    from vidinvert.face.stage import FaceConfig
    from vidinvert.face.track import TrackConfig
    from vidinvert.pipeline.video import OutputSpec, VideoConfig, VideoJob, VideoRun

    out = {}
    for n in counts:
        ppl = people(n)
        rendered, _ = render(ppl, frames, size=(1920, 1080))
        clip = tmp / f"c{n}.mkv"
        make_face_clip(clip, n_frames=frames, size=(1920, 1080), frame_fn=lambda i, r=rendered: r[i][2], codec="ffv1",
                       audio=False)
        inv = _inverter(*tiny)
        cfg = VideoConfig(strength=3.0, batch_size=8, chunk_frames=frames, codec="ffv1", overwrite=True)
        job = VideoJob(source=clip, outputs=(OutputSpec("e", tmp / f"o{n}.mkv", _edit(inv, tmp)),),
                       config=cfg, face=FaceConfig(track=TrackConfig(select="all")))
        rep = VideoRun(inv, job, detector=TemplateDetector([p.patch() for p in ppl])).run()
        st = rep["stages"]
        row = {k: 1e3 * v["seconds"] / frames for k, v in st.items()}
        row["faces_edited"] = rep["frames"]["edited"]
        row["rest_ms"] = sum(v for k, v in row.items() if k not in (*NETWORK_STAGES, "decode+face", "faces_edited"))
        out[n] = row
        print(f"rest, {n} faces:", {k: round(v, 1) for k, v in row.items()}, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, nargs="*", default=[1, 2, 3])
    ap.add_argument("--net-faces", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from vidinvert.models import tiny_pair

    res = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "threads": args.threads,
           "torch": torch.__version__, "load": os.getloadavg()}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        gen, enc = tiny_pair(0)
        tg, te = tmp / "tiny-generator.pt", tmp / "tiny-encoder.pth"
        torch.save({"g_ema": gen.state_dict(), "latent_avg": enc.latent_avg[0].clone()}, tg)
        torch.save(enc.state_dict(), te)
        res["rest"] = rest(tmp, args.faces, args.frames, (te, tg))
        res["networks_s"] = networks(tmp, args.net_faces) if args.net_faces else {}
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
