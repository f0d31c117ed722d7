"""Cost per extra face per frame at 1080p: the multi-face stage (tracking, assignment, per-track
smoothing), the align warp, masks and the depth-ordered paste, for 1..4 faces.

The clip: F copies of the astronaut's head (``tests.face_clips.face_patch``, 220-300 px, face quads
~250-330 px) drifting across a textured 1920x1080 background. The detector is a stand-in that
returns the known faces (whole frames and region searches alike, by locating the searched view in
its frame), so the stage figures leave detection out: with dlib every extra face adds one region
search per frame (see ``bench_face.py``: ~20 ms for a 1080p frame). Appearance embeddings are off
(dlib's descriptor costs a one-off ~20 ms per new track, and more only in ambiguous assignments).

    .venv/bin/python benchmarks/bench_multiface.py --frames 32 --faces 1 2 3 4 --sizes 1024 256 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.timing import best_of  # noqa: E402
from tests.multi_face_clips import Person, render, template_face  # noqa: E402
from vidinvert.face import FaceConfig, TrackConfig, masks, warp_faces  # noqa: E402
from vidinvert.face.detect import FaceDetector  # noqa: E402
from vidinvert.face.paste import paste_faces_depth  # noqa: E402
from vidinvert.face.stream import MultiFaceAligner  # noqa: E402

SIZES = (260, 220, 300, 240)


class KnownFaces(FaceDetector):
    """Returns the faces placed in each frame; a region search (a view into a frame) gets those inside it."""

    name = "known"

    def __init__(self, frames, people):
        super().__init__()
        self.by_base: dict[int, tuple[np.ndarray, list]] = {}
        for i, _, rgb in frames:
            faces = [template_face(*p.path(i), p.size) for p in people if p.path(i) is not None]
            self.by_base[rgb.ctypes.data] = (rgb, faces)

    def _detect(self, frames, scales):
        out = []
        for view in frames:
            base = view if view.base is None else view.base
            rgb, faces = self.by_base[base.ctypes.data]
            off = view.ctypes.data - rgb.ctypes.data
            y0, x0 = off // rgb.strides[0], (off % rgb.strides[0]) // rgb.strides[1]
            h, w = view.shape[:2]
            out.append([f.shifted(-x0, -y0) for f in faces
                        if x0 <= f.box[0] and y0 <= f.box[1] and f.box[2] <= x0 + w and f.box[3] <= y0 + h])
        return out


def people(n: int) -> list[Person]:
    return [Person(SIZES[k], lambda i, k=k: (80 + 450 * k + 3 * i, 300 + 120 * (k % 2) + i)) for k in range(n)]


def run_stage(frames, ppl, batched: bool):
    det = KnownFaces(frames, ppl)
    det.batched = batched
    al = MultiFaceAligner(FaceConfig(track=TrackConfig(select="all", appearance_weight=0.0)), detector=det)
    out = []
    for i, t, f in frames:
        out += al.push(i, t, f)
    return out + al.finish()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--faces", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 256])
    ap.add_argument("--paste-frames", type=int, default=4, help="frames pasted per timing")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    res: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                            f"torch threads {args.threads}, load average {load:.1f} at start",
                 "frames": args.frames, "resolution": "1920x1080", "rows": {}}
    for n in args.faces:
        ppl = people(n)
        frames, _ = render(ppl, args.frames, size=(1920, 1080))
        row: dict = {}
        for batched in (False, True):
            t, c, out = best_of(lambda: run_stage(frames, ppl, batched), repeat=args.repeat)
            key = "stage_batched" if batched else "stage_regions"
            row[key + "_ms"], row[key + "_cpu_ms"] = 1e3 * t / len(frames), 1e3 * c / len(frames)
        assert all(len(ff.edited_faces) == n for ff in out), "every face edited in every frame"
        todo = out[:args.paste_frames]
        for s in args.sizes:
            faces = [a for ff in todo for a in ff.depth_order()]
            quads = np.stack([a.quad for a in faces])
            t, c, crops = best_of(lambda: warp_faces([a.frame for a in faces], quads, s), repeat=args.repeat)
            row[f"warp{s}_ms"], row[f"warp{s}_cpu_ms"] = 1e3 * t / len(todo), 1e3 * c / len(todo)
            t, c, m = best_of(lambda: masks.outline_masks([a.landmarks_crop for a in faces], 256), repeat=args.repeat)
            row["mask_ms"] = 1e3 * t / len(todo)
            edited = crops + 0.05

            def paste_all():
                k = 0
                for ff in todo:
                    sl = slice(k, k + len(ff.edited_faces))
                    k = sl.stop
                    paste_faces_depth(ff.frame, quads[sl], edited[sl], m[sl], mode="delta", recon=crops[sl],
                                      weights=[a.edit_weight for a in faces[sl]])

            t, c, _ = best_of(paste_all, repeat=args.repeat)
            row[f"paste{s}_ms"], row[f"paste{s}_cpu_ms"] = 1e3 * t / len(todo), 1e3 * c / len(todo)
        res["rows"][n] = row
        print(n, {k: round(v, 2) for k, v in row.items()}, flush=True)
    if len(args.faces) > 1:
        keys = list(res["rows"][args.faces[0]])
        res["per_extra_face_ms"] = {k: float(np.polyfit(args.faces, [res["rows"][n][k] for n in args.faces], 1)[0])
                                    for k in keys}
        print("per extra face:", {k: round(v, 2) for k, v in res["per_extra_face_ms"].items()})
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
