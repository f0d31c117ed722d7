"""What the editing session (:mod:`vidinvert.pipeline.session`) hands out: the opened :class:`Media`,
the :class:`FaceInfo` of a frame and a :class:`Rendered` frame; and the small byte-bounded cache it
keeps inversions and frames in."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidinvert.errors import VidinvertError


class RenderCancelled(VidinvertError):
    """A render's prefix pass was stopped by its ``cancel`` event (nothing is cached half-done)."""


@dataclass(frozen=True)
class FaceInfo:
    """One face of a frame: ``track`` its track id (photos: its number), ``number`` its ``--face``
    number (numbered left to right on the first frame with faces; None for a person who appears
    later), ``box`` the bounding box of its crop quad (x0, y0, x1, y1 in frame pixels), ``quad`` the
    FFHQ crop corners ``[4,2]``, ``status`` detected / interpolated / passthrough and ``edit_weight``
    (the fade around gaps, 0..1)."""

    track: int
    number: int | None
    box: tuple[float, float, float, float] | None
    quad: tuple[tuple[float, float], ...] | None
    status: str
    edit_weight: float

    @classmethod
    def of(cls, track: int, number: int | None, quad, status: str, weight: float) -> FaceInfo:
        if quad is None:
            return cls(track, number, None, None, status, float(weight))
        q = np.asarray(quad, np.float64)
        box = (float(q[:, 0].min()), float(q[:, 1].min()), float(q[:, 0].max()), float(q[:, 1].max()))
        return cls(track, number, box, tuple((float(x), float(y)) for x, y in q), status, float(weight))

    def as_dict(self) -> dict:
        return {"track": self.track, "number": self.number, "box": self.box, "quad": self.quad,
                "status": self.status, "edit_weight": self.edit_weight}


@dataclass
class Media:
    """An opened clip or photo: ``kind`` (video / photo), ``frames`` (a photo has one), ``times`` each
    frame's time in seconds since the first, ``size`` the displayed (width, height), ``info`` the
    :class:`~vidinvert.video.probe.VideoInfo` or :class:`~vidinvert.imagefile.Photo`."""

    path: Path
    kind: str
    frames: int
    times: tuple[float, ...]
    size: tuple[int, int]
    info: Any = None

    def check_frame(self, frame: int) -> None:
        if not isinstance(frame, (int, np.integer)) or isinstance(frame, bool) or not 0 <= int(frame) < self.frames:
            have = "frame 0 (a photo)" if self.frames == 1 else f"frames 0..{self.frames - 1}"
            raise VidinvertError(f"frame {frame}: {self.path.name} has {have}")

    def time_of(self, frame: int) -> float:
        return float(self.times[int(frame)])


@dataclass
class Rendered:
    """One rendered frame.

    ``outputs``: output tag -> the job's pre-encoding composite, uint8 RGB ``[H,W,3]`` (what the clip
    job encodes, what the photo job hands its writer); ``samples`` (photos): tag -> what a lossless
    output holds in the photo's own kind (:func:`~vidinvert.imagefile.photo_samples`: uint16 for 16-bit,
    one channel for grey, alpha appended); ``preview``: the first output as uint8 RGB; ``source``: the
    frame itself; ``crops``: the aligned source crops ``[n,S,S,3]`` uint8 and ``edited_crops`` each
    output's synthesized crops; ``faces``: the faces rendered; ``timings``: seconds per step;
    ``exact``: False for an approximation, ``approximated`` then names what; ``notes``: anything worth
    saying (no face on this frame ...); ``planes`` (clips): tag -> the same composite in the source's
    own samples (:class:`~vidinvert.video.planes.Planes`, what a lossless FFV1 output of the job holds;
    None when the source's format has no planes)."""

    frame: int
    time: float
    outputs: dict[str, np.ndarray]
    source: np.ndarray
    faces: list[FaceInfo] = field(default_factory=list)
    crops: np.ndarray | None = None
    edited_crops: dict[str, np.ndarray] = field(default_factory=dict)
    samples: dict[str, np.ndarray] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    exact: bool = True
    approximated: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    planes: dict[str, Any] | None = None

    @property
    def preview(self) -> np.ndarray:
        return next(iter(self.outputs.values())) if self.outputs else self.source


class ByteLRU:
    """A least-recently-used map bounded by the bytes of its values (``nbytes(value)``)."""

    def __init__(self, limit: int, nbytes) -> None:
        self.limit, self.nbytes = int(limit), nbytes
        self._items: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self.size = 0

    def get(self, key):
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key, value) -> None:
        n = int(self.nbytes(value))
        if key in self._items:
            self.size -= self._items.pop(key)[1]
        self._items[key] = (value, n)
        self.size += n
        while self.size > self.limit and len(self._items) > 1:
            _, (_, m) = self._items.popitem(last=False)
            self.size -= m

    def __contains__(self, key) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)
