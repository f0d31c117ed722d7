"""A stand-in face detector for the benchmarks' generated clips, for machines without dlib's models.

The benchmark clips (``tests.face_clips``) show the astronaut's head (``face_patch``) on a plain
background. :class:`PatchOracleDetector` finds that patch as the bounding box of the pixels that
differ from the background, and places a fixed template of dlib's face box and 68 landmarks,
measured once on the patch with dlib (``benchmarks/data/astronaut_patch_face.json``; regenerate
with ``python benchmarks/oracle_faces.py``), inside it. It is exact enough for timing the rest of
the pipeline where dlib cannot be installed (the GPU machines lent to sessions cannot hold its
100 MB landmark model), and it costs almost nothing, so stage timings taken with it leave the
detector out: say so next to any figure.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

TEMPLATE = Path(__file__).resolve().parent / "data" / "astronaut_patch_face.json"
BACKGROUND = (90, 110, 130)  # tests.face_clips.face_frame's background colour


def measure_template(size: int = 512) -> dict:
    """dlib's face box and 68 landmarks on ``face_patch(size)``, in patch units (0..1)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.face_clips import face_patch
    from vidinvert.face.detect import DlibDetector

    patch = face_patch(size)
    frame = np.full((2 * size, 2 * size, 3), BACKGROUND, np.uint8)
    frame[size // 2 : size // 2 + size, size // 2 : size // 2 + size] = patch
    (face, *_), = DlibDetector().detect([frame])
    off = np.array([size // 2, size // 2], np.float64)
    return {
        "patch_size": size,
        "box": ((face.box.reshape(2, 2) - off) / size).reshape(-1).round(5).tolist(),
        "landmarks68": ((face.landmarks68 - off) / size).round(5).tolist(),
    }


def _foreground(rgb: np.ndarray, tolerance: int) -> np.ndarray:
    return np.abs(rgb.astype(np.int16) - np.asarray(BACKGROUND, np.int16)).max(-1) > tolerance


def _patch_box(rgb: np.ndarray, tolerance: int, min_size: int, step: int = 4):
    """Bounding box (x0, y0, x1, y1) of the non-background pixels, or None: found on every
    ``step``-th pixel, then refined at full resolution around it (a 1080p frame in ~1 ms)."""
    coarse = _foreground(rgb[::step, ::step], tolerance)
    rows, cols = np.flatnonzero(coarse.any(1)), np.flatnonzero(coarse.any(0))
    if len(rows) * step < min_size or len(cols) * step < min_size:
        return None
    h, w = rgb.shape[:2]
    ya, yb = max(0, (rows[0] - 1) * step), min(h, (rows[-1] + 2) * step)
    xa, xb = max(0, (cols[0] - 1) * step), min(w, (cols[-1] + 2) * step)
    fine = _foreground(rgb[ya:yb, xa:xb], tolerance)
    rows, cols = np.flatnonzero(fine.any(1)), np.flatnonzero(fine.any(0))
    return xa + cols[0], ya + rows[0], xa + cols[-1] + 1, ya + rows[-1] + 1


def _detector_base():
    from vidinvert.face.detect import FaceDetector

    return FaceDetector


def make_patch_oracle(tolerance: int = 16, min_size: int = 16):
    """Build the detector (imported lazily so this module loads without vidinvert's face extras)."""
    from vidinvert.face.types import Face, landmarks5_from_68

    tpl = json.loads(TEMPLATE.read_text())
    box_t = np.asarray(tpl["box"], np.float64).reshape(2, 2)
    lm_t = np.asarray(tpl["landmarks68"], np.float64)

    class PatchOracleDetector(_detector_base()):
        name = "patch-oracle"
        batched = True

        def _detect(self, frames, scales):
            out = []
            for rgb in frames:
                found = _patch_box(rgb, tolerance, min_size)
                if found is None:
                    out.append([])
                    continue
                x0, y0, x1, y1 = found
                size = float(max(x1 - x0, y1 - y0))  # the patch is square; a frame edge may cut it
                origin = np.array([x1 - size if x0 == 0 else x0, y1 - size if y0 == 0 else y0], np.float64)
                lm68 = origin + lm_t * size
                box = (origin + box_t * size).reshape(-1)
                out.append([Face(box=box, score=1.0, landmarks5=landmarks5_from_68(lm68), landmarks68=lm68)])
            return out

    return PatchOracleDetector()


def use_patch_oracle() -> None:
    """Make the face stage build the oracle instead of a real detector (this process only)."""
    import vidinvert.face.stage as stage

    stage.make_detector = lambda *a, **k: make_patch_oracle()


if __name__ == "__main__":
    TEMPLATE.parent.mkdir(parents=True, exist_ok=True)
    t = measure_template()
    rows = ",\n".join(f"  {json.dumps(p)}" for p in t["landmarks68"])
    TEMPLATE.write_text(f'{{\n "patch_size": {t["patch_size"]},\n "box": {json.dumps(t["box"])},\n'
                        f' "landmarks68": [\n{rows}\n ]\n}}\n')
    print(f"wrote {TEMPLATE}")
