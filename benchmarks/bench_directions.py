#!/usr/bin/env python
"""Time ``directions discover`` (SeFa) and the ``directions preview`` contact sheet with the 1024 models.

Random weights in the official layout (timing does not depend on them): the FFHQ 1024 config-f
generator and the Feature-Style encoder, built in memory. Measures:
  - discover: the factorization of all 18 rows (the 512x512 eigenproblem) and writing 10 files;
  - preview: a 5 x 5 sheet (5 discovered directions x the default strengths) of an aligned 1024
    face, rendered at 1024 and with ``--preview-size 256`` (one inversion each; per direction one
    edit + one batch of 5 syntheses).

  python benchmarks/bench_directions.py [--rows 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=5, help="directions (rows) of the sheet")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 256], help="render sizes of the sheet")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from PIL import Image
    from skimage import data

    from vidinvert.device import resolve_compute
    from vidinvert.edit.discover import DiscoverRequest, run_discover
    from vidinvert.engine import Inverter
    from vidinvert.models.fs_encoder import FeatureStyleEncoder
    from vidinvert.models.stylegan2 import Generator
    from vidinvert.pipeline.preview import PreviewRequest, run_preview

    torch.manual_seed(0)
    t = time.perf_counter()
    inverter = Inverter(FeatureStyleEncoder().eval(), Generator(1024).eval(), resolve_compute("cpu", "fp32"))
    build = time.perf_counter() - t
    results: dict = {"date": datetime.date.today().isoformat(), "machine": platform.processor() or platform.machine(),
                     "threads": torch.get_num_threads(), "build_models_s": build}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        t = time.perf_counter()
        res = run_discover(inverter.generator, DiscoverRequest(d / "dirs", count=10))
        results["discover_s"] = time.perf_counter() - t
        results["discover_internal_s"] = res.seconds
        face = d / "face.png"
        Image.fromarray(np.asarray(Image.fromarray(data.astronaut()[0:260, 110:370]).resize((1024, 1024)))).save(face)
        for size in args.sizes:
            out = d / f"grid{size}.png"
            t = time.perf_counter()
            summary = run_preview(inverter, PreviewRequest(face, out, directions=tuple(res.files[: args.rows]),
                                                           no_align=True, preview_size=None if size == 1024 else size))
            total = time.perf_counter() - t
            results[f"preview_{size}"] = {"total_s": total, **{f"{k}_s": v for k, v in summary["seconds"].items()},
                                          "grid": f"{summary['rows']}x{summary['columns']}",
                                          "image_size": list(Image.open(out).size)}
            print(f"preview {summary['rows']}x{summary['columns']} at {size}: {total:.1f} s "
                  f"(render {summary['seconds']['render']:.1f} s, write {summary['seconds']['write']:.1f} s)", flush=True)
    print(f"discover (18 rows, 10 files): {results['discover_s']:.2f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
