"""Faces of a single image: detect every face, number them left to right, choose with ``--face``.

Numbers are 0-based and count, from the left (box centre x), the faces the detector returned that
are at least ``min_face`` pixels (the shorter side of the detector's box; 0 keeps every face).
``--face largest|center|N`` choose one face, ``N,M`` several, ``all`` every one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vidinvert.errors import VidinvertError
from vidinvert.face.align import quad_from_face
from vidinvert.face.detect import FaceDetector
from vidinvert.face.types import Face, FaceSelect, parse_face_select


@dataclass(eq=False)
class NumberedFace:
    """A chosen face: ``number`` (0-based from the left), the detection, its FFHQ quad ``[4,2]``."""

    number: int
    face: Face
    quad: np.ndarray


def check_min_face(min_face: float) -> float:
    """Validate ``--min-face`` (pixels, finite, >= 0; 0 = off)."""
    v = float(min_face)
    if not np.isfinite(v) or v < 0:
        raise VidinvertError(f"--min-face {min_face}: give a face size in pixels, 0 or more (0 = no minimum)")
    return v


def number_faces(faces: Sequence[Face], min_face: float = 0.0) -> list[Face]:
    """Faces at least ``min_face`` px (box's shorter side), sorted left to right by box centre."""
    kept = [f for f in faces if min(f.width, f.height) >= min_face]
    return sorted(kept, key=lambda f: (float(f.center[0]), float(f.center[1])))


def choose_faces(faces: Sequence[Face], select: str | int | FaceSelect, frame_shape,
                 min_face: float = 0.0, *, what: str = "image") -> list[NumberedFace]:
    """The chosen faces of one image, in left-to-right order, with their quads.

    ``faces``: the detector's faces of a frame of ``frame_shape`` (H, W, ...). Raises
    :class:`VidinvertError` when there is no face (``"<what>: no face found"``) or a face number
    is out of range.
    """
    sel = parse_face_select(select)
    min_face = check_min_face(min_face)
    ordered = number_faces(faces, min_face)
    if not ordered:
        if faces:
            raise VidinvertError(f"{what}: no face found of at least {min_face:g} px "
                                 f"({len(faces)} smaller face(s) skipped by --min-face)")
        raise VidinvertError(f"{what}: no face found")
    if sel.mode == "all":
        picked = list(range(len(ordered)))
    elif sel.mode == "largest":
        picked = [max(range(len(ordered)), key=lambda i: ordered[i].width * ordered[i].height)]
    elif sel.mode == "center":
        c = np.array([frame_shape[1] - 1, frame_shape[0] - 1]) / 2
        picked = [min(range(len(ordered)), key=lambda i: float(np.hypot(*(ordered[i].center - c))))]
    else:
        bad = [n for n in sel.numbers if n >= len(ordered)]
        if bad:
            skipped = len(faces) - len(ordered)
            note = f"; {skipped} smaller face(s) skipped by --min-face" if skipped else ""
            raise VidinvertError(f"{what}: --face {sel} but {len(ordered)} face(s) found "
                                 f"(numbered 0 to {len(ordered) - 1} from the left{note})")
        picked = list(sel.numbers)
    return [NumberedFace(i, ordered[i], quad_from_face(ordered[i])) for i in picked]


def find_faces(rgb: np.ndarray, detector: FaceDetector, select: str | int | FaceSelect = "largest",
               min_face: float = 0.0, *, what: str = "image") -> tuple[list[NumberedFace], int]:
    """Detect on uint8 RGB ``[H,W,3]`` and choose: ``(chosen faces, number of faces detected)``."""
    faces = detector.detect([rgb])[0]
    return choose_faces(faces, select, rgb.shape, min_face, what=what), len(faces)
