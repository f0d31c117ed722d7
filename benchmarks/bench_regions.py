"""Per-frame cost of region masks (--region) at 1080p: landmark polygons vs face parsing
(BiSeNet with random weights: same cost as the real one), the feature-grid average, and the
paste-back with and without the region restriction.

The frame: the astronaut's face (skimage) scaled to ~300 px wide on a textured 1920x1080
background; dlib's 68 landmarks, FFHQ crop at S=1024. Every figure is per frame (batch / B).

    .venv/bin/python benchmarks/bench_regions.py --batch 4 --json bench_regions.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks.timing

from benchmarks.timing import best_of  # noqa: E402


def make_frame(width: int = 1920, height: int = 1080, face_px: int = 300, seed: int = 0) -> np.ndarray:
    from skimage import data

    patch = data.astronaut()[20:250, 110:340]  # face ~87 px wide
    s = face_px / 87.0
    patch = cv2.resize(patch, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC)
    rng = np.random.default_rng(seed)
    f = cv2.resize((rng.random((54, 96, 3)) * 140 + 50).astype(np.uint8), (width, height),
                   interpolation=cv2.INTER_CUBIC)
    ph, pw = patch.shape[:2]
    y, x = (height - ph) // 2, width // 3
    f[y:y + ph, x:x + pw] = patch
    return f


def main(argv=None) -> int:
    from vidinvert.face import align, dlib_models
    from vidinvert.face.masks import ParsingMasker, outline_masks
    from vidinvert.face.paste import combine_masks, paste_faces
    from vidinvert.face.regions import feature_grid_mask, landmark_region_masks, parsing_region_masks
    from vidinvert.face.stage import to_crop_normalised

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--size", type=int, default=1024, help="crop size S")
    ap.add_argument("--mask-size", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    b, r = args.batch, args.mask_size

    frame = make_frame()
    rect = max(dlib_models.frontal_detector()(frame, 0), key=lambda q: q.width() * q.height())
    lm68 = dlib_models.landmarks68(frame, (rect.left(), rect.top(), rect.right(), rect.bottom()))
    quad = align.quad_from_68(lm68)
    quads = np.repeat(quad[None], b, 0)
    frames = [frame] * b
    lm = [to_crop_normalised(quad, lm68)] * b
    crops = align.warp_faces(frames, quads, args.size, device=dev)
    edited = (crops + 0.05 * torch.randn_like(crops)).clamp(-1, 1)
    parser = ParsingMasker(None, device=dev)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    res: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                            f"torch threads {args.threads}, load average {load:.1f} at start",
                 "device": str(dev), "batch": b, "crop": args.size, "mask_size": r,
                 "face_quad_px": float(np.hypot(*(quad[3] - quad[0]))), "rows": {}}

    def row(name, fn, *a, repeat=args.repeat, **kw):
        wall, cpu, out = best_of(fn, *a, repeat=repeat, **kw)
        res["rows"][name] = {"wall_ms": 1000 * wall / b, "cpu_ms": 1000 * cpu / b}
        print(f"{name:58s} {1000 * wall / b:8.1f} ms wall {1000 * cpu / b:8.1f} CPU-ms per frame", flush=True)
        return out

    m_mouth = row("landmark region mask: mouth", landmark_region_masks, lm, ["mouth"], r, device=dev)
    row("landmark region mask: eyes,brows", landmark_region_masks, lm, ["eyes", "brows"], r, device=dev)
    row("landmark region mask: skin", landmark_region_masks, lm, ["skin"], r, device=dev)
    probs = row("parsing: BiSeNet class probabilities (source crop)", parser.class_probabilities, crops,
                repeat=max(1, args.repeat - 1))
    row("parsing: region mask from probabilities (mouth)", parsing_region_masks, probs, ["mouth"], r)
    row("feature-grid average (16x16)", feature_grid_mask, m_mouth)
    paste_mask = outline_masks(lm, r, device=dev)
    region = row("combine_masks", combine_masks, paste_mask, m_mouth)
    row("paste delta 1080p, face mask", paste_faces, frames, quads, edited, paste_mask, mode="delta", recon=crops)
    row("paste delta 1080p, face mask x mouth region", paste_faces, frames, quads, edited, region, mode="delta",
        recon=crops)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
