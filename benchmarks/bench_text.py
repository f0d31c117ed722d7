"""Edits described in words, on the CPU: the time of ``directions from-text`` with a relevance matrix of the
published size (5376 x 512), the cost per channel of ``directions stylespace-stats`` at 1024 (two syntheses
per sampled image plus CLIP), and a text edit's cost per frame against a w+ edit.

Models: the 1024 generator and the Feature-Style encoder with random weights in the official layouts, and
CLIP ViT-B/32's architecture with random weights (timing only). The machine's load is recorded.

    python benchmarks/bench_text.py --json text.json
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.timing import best_of  # noqa: E402


def _clip_file(d: Path) -> Path:
    import open_clip
    from safetensors.torch import save_file

    os.environ["HF_HUB_OFFLINE"] = "1"
    m = open_clip.create_model("ViT-B-32", pretrained=None)
    p = d / "clip-vit-b32-openai.safetensors"
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(p))
    return p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from vidinvert.device import resolve_compute
    from vidinvert.edit.relevance import PUBLISHED_MAX_RESOLUTION, Relevance, _channel_row, text_direction
    from vidinvert.edit.stylespace import compute_style_stats, style_vectors
    from vidinvert.engine import Inverter
    from vidinvert.models import clip
    from vidinvert.models.fs_encoder import FeatureStyleEncoder
    from vidinvert.models.stylegan2 import Generator
    from vidinvert.models.stylespace import generator_layout

    torch.manual_seed(0)
    rep: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                 "date": time.strftime("%Y-%m-%d"), "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        gen = Generator(1024).eval().requires_grad_(False)
        layout = generator_layout(gen)
        model = clip.load_clip(_clip_file(d))
        t = time.perf_counter()
        stats = compute_style_stats(gen, samples=2000)
        rep["style_stats_2000_s"] = round(time.perf_counter() - t, 2)
        layers = layout.conv_layers(PUBLISHED_MAX_RESOLUTION)
        rows = sum(x.channels for x in layers)
        m = np.random.default_rng(0).standard_normal((rows, 512)).astype(np.float32)
        rel = Relevance(m / np.linalg.norm(m, axis=1, keepdims=True), layers, np.ones(rows, bool), "random")
        wall, cpu, _ = best_of(lambda: text_direction(model, rel, layout, stats.std, "a face with a beard"))
        rep["from_text_s"] = {"wall": round(wall, 3), "cpu": round(cpu, 3), "matrix": [rows, 512]}
        z = torch.randn(2, 512)
        with torch.no_grad():
            w = gen.mapping(z)
            s = style_vectors(gen, w)
            noise = gen.stored_noise()
            t = time.perf_counter()
            _channel_row(gen, model, s, w, 0, float(stats.mean[0]), float(stats.std[0]), 2, noise)
            per2 = time.perf_counter() - t
        rep["stats_channel_2_images_s"] = round(per2, 2)
        rep["stats_channel_100_images_estimated_s"] = round(per2 * 50, 1)
        rep["stats_1024_cpu_estimated_days"] = round(per2 * 50 * rows / 86400, 1)
        inv = Inverter(FeatureStyleEncoder(), gen, resolve_compute("cpu", "fp32"))
        lat = inv.invert(torch.zeros(1, 3, 1024, 1024))
        wd = torch.randn(18, 512)
        wd /= wd.norm()
        dirn, _ = text_direction(model, rel, layout, stats.std, "a face with a beard")
        specs = {"w+": (15 * 3 * wd, None), "text": (torch.zeros(18, 512), dirn.delta)}
        for name, (delta, sd) in specs.items():
            def edit_and_synth(delta=delta, sd=sd):
                le = inv.edit(lat, delta, torch.tensor([4.1 if sd is not None else 1.0]),
                              **({"style_delta": sd} if sd is not None else {}))
                return inv.synthesize(le)
            wall, cpu, _ = best_of(edit_and_synth, repeat=2)
            rep[f"edit_plus_synthesis_{name}_s"] = {"wall": round(wall, 2), "cpu": round(cpu, 2)}
    rep["load_average"] = os.getloadavg()
    print(json.dumps(rep, indent=2))
    if args.json:
        args.json.write_text(json.dumps(rep, indent=2))


if __name__ == "__main__":
    main()
