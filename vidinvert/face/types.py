"""Plain data types shared by the face layer.

Coordinates are pixel-index coordinates of the upright RGB frame: x to the right, y down, the
centre of pixel ``(row r, col c)`` at ``(x=c, y=r)``. Left/right are as seen in the image (the
"left eye" is the one with the smaller x in a frontal face), the convention of RetinaFace,
MTCNN and the FFHQ script.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vidinvert.errors import VidinvertError

# How an edited face goes back into the frame: add only the edit's change, or the whole synthesis.
PASTE_MODES = ("delta", "full")

# Indices into dlib's 68-point layout (iBUG 300-W).
JAW = slice(0, 17)
BROWS = slice(17, 27)
NOSE_TIP = 30
EYE_LEFT = slice(36, 42)  # image-left eye (the subject's right eye)
EYE_RIGHT = slice(42, 48)
MOUTH_LEFT = 48
MOUTH_RIGHT = 54


@dataclass(eq=False)
class Face:
    """One detected face.

    box: ``[4]`` float64 ``x0, y0, x1, y1``. score: detector confidence (backend-specific scale).
    landmarks5: ``[5,2]`` float64 (left eye centre, right eye centre, nose tip, left mouth corner,
    right mouth corner). landmarks68: ``[68,2]`` float64 (dlib/iBUG layout) or None.
    """

    box: np.ndarray
    score: float
    landmarks5: np.ndarray
    landmarks68: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.box = np.asarray(self.box, np.float64).reshape(4)
        self.landmarks5 = np.asarray(self.landmarks5, np.float64).reshape(5, 2)
        if self.landmarks68 is not None:
            self.landmarks68 = np.asarray(self.landmarks68, np.float64).reshape(68, 2)
        self.score = float(self.score)

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def size(self) -> float:
        """Geometric mean of box width and height (pixels)."""
        return float(np.sqrt(max(self.width, 1e-6) * max(self.height, 1e-6)))

    @property
    def center(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2])

    @property
    def landmarks(self) -> np.ndarray:
        """The richest landmark set: ``[68,2]`` when present, else ``[5,2]``."""
        return self.landmarks68 if self.landmarks68 is not None else self.landmarks5

    def shifted(self, dx: float, dy: float, scale: float = 1.0) -> Face:
        """This face with coordinates mapped by ``p * scale + (dx, dy)``."""
        off = np.array([dx, dy])
        return Face(
            box=self.box * scale + np.tile(off, 2),
            score=self.score,
            landmarks5=self.landmarks5 * scale + off,
            landmarks68=None if self.landmarks68 is None else self.landmarks68 * scale + off,
            extra=dict(self.extra),
        )


def landmarks5_from_68(lm68: np.ndarray) -> np.ndarray:
    """``[68,2]`` -> ``[5,2]``: eye centres (mean of the 6 eye points), nose tip, mouth corners."""
    lm = np.asarray(lm68, np.float64)
    return np.stack(
        [lm[EYE_LEFT].mean(0), lm[EYE_RIGHT].mean(0), lm[NOSE_TIP], lm[MOUTH_LEFT], lm[MOUTH_RIGHT]]
    )


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between boxes ``a [N,4]`` and ``b [M,4]`` (xyxy) -> ``[N,M]``."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


@dataclass(frozen=True)
class FaceSelect:
    """A parsed ``--face`` value.

    mode: ``largest`` | ``center`` | ``all`` | ``numbers``; numbers: the chosen faces, 0-based,
    counted from the left, ascending and without repeats (``numbers`` mode only). ``str()`` gives
    the option text back (``largest``, ``all``, ``2``, ``0,2``).
    """

    mode: str = "largest"
    numbers: tuple[int, ...] = ()

    @property
    def single(self) -> bool:
        """True when one face is chosen (what a video track follows)."""
        return self.mode in ("largest", "center") or (self.mode == "numbers" and len(self.numbers) == 1)

    def __str__(self) -> str:
        return ",".join(map(str, self.numbers)) if self.mode == "numbers" else self.mode


_FACE_HELP = "use largest, center, all, a face number N or numbers N,M (0 = leftmost)"


def parse_face_select(value: str | int | FaceSelect) -> FaceSelect:
    """``--face`` value -> :class:`FaceSelect`: ``largest``, ``center`` (``centre``), ``all``, ``N``
    or ``N,M,...`` (0-based, left to right). A FaceSelect is returned as is."""
    if isinstance(value, FaceSelect):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise VidinvertError(f"--face {value}: a face number must be 0 or more")
        return FaceSelect("numbers", (value,))
    text = str(value).strip().lower()
    if text in ("largest", "center", "centre", "all"):
        return FaceSelect("center" if text == "centre" else text)
    parts = [p.strip() for p in text.split(",")]
    if parts and all(p.isdigit() for p in parts):
        return FaceSelect("numbers", tuple(sorted({int(p) for p in parts})))
    raise VidinvertError(f"--face {value!r}: {_FACE_HELP}")
