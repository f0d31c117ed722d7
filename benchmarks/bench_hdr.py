"""Cost of the HDR rendering R: the 8-bit working copy of a 1080p frame, and R / R⁻¹ on a face's box.

* working copy: a decoded 1080p 10-bit 4:2:0 frame -> HxWx3 uint8, SDR (``RGBConverter``, rgb24)
  against PQ and HLG (``SdrRGBConverter``: rgb48 by swscale, then R through its tables);
* composite: ``R.inverse(R.forward(x) + delta)`` in float64 on a ``--box`` x ``--box`` face box
  (what :func:`vidinvert.pipeline.composite.composite_field` adds for an HDR face).

    .venv/bin/python benchmarks/bench_hdr.py --json bench_hdr.json
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import sys
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.timing import best_of  # noqa: E402
from vidinvert.video.colour import ColourSpec, RGBConverter  # noqa: E402
from vidinvert.video.hdr_frames import SdrRGBConverter  # noqa: E402
from vidinvert.video.hdrmeta import HdrInfo  # noqa: E402
from vidinvert.video.rendering_hdr import rendering_for  # noqa: E402


def _frame(w: int, h: int, trc: int) -> av.VideoFrame:
    """A 10-bit 4:2:0 BT.2020 frame with a luma ramp and mild chroma (limited range)."""
    f = av.VideoFrame(w, h, "yuv420p10le")
    rng = np.random.default_rng(0)
    for k, plane in enumerate(f.planes):
        buf = np.frombuffer(plane, np.uint16).reshape(plane.height, -1)
        pw = plane.width
        if k == 0:
            buf[:, :pw] = np.linspace(64, 940, pw)[None, :].astype(np.uint16)
        else:
            buf[:, :pw] = rng.integers(480, 560, (plane.height, pw), dtype=np.uint16)
    f.colorspace, f.color_range, f.color_primaries, f.color_trc = 9, 1, 9, trc
    return f


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--box", type=int, default=400, help="face box side in pixels (composite figure)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    spec = ColourSpec("bt2020", "limited", True, True, 9, 16)
    out: dict = {"machine": platform.processor() or platform.machine(), "date": _dt.date.today().isoformat(),
                 "working_copy_1080p_ms": {}, "composite_box_ms": {}}
    sdr = RGBConverter(spec)
    wall, cpu, _ = best_of(sdr, _frame(1920, 1080, 16))
    out["working_copy_1080p_ms"]["sdr rgb24"] = {"wall": round(1e3 * wall, 1), "cpu": round(1e3 * cpu, 1)}
    x = np.random.default_rng(1).random((args.box, args.box, 3)) * 0.7
    delta = np.full_like(x, 0.02)
    for transfer, trc in (("pq", 16), ("hlg", 18)):
        r = rendering_for(HdrInfo(transfer, 9))
        conv = SdrRGBConverter(spec, r)
        wall, cpu, _ = best_of(conv, _frame(1920, 1080, trc))
        out["working_copy_1080p_ms"][r.name] = {"wall": round(1e3 * wall, 1), "cpu": round(1e3 * cpu, 1)}
        wall, cpu, _ = best_of(lambda: r.inverse(r.forward(x) + delta))
        out["composite_box_ms"][r.name] = {"wall": round(1e3 * wall, 1), "cpu": round(1e3 * cpu, 1),
                                           "box": args.box}
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
