"""Per-photo time of ``edit_photo`` on 1080p photos with one and three faces (CPU by default).

The 1024 official-layout models with random weights (timing only: the faces are meaningless),
dlib's detector and 68 landmarks, landmark masks, one edit, ``--paste delta``, JPEG in and out,
no identity metric. ``networks`` = encoder + G_K + generator on the batch of every face of the
photo; ``rest`` = read, detection, alignment, masks, paste and write.

    python benchmarks/bench_photo.py --json bench_photo.json
    python benchmarks/bench_photo.py --models tiny --repeat 1   # quick plumbing check
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: (patch size, x, y) of the astronaut heads on a 1920x1080 canvas
LAYOUTS = {
    "1 face": [(420, 750, 300)],
    "3 faces": [(300, 150, 400), (420, 750, 250), (200, 1500, 500)],
}


def make_photo(path: Path, layout) -> Path:
    import numpy as np
    from PIL import Image

    from tests.face_clips import face_patch

    img = np.full((1080, 1920, 3), (90, 110, 130), np.uint8)
    for s, x, y in layout:
        img[y : y + s, x : x + s] = face_patch(s)
    Image.fromarray(img).save(path, quality=95)
    return path


def build_inverter(kind: str, device: str):
    import torch

    from vidinvert.device import Compute
    from vidinvert.engine import Inverter

    if kind == "tiny":
        from vidinvert.models import tiny_pair

        gen, enc = tiny_pair(0)
    else:
        from vidinvert.models.fs_encoder import FeatureStyleEncoder
        from vidinvert.models.stylegan2 import Generator

        torch.manual_seed(0)
        gen, enc = Generator(1024), FeatureStyleEncoder()
    return Inverter(enc, gen, Compute(torch.device(device), torch.float32))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", choices=["full", "tiny"], default="full")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=2, help="timed runs per photo (after one warm-up)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import torch

    from vidinvert.edit.directions import Direction, EditSpec
    from vidinvert.face.detect import DlibDetector
    from vidinvert.pipeline.photo import PHOTO_MIN_FACE, edit_photo

    inv = build_inverter(args.models, args.device)
    v = torch.randn(inv.n_latent, inv.style_dim, generator=torch.Generator().manual_seed(0))
    spec = EditSpec("smile", (Direction("smile", v / v.norm(), "random"),), (1.0,))
    detector = DlibDetector(min_face=PHOTO_MIN_FACE)
    results = {"models": args.models, "device": args.device, "threads": torch.get_num_threads(), "photos": {}}
    with tempfile.TemporaryDirectory() as d:
        for name, layout in LAYOUTS.items():
            src = make_photo(Path(d) / f"{name.replace(' ', '_')}.jpg", layout)
            runs = []
            for r in range(args.repeat + 1):
                t = time.perf_counter()
                res = edit_photo(inv, src, edits=[spec], face_select="all", detector=detector,
                                 outputs={"smile": Path(d) / f"out{r}.jpg"}, overwrite=True)
                wall = time.perf_counter() - t
                if r > 0:
                    runs.append({**res.timings, "wall": wall})
            best = min(runs, key=lambda x: x["total"])
            results["photos"][name] = {"faces": len(res.faces), "seconds": {k: round(v, 3) for k, v in best.items()}}
            print(f"{name}: {len(res.faces)} face(s) edited, {best['total']:.2f} s per photo "
                  f"(networks {best['networks']:.2f} s, rest {best['rest']:.2f} s: "
                  + ", ".join(f"{k} {best[k]:.2f}" for k in ("read", "detect", "align", "masks", "paste", "write")
                              if k in best) + ")", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
