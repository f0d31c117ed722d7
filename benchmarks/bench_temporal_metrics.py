"""What the temporal metrics (issue 25) add per frame: warping error and TL-ID / TG-ID, 1 and 3 faces.

Two parts:

* ``metrics``: 1920x1080 frames with F astronaut heads (220-300 px) moving (``tests.multi_face_clips``),
  aligned to S=1024 crops as the video job does; per frame and face, the new work the video job's
  metrics stage does: the warping-error meter (three streams: source, inversion, one edit, each
  area-averaged to 256 px; DIS forward and backward on the source's grey crop; Lai's tests; three
  sampled comparisons), the per-frame timeline and flicker values, and TL-ID / TG-ID computed at the
  end of the run from 512-d embeddings (``--track-frames`` frames per track, amortised per frame).
  The identity embeddings themselves are not counted: the report computed them before this issue.
  Best of 3 (CPU and wall ms; ``benchmarks/timing.py``).
* ``networks``: one edited 1024 frame of one face (encoder, reconstruction, G_K edit, edit synthesis)
  with the official-layout models and random weights, CPU seconds: the 3% budget's reference.

``--example PATH`` instead writes the README's report picture: a generated 320x240 clip with two
people (one leaves for a while), the tiny random models, dlib's identity embedding, strength keyframes.

    .venv/bin/python benchmarks/bench_temporal_metrics.py --faces 1 3 --json out.json
    .venv/bin/python benchmarks/bench_temporal_metrics.py --example docs/report-example.png
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

from benchmarks.timing import best_of
from tests.multi_face_clips import Person, TemplateDetector, render

SIZES = (260, 220, 300)


def people(n: int) -> list[Person]:
    return [Person(SIZES[k], lambda i, k=k: (80 + 600 * k + 2.5 * i, 300 + 120 * (k % 2) + 1.5 * i)) for k in range(n)]


def aligned_crops(n_faces: int, frames: int, size: int = 1024) -> list[torch.Tensor]:
    """Per face, its aligned crops ``[frames,3,size,size]`` in [-1,1] from 1080p frames."""
    from vidinvert.face.align import warp_faces
    from vidinvert.face.stage import FaceConfig
    from vidinvert.face.stream import MultiFaceAligner
    from vidinvert.face.track import TrackConfig

    ppl = people(n_faces)
    rendered, _ = render(ppl, frames, size=(1920, 1080))
    aligner = MultiFaceAligner(FaceConfig(track=TrackConfig(select="all")),
                               detector=TemplateDetector([p.patch() for p in ppl]))
    per_face: list[list[torch.Tensor]] = [[] for _ in range(n_faces)]
    for ff in aligner.run(rendered):
        for a in ff.edited_faces:
            per_face[a.track].append(warp_faces([ff.frame], a.quad[None], size)[0])
    return [torch.stack(c) for c in per_face]


def metrics_part(faces: list[int], frames: int, track_frames: int) -> dict:
    from vidinvert.metrics.temporal_identity import temporal_identity
    from vidinvert.pipeline.report import StreamMetrics
    from vidinvert.pipeline.state import TrackState
    from vidinvert.pipeline.temporal_report import FrameMark

    out = {}
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(track_frames, 512, generator=g)
    outs = {"inversion": emb + 0.3 * torch.randn(track_frames, 512, generator=g),
            "edit": emb + 0.5 * torch.randn(track_frames, 512, generator=g)}
    tg_wall, tg_cpu, _ = best_of(temporal_identity, emb, outs, [0] * track_frames)
    for n in faces:
        crops = aligned_crops(n, frames)

        def feed_all():
            for c in crops:
                st = TrackState(edit_names=("edit",))
                streams = {"source": c, "inversion": (c * 0.95).clamp(-1, 1), "edit": (c * 0.9 + 0.05).clamp(-1, 1)}
                st.warp.update(streams, torch.ones(len(c), 1, 256, 256))
                st.timeline.add([FrameMark(i, i / 25, False, 3.0) for i in range(len(c))])

        def flicker_all():  # what the report did before (for scale): flicker of the three streams
            for c in crops:
                for _ in range(3):
                    StreamMetrics().flicker.update(c)

        wall, cpu, _ = best_of(feed_all)
        f_wall, f_cpu, _ = best_of(flicker_all)
        per = frames
        row = {"warping_and_timeline_cpu_ms": 1e3 * cpu / per, "warping_and_timeline_wall_ms": 1e3 * wall / per,
               "tl_tg_cpu_ms": 1e3 * n * tg_cpu / track_frames, "tl_tg_wall_ms": 1e3 * n * tg_wall / track_frames,
               "flicker_before_cpu_ms": 1e3 * f_cpu / per}
        row["added_cpu_ms"] = row["warping_and_timeline_cpu_ms"] + row["tl_tg_cpu_ms"]
        row["added_cpu_ms_per_face"] = row["added_cpu_ms"] / n
        out[n] = row
        print(f"{n} face(s):", {k: round(v, 2) for k, v in row.items()}, flush=True)
    return out


def networks_part(tmp: Path) -> dict:
    """CPU and wall seconds of one edited 1024 frame (one face), random official-layout weights."""
    from vidinvert.device import resolve_compute
    from vidinvert.edit.directions import EditSpec, load_direction
    from vidinvert.engine import Inverter
    from vidinvert.models.fs_encoder import FeatureStyleEncoder
    from vidinvert.models.stylegan2 import Generator
    from vidinvert.pipeline.edits import EditPlan

    torch.manual_seed(0)
    gp, ep = tmp / "stylegan2-ffhq-config-f.pt", tmp / "143_enc.pth"
    torch.save({"g_ema": Generator(1024).state_dict(), "latent_avg": torch.zeros(512)}, gp)
    torch.save(FeatureStyleEncoder().state_dict(), ep)
    inv = Inverter.from_files(ep, gp, resolve_compute("cpu", "fp32"))
    p = tmp / "d.npy"
    np.save(p, np.random.default_rng(0).standard_normal(inv.style_dim).astype(np.float32))
    spec = EditSpec("e", (load_direction(p, inv.n_latent, inv.style_dim, name="e"),), (1.0,))
    plan = EditPlan(strength=3.0)
    crops = torch.rand(1, 3, 1024, 1024) * 2 - 1

    def one_frame():
        with torch.inference_mode():
            lat = inv.invert(crops)
            inv.synthesize(lat)
            inv.synthesize(plan.edit_batch(inv, lat, [("e", spec)], [(0, 0.0)], [1.0])["e"])

    wall, cpu, _ = best_of(one_frame, repeat=2)
    print(f"networks, one edited 1024 frame: {wall:.2f} s wall, {cpu:.2f} s CPU", flush=True)
    return {"wall_s": wall, "cpu_s": cpu}


def example(path: Path) -> None:
    """The README's picture (see the module docstring)."""
    from tests.face_clips import make_face_clip
    from vidinvert.device import resolve_compute
    from vidinvert.edit.directions import EditSpec, load_direction
    from vidinvert.engine import Inverter
    from vidinvert.face.smooth import SmoothConfig
    from vidinvert.face.stage import FaceConfig
    from vidinvert.face.track import TrackConfig
    from vidinvert.metrics.identity import DlibEmbedder
    from vidinvert.models import tiny_pair
    from vidinvert.pipeline.edits import EditPlan
    from vidinvert.pipeline.report_figure import write_report_figure
    from vidinvert.pipeline.video import OutputSpec, VideoConfig, VideoJob, VideoRun
    from vidinvert.timespec import parse_strength

    n = 50
    ppl = [Person(110, lambda i: (20 + 0.8 * i, 60 + 0.3 * i)),
           Person(90, lambda i: None if 18 <= i < 30 else (200 - 0.6 * i, 40 + 0.4 * i))]
    rendered, _ = render(ppl, n, size=(320, 240))
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        clip = make_face_clip(tmp / "two.mkv", n_frames=n, size=(320, 240), frame_fn=lambda i: rendered[i][2],
                              codec="ffv1", audio=False)
        gen, enc = tiny_pair(0)
        tg, te = tmp / "g.pt", tmp / "e.pth"
        torch.save({"g_ema": gen.state_dict(), "latent_avg": enc.latent_avg[0].clone()}, tg)
        torch.save(enc.state_dict(), te)
        inv = Inverter.from_files(te, tg, resolve_compute("cpu", "fp32"))
        np.save(tmp / "smile.npy", np.random.default_rng(3).standard_normal(inv.style_dim).astype(np.float32))
        spec = EditSpec("smile", (load_direction(tmp / "smile.npy", inv.n_latent, inv.style_dim, name="smile"),),
                        (1.0,))
        strength = parse_strength("0s:0,0.6s:3,1.4s:3,1.9s:0")
        job = VideoJob(source=clip, outputs=(OutputSpec("smile", tmp / "out.mkv", spec),),
                       config=VideoConfig(strength=strength, batch_size=4, codec="ffv1"),
                       face=FaceConfig(track=TrackConfig(select="all"), smooth=SmoothConfig(max_gap=0.2)))
        rep = VideoRun(inv, job, embedder=DlibEmbedder(), plan=EditPlan(strength=strength),
                       detector=TemplateDetector([p.patch() for p in ppl])).run()
    rep["input"] = "two-people.mkv (generated; tiny random models, dlib identity)"
    print(write_report_figure(rep, path))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, nargs="*", default=[1, 3])
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--track-frames", type=int, default=8192, help="frames per track for TL-ID / TG-ID")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-networks", action="store_true")
    ap.add_argument("--example", type=Path, help="write the README's report picture here instead")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.example:
        example(args.example)
        return
    res = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "threads": args.threads,
           "torch": torch.__version__, "load_before": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M")}
    res["metrics"] = metrics_part(args.faces, args.frames, args.track_frames)
    if not args.no_networks:
        with tempfile.TemporaryDirectory() as d:
            res["networks"] = networks_part(Path(d))
        for row in res["metrics"].values():
            row["share_of_edited_frame_cpu_per_face"] = row["added_cpu_ms_per_face"] / (1e3 * res["networks"]["cpu_s"])
    res["load_after"] = os.getloadavg()
    print(json.dumps(res, indent=1))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
