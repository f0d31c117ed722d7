#!/usr/bin/env python
"""bf16 against fp32 on the official layout: w+ / F relative error and reconstruction / edit PSNR.

The golden weights (``../shared/reference/golden/make_weights.py``, official layout, deterministic
random values: the 1024 generator, the Feature-Style encoder) and the golden image and direction at
the golden strength. The image is inverted, edited and synthesised by :class:`vidinvert.engine.Inverter`
in fp32 (the reference: the precision whose outputs match the official code) and in bf16 autocast on
this CPU, once on the generator's reference path and once on its fast bf16 CPU path
(:mod:`vidinvert.models.stylegan2_fast`). PSNR over images in [-1, 1] (peak 2) and of the uint8
frames; relative errors ``||a - b|| / ||b||``.

  python benchmarks/bench_bf16_accuracy.py [--json out.json] [--threads 2]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(os.environ.get("VIDINVERT_REFERENCE", ROOT.parent / "shared" / "reference")) / "golden"
SALT = "golden-v1"


def load_models():
    """(encoder, generator) with the golden official-layout weights, on the CPU in eval mode."""
    import importlib.util

    from vidinvert.models.fs_encoder import FeatureStyleEncoder
    from vidinvert.models.stylegan2 import Generator

    spec = importlib.util.spec_from_file_location("golden_make_weights", GOLDEN / "make_weights.py")
    mw = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mw)
    enc_sd, gen_sd, latent_avg = mw.build_all(salt=SALT)
    with torch.device("meta"):
        enc, gen = FeatureStyleEncoder(), Generator(1024)
    enc, gen = enc.to_empty(device="cpu"), gen.to_empty(device="cpu")
    enc.load_state_dict(enc_sd, strict=True)
    gen.load_state_dict(gen_sd, strict=True)
    enc.eval().set_latent_avg(latent_avg)
    return enc, gen.eval()


def psnr(a: torch.Tensor, b: torch.Tensor, peak: float = 2.0) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return float(10 * np.log10(peak ** 2 / max(mse, 1e-30)))


def uint8(x: torch.Tensor) -> torch.Tensor:
    return ((x.clamp(-1, 1) + 1) * 127.5).round()


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def run_once(inv, image, delta, strength) -> dict:
    t0 = time.perf_counter()
    lat = inv.invert(image)
    edited = inv.edit(lat, delta, strength)
    out = {"w": lat.w, "F": lat.f, "w_edit": edited.w, "F_edit": edited.f,
           "recon": inv.synthesize(lat), "edited": inv.synthesize(edited)}
    out["seconds"] = time.perf_counter() - t0
    return out


def compare(run: dict, ref: dict) -> dict:
    row = {f"rel_{k}": rel(run[k], ref[k]) for k in ("w", "F", "w_edit", "F_edit")}
    for k in ("recon", "edited"):
        row[f"psnr_{k}_db"] = psnr(run[k], ref[k])
        row[f"psnr_{k}_uint8_db"] = psnr(uint8(run[k]), uint8(ref[k]), 255.0)
    row["seconds"] = run["seconds"]
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=Path("bench_bf16_accuracy.json"))
    args = ap.parse_args(argv)
    if not (GOLDEN / "golden_1024.npz").exists():
        raise SystemExit(f"golden folder not found at {GOLDEN} (set VIDINVERT_REFERENCE)")
    torch.set_num_threads(args.threads)
    from vidinvert.device import Compute
    from vidinvert.edit.directions import load_direction
    from vidinvert.engine import Inverter

    ref_npz = np.load(GOLDEN / "golden_1024.npz")
    image = torch.from_numpy(ref_npz["image_u8"]).permute(2, 0, 1)[None].float() / 127.5 - 1
    enc, gen = load_models()
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "direction.npy", ref_npz["direction"])
        delta = load_direction(Path(tmp) / "direction.npy", gen.n_latent, gen.style_dim).scaled(1.0)
    strength = float(ref_npz["edit_strength"])
    cpu = torch.device("cpu")
    runs = {}
    for name, dtype, fast in (("fp32", torch.float32, True), ("bf16 reference path", torch.bfloat16, False),
                              ("bf16 fast path", torch.bfloat16, True)):
        gen.fast_path = fast
        runs[name] = run_once(Inverter(enc, gen, Compute(cpu, dtype, reason="bench")), image, delta, strength)
    rows = {name: compare(r, runs["fp32"]) for name, r in runs.items() if name != "fp32"}
    rows["bf16 fast vs bf16 reference"] = compare(runs["bf16 fast path"], runs["bf16 reference path"])
    meta = {"date": datetime.date.today().isoformat(), "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "weights": f"golden make_weights.py ({SALT})",
            "fp32_seconds": runs["fp32"]["seconds"]}
    for name, row in rows.items():
        print(f"{name:<28} " + "  ".join(f"{k} {v:.3g}" for k, v in row.items()))
    args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"# wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
