"""StyleSpace edits: the cost of an S edit per frame against a w+ edit, and of the per-channel statistics.

Per frame (batches of ``--batch`` frames, best of ``--repeat``), with tiny random models and with a 1024 px
generator in the official layout (random weights, native init; no encoder is needed: the latents are made
from sampled w and F = G_K(w)):

- ``edit``: :meth:`Inverter.edit` alone (w~ or s~, the early-exit G_K of the edited codes, F~);
- ``edit + synthesis``: the edit and G(w~, F~, s~), what a render adds per output;
- for a w+ direction, an S channel before K (``6_501``: G_K is recomputed) and one after K (a ToRGB
  channel of the last layer: G_K is not), and the plain synthesis without a style offset (the offset's
  own overhead is the difference).

Then the standard deviations (``compute_style_stats``, 10,000 seeded z by default), and optionally
(``--channels``) one ``locate_channels`` pass with few probes to give the per-row cost of
``directions channels``. Wall and CPU seconds and the machine's load average are printed/recorded.

    python benchmarks/bench_stylespace.py --json stylespace.json
    python benchmarks/bench_stylespace.py --models tiny              # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.timing import best_of  # noqa: E402


def build(kind: str):
    import torch

    from vidinvert.device import resolve_compute
    from vidinvert.engine import Inverter
    from vidinvert.models import stylegan2

    if kind == "tiny":
        gen = stylegan2.tiny(0)
    else:
        gen = stylegan2.Generator(1024)
        gen.reset_parameters(torch.Generator().manual_seed(0))
        gen.eval()
    return Inverter(torch.nn.Identity(), gen, resolve_compute("cpu", "fp32"))


def latents(inv, batch: int):
    import torch

    from vidinvert.engine import Latents

    g = torch.Generator().manual_seed(1)
    with torch.inference_mode():
        w = inv.generator.mapping(torch.randn(batch, inv.style_dim, generator=g))[:, None].expand(
            -1, inv.n_latent, -1).contiguous()
        f = inv.feature_at_k(w)
    return Latents(w, f)


def bench_model(kind: str, batch: int, repeat: int, samples: int, channels: bool) -> dict:
    import torch

    from vidinvert.edit.stylespace import channel_direction, compute_style_stats
    from vidinvert.models.stylespace import parse_channels

    t0 = time.perf_counter()
    repeat = max(repeat, 20) if kind == "tiny" else repeat  # milliseconds: more runs for a stable best
    inv = build(kind)
    out: dict = {"models": kind, "batch": batch, "build_s": round(time.perf_counter() - t0, 2)}
    wall, cpu, stats = best_of(compute_style_stats, inv.generator, samples, repeat=1, warmup=False)
    out["stats"] = {"samples": samples, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}
    layout = inv.style_layout
    lat = latents(inv, batch)
    d = torch.randn(inv.n_latent, inv.style_dim, generator=torch.Generator().manual_seed(2))
    d = 15 * d / d.norm()
    last = layout.layers[-1]
    early = "6_501" if kind != "tiny" else "6_3"
    before = channel_direction(parse_channels([early]), layout, stats.std)
    after = channel_direction(parse_channels([f"{last.index}_1"]), layout, stats.std)
    edits = {"w+ direction": dict(delta=d), f"S channel before K ({early})": dict(delta=None, style_delta=before.delta),
             f"S channel after K ({last.index}_1)": dict(delta=None, style_delta=after.delta)}
    rows = {}
    with torch.inference_mode():
        synth, synth_cpu, _ = best_of(inv.synthesize, lat, repeat=repeat)
        rows["synthesis alone (no edit)"] = {"edit_ms": 0.0, "edit_synth_ms": 1000 * synth / batch,
                                             "cpu_ms": 1000 * synth_cpu / batch}
        for name, kw in edits.items():
            e_wall, _, edited = best_of(lambda kw=kw: inv.edit(lat, kw["delta"], 2.0, style_delta=kw.get("style_delta")),
                                        repeat=repeat)

            def both(kw=kw):
                return inv.synthesize(inv.edit(lat, kw["delta"], 2.0, style_delta=kw.get("style_delta")))

            b_wall, b_cpu, _ = best_of(both, repeat=repeat)
            rows[name] = {"edit_ms": 1000 * e_wall / batch, "edit_synth_ms": 1000 * b_wall / batch,
                          "cpu_ms": 1000 * b_cpu / batch}
    out["per_frame"] = {k: {kk: round(vv, 2) for kk, vv in v.items()} for k, v in rows.items()}
    if channels:
        out["channels"] = bench_channels(inv, stats.std, kind)
    return out


def bench_channels(inv, std, kind: str) -> dict:
    """One image, two probes: a forward pass and four backward passes (``directions channels`` costs
    about ``samples * (forward + 2 * probes * backward)``)."""
    from vidinvert.edit.channels import locate_channels
    from vidinvert.face.regions import RegionMasker

    size = 64 if kind == "tiny" else 128
    masker = RegionMasker(("mouth",), None, size=size)
    gen = inv.generator.requires_grad_(False)
    t = time.perf_counter()
    _, info = locate_channels(gen, masker, std, samples=1, probes=2, render_size=size)
    wall = time.perf_counter() - t
    return {"size": size, "samples": 1, "probes": 2, "wall_s": round(wall, 2), "measured": info["measured"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", choices=("tiny", "1024", "both"), default="both")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--samples", type=int, default=10_000, help="z samples for the standard deviations")
    ap.add_argument("--channels", action="store_true", help="also time one directions-channels pass")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    import torch

    kinds = ["tiny", "1024"] if args.models == "both" else [args.models]
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads",
              "load_before": os.getloadavg(), "results": []}
    for kind in kinds:
        r = bench_model(kind, args.batch, args.repeat, args.samples, args.channels)
        report["results"].append(r)
        print(f"== {kind} (batch {args.batch}); std of {r['stats']['samples']} samples: {r['stats']['wall_s']} s")
        for name, v in r["per_frame"].items():
            print(f"  {name:32s} edit {v['edit_ms']:9.1f} ms/frame   edit+synthesis {v['edit_synth_ms']:9.1f} ms/frame")
        if "channels" in r:
            print(f"  directions channels, 1 sample x 2 probes at {r['channels']['size']} px: "
                  f"{r['channels']['wall_s']} s")
    report["load_after"] = os.getloadavg()
    print(f"load average before {report['load_before']}, after {report['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
