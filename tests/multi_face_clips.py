"""Generated clips with several faces, and a detector that finds them exactly.

Each person is the astronaut's head (:func:`tests.face_clips.face_patch`) at its own size, optionally
with its colour channels reversed (a "different person" for a colour embedder), moving along its
own path; people listed later are drawn in front. :class:`TemplateDetector` finds every copy of
the patches whose face (dlib's box on the patch) is fully visible, by exact template matching (an
occluded or cut face is not found, as with a real detector) and places the 68 landmarks dlib measured once on the patch
(``benchmarks/data/astronaut_patch_face.json``) inside it, so detections are deterministic and
exact, and independent of the tracker under test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from tests.face_clips import face_patch
from vidinvert.face.detect import FaceDetector
from vidinvert.face.types import Face, landmarks5_from_68

TEMPLATE = Path(__file__).resolve().parents[1] / "benchmarks" / "data" / "astronaut_patch_face.json"


@dataclass(frozen=True)
class Person:
    """``size``: patch side (px); ``path(i)`` -> top-left (x, y) at frame i, or None when absent;
    ``swapped``: colour channels reversed."""

    size: int
    path: Callable[[int], tuple[float, float] | None]
    swapped: bool = False

    def patch(self) -> np.ndarray:
        p = face_patch(self.size)
        return np.ascontiguousarray(p[..., ::-1]) if self.swapped else p


def inner_box(size: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The part of a ``size`` patch a detector needs to see: dlib's face box, in whole pixels."""
    box_t = np.asarray(json.loads(TEMPLATE.read_text())["box"], np.float64).reshape(2, 2)
    (u0, v0), (u1, v1) = np.floor(box_t[0] * size).astype(int), np.ceil(box_t[1] * size).astype(int)
    return (max(0, u0), max(0, v0)), (min(size, u1), min(size, v1))


def background(w: int, h: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = (rng.random((max(2, h // 10), max(2, w // 10), 3)) * 100 + 70).astype(np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def render(people: list[Person], n_frames: int, size=(320, 240), fps: float = 25.0):
    """-> frames ``[(index, time, rgb)]`` and ``truth[i][p]``: person p's face centre (x, y) at frame i
    when it is fully visible (not cut by the frame, not covered by a person drawn in front), else None."""
    w, h = size
    bg = background(w, h)
    patches = [p.patch() for p in people]
    tpl = json.loads(TEMPLATE.read_text())
    box_t = np.asarray(tpl["box"], np.float64).reshape(2, 2)
    frames, truth = [], []
    for i in range(n_frames):
        f = bg.copy()
        owner = np.full((h, w), -1, np.int32)
        placed = []
        for k, (person, patch) in enumerate(zip(people, patches)):
            pos = person.path(i)
            if pos is None:
                placed.append(None)
                continue
            x, y = int(round(pos[0])), int(round(pos[1]))
            s = person.size
            x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + s, w), min(y + s, h)
            if x1 > x0 and y1 > y0:
                f[y0:y1, x0:x1] = patch[y0 - y:y1 - y, x0 - x:x1 - x]
                owner[y0:y1, x0:x1] = k
            placed.append((x, y, s))
        row = []
        for k, pl in enumerate(placed):
            if pl is None:
                row.append(None)
                continue
            x, y, s = pl
            (u0, v0), (u1, v1) = inner_box(s)
            inside = x + u0 >= 0 and y + v0 >= 0 and x + u1 <= w and y + v1 <= h
            visible = inside and bool((owner[y + v0:y + v1, x + u0:x + u1] == k).all())
            centre = np.array([x, y], np.float64) + box_t.mean(0) * s
            row.append(centre if visible else None)
        frames.append((i, i / fps, f))
        truth.append(row)
    return frames, truth


def template_face(x: float, y: float, size: int) -> Face:
    """The face (dlib's box and 68 landmarks, measured once) of a ``size`` patch with top-left (x, y)."""
    tpl = json.loads(TEMPLATE.read_text())
    origin = np.array([x, y], np.float64)
    lm68 = origin + np.asarray(tpl["landmarks68"], np.float64) * size
    box = origin + np.asarray(tpl["box"], np.float64).reshape(2, 2) * size
    return Face(box=box.reshape(-1), score=1.0, landmarks5=landmarks5_from_68(lm68), landmarks68=lm68)


class TemplateDetector(FaceDetector):
    """Finds exact copies of ``patches`` (uint8 RGB squares) in a frame; see the module docstring."""

    name = "template"
    batched = False

    def __init__(self, patches: list[np.ndarray]):
        super().__init__(min_face=0.05)
        uniq: dict[bytes, np.ndarray] = {}
        for p in patches:
            uniq.setdefault(p.tobytes() + str(p.shape).encode(), p)
        self.patches = list(uniq.values())
        self.calls = 0

    def _detect(self, frames, scales):
        out = []
        for rgb in frames:
            self.calls += 1
            faces = []
            for p in self.patches:
                s = p.shape[0]
                (u0, v0), (u1, v1) = inner_box(s)
                inner = np.ascontiguousarray(p[v0:v1, u0:u1])
                if rgb.shape[0] < v1 - v0 or rgb.shape[1] < u1 - u0:
                    continue
                res = cv2.matchTemplate(np.ascontiguousarray(rgb), inner, cv2.TM_SQDIFF) / inner.size
                while True:
                    y, x = np.unravel_index(int(np.argmin(res)), res.shape)
                    if res[y, x] > 0.5:
                        break
                    r = (u1 - u0) // 2
                    res[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1] = np.inf
                    faces.append(template_face(x - u0, y - v0, s))
            out.append(faces)
        return out


def colour_embedder(rgb: np.ndarray, faces) -> np.ndarray:
    """A stand-in appearance embedder: the mean colour of the inner face box (x10 /255), ``[N,3]``.
    It separates a patch from its channel-reversed copy and not two copies of one patch."""
    out = []
    for f in faces:
        x0, y0, x1, y1 = f.box
        cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, 0.3 * (x1 - x0)
        crop = rgb[int(cy - r):int(cy + r), int(cx - r):int(cx + r)].reshape(-1, 3)
        out.append(crop.mean(0) / 255 * 10)
    return np.asarray(out, np.float64)
