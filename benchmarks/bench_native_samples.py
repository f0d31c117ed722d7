"""Cost of compositing the faces into the source's own samples (issue 24), against the RGB round trip.

``micro``: per 1080p frame with one face a third of the frame high (8-bit 4:2:0 and 10-bit 4:2:0,
BT.709 limited), the work that differs between the two paths, best of a few runs:

* RGB round trip (before issue 24): blend the face into the 8-bit RGB frame, then RGB -> the output's
  pixel format by swscale at encode time;
* native samples: copy the decoded planes out of the frame (reader), copy them for the output,
  composite the face at the source's depth (:func:`vidinvert.pipeline.composite.composite_field`),
  the 8-bit RGB copy of the result (swscale) and the encoder frame (the planes as they are).

``e2e``: ``vidinvert edit`` end to end (tiny random models, patch-oracle faces, no identity metrics,
FFV1) on generated 1080p clips, in a subprocess per run, seconds per edited frame; ``--baseline
ROOT`` runs the same with another checkout first on the path (e.g. the tree before issue 24).

``memory``: peak RSS (VmHWM) of one such run on a 4K 10-bit clip (``--baseline`` likewise).

    python benchmarks/bench_native_samples.py --parts micro e2e memory --baseline /path/to/main
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.timing import best_of  # noqa: E402


def _frame(size, pix_fmt: str):
    import av
    from av.video.reformatter import ColorRange, Colorspace

    from tests.face_clips import face_frame

    w, h = size
    rgb = face_frame(0, size, face_px=h // 3, faces=((w // 2 - h // 6, h // 3),))
    f = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format=pix_fmt, dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG)
    f.colorspace, f.color_range = 1, 1
    return rgb, f


def _field(size, s: int = 256):
    """One face's paste field at 1080p (a delta of a random synthesis pair, the landmark outline mask)."""
    import numpy as np
    import torch

    from vidinvert.face.masks import outline_masks
    from vidinvert.face.paste import paste_fields

    w, h = size
    side = h // 3
    x0, y0 = w // 2 - h // 6, h // 3
    quad = np.array([[[x0, y0], [x0, y0 + side], [x0 + side, y0 + side], [x0 + side, y0]]], np.float64)
    g = torch.Generator().manual_seed(0)
    edited = torch.rand(1, 3, s, s, generator=g) * 2 - 1
    recon = (edited + 0.05 * torch.randn(1, 3, s, s, generator=g)).clamp(-1, 1)
    from benchmarks.oracle_faces import TEMPLATE

    lm = np.asarray(json.loads(TEMPLATE.read_text())["landmarks68"])  # in patch units: the quad is the patch
    mask = outline_masks([lm], 256)
    (fld,) = paste_fields((h, w), quad, edited, mask, mode="delta", recon=recon)
    return fld


def micro(size=(1920, 1080), repeat: int = 5) -> dict:
    from vidinvert.face.paste import blend_rgb
    from vidinvert.pipeline.composite import Compositor, composite_field
    from vidinvert.video.colour import ColourSpec, FrameMaker
    from vidinvert.video.planes import Planes

    spec = ColourSpec("bt709", "limited")
    fld = _field(size)
    out = {}
    for pix_fmt in ("yuv420p", "yuv420p10le"):
        rgb, decoded = _frame(size, pix_fmt)
        maker = FrameMaker(pix_fmt, spec)
        comp = Compositor()

        def old():
            img = rgb.copy()
            blend_rgb(img, fld)
            return maker(img)

        def new():
            planes = Planes.from_frame(decoded, spec)  # the reader's extra copy
            deep = planes.copy()
            composite_field(deep, fld)
            comp.rgb8(deep)
            return deep.to_frame()

        t_old, c_old, _ = best_of(old, repeat=repeat)
        t_new, c_new, _ = best_of(new, repeat=repeat)
        out[pix_fmt] = {"rgb_round_trip_ms": round(1e3 * t_old, 2), "native_ms": round(1e3 * t_new, 2),
                        "added_ms": round(1e3 * (t_new - t_old), 2), "face_box": list(fld.box)}
        print(f"{pix_fmt}: RGB round trip {1e3 * t_old:.1f} ms/frame, native samples {1e3 * t_new:.1f} ms/frame "
              f"(+{1e3 * (t_new - t_old):.1f} ms)")
    return out


def make_clip(path: Path, size, n: int, pix_fmt: str, codec: str = "libx264") -> Path:
    """``n`` frames of the drifting astronaut face in ``pix_fmt`` (BT.709 limited; x264 crf 12 or FFV1)."""
    import av
    from av.video.reformatter import ColorRange, Colorspace

    from tests.face_clips import face_frame

    w, h = size
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        s.codec_context.colorspace, s.codec_context.color_range = 1, 1
        if codec == "libx264":
            s.codec_context.options = {"crf": "12", "preset": "ultrafast"}
        for i in range(n):
            rgb = face_frame(i, size, face_px=h // 3, faces=((w // 2 - h // 6, h // 3),), drift=1.0)
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                format=pix_fmt, dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG)
            f.pts, f.colorspace, f.color_range = i, 1, 1
            for pk in s.encode(f):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    return path


_RUN = """
import json, sys, time
sys.path.insert(0, {root!r}); sys.path.insert(1, {bench!r})
from benchmarks.oracle_faces import use_patch_oracle
use_patch_oracle()
from vidinvert.cli.app import main
t = time.perf_counter()
rc = main(["--quiet", "edit", {clip!r}, "--direction", {direction!r}, "-o", {out!r}, "--codec", "ffv1",
           "--encoder", {ep!r}, "--generator", {gp!r}, "--device", "cpu", "--no-identity", "--batch-size", "4",
           "--report", {rep!r}, "--overwrite"])
wall = time.perf_counter() - t
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({{"rc": rc, "wall_s": wall, "peak_mib": int(hwm) / 1024}}))
"""


def edit_run(root: Path, clip: Path, d: Path) -> dict:
    import numpy as np

    from benchmarks.bench_pipeline import models

    ep, gp = d / "tiny-e.pth", d / "tiny-g.pt"
    if not ep.exists():
        ep, gp = models("tiny", d)
    direction = d / "dir.npy"
    if not direction.exists():
        np.save(direction, np.random.default_rng(0).standard_normal(64).astype("float32"))
    out, rep = d / f"out-{time.time_ns()}.mkv", d / f"rep-{time.time_ns()}.json"
    code = _RUN.format(root=str(root), bench=str(ROOT), clip=str(clip), direction=str(direction), out=str(out),
                       ep=str(ep), gp=str(gp), rep=str(rep))
    env = dict(os.environ, PYTHONPATH=str(root))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=str(root))
    if res.returncode != 0:
        raise SystemExit(f"edit run failed under {root}:\n{res.stderr[-2000:]}")
    r = json.loads(res.stdout.strip().splitlines()[-1])
    report = json.loads(rep.read_text())
    r["frames"] = report["frames"]["total"]
    r["s_per_frame"] = round(r["wall_s"] / r["frames"], 4)
    r["paste_fps"] = report["stages"].get("paste", {}).get("fps")
    out.unlink(missing_ok=True)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", nargs="+", default=["micro", "e2e", "memory"], choices=["micro", "e2e", "memory"])
    ap.add_argument("--frames", type=int, default=16, help="frames of the 1080p end-to-end clips")
    ap.add_argument("--memory-frames", type=int, default=40, help="frames of the 4K 10-bit clip")
    ap.add_argument("--baseline", type=Path, help="another checkout to run the same end-to-end runs with")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results: dict = {}
    roots = [("this tree", ROOT)] + ([("baseline", args.baseline)] if args.baseline else [])
    if "micro" in args.parts:
        results["micro_1080p"] = micro()
    with tempfile.TemporaryDirectory() as td:
        d = Path(td)
        if "e2e" in args.parts:
            results["e2e_1080p"] = {}
            for pix_fmt in ("yuv420p", "yuv420p10le"):
                clip = make_clip(d / f"c1080-{pix_fmt}.mp4", (1920, 1080), args.frames, pix_fmt)
                for name, root in roots:
                    r = edit_run(root, clip, d)
                    results["e2e_1080p"][f"{pix_fmt} {name}"] = r
                    print(f"1080p {pix_fmt} [{name}]: {r['s_per_frame']:.3f} s/frame end to end "
                          f"({r['frames']} frames, paste stage {r['paste_fps']} f/s)")
        if "memory" in args.parts:
            clip = make_clip(d / "c4k.mkv", (3840, 2160), args.memory_frames, "yuv420p10le", codec="ffv1")
            results["memory_4k_10bit"] = {}
            for name, root in roots:
                r = edit_run(root, clip, d)
                results["memory_4k_10bit"][name] = r
                print(f"4K 10-bit [{name}]: peak RSS {r['peak_mib']:.0f} MiB ({r['frames']} frames, "
                      f"{r['s_per_frame']:.2f} s/frame)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
