"""The streaming face stage: frames in, smoothed FFHQ crops (quads), statuses and fade weights out.

``align_frames(frames, cfg)`` detects and tracks the chosen face, turns landmarks into FFHQ quads,
fills short gaps, smooths over time and yields one :class:`AlignedFace` per input frame, in order,
with a bounded delay (see ``smooth``). It does not warp: the pipeline batches the yielded frames
and calls :func:`vidinvert.face.align.warp_faces` with their quads, then
:func:`vidinvert.face.paste.paste_faces`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import numpy as np

from vidinvert.face.align import apply_affine, crop_to_frame, frame_to_crop, quad_from_face, quad_to_params
from vidinvert.face.detect import FaceDetector, make_detector
from vidinvert.face.geometry import PixelGeometry
from vidinvert.face.smooth import DETECTED, INTERPOLATED, PASSTHROUGH, SmoothConfig, StreamingQuadSmoother
from vidinvert.face.track import FaceTracker, TrackConfig
from vidinvert.face.types import Face

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FaceConfig:
    """Face stage settings: detector backend, which face, tracking, smoothing and gaps.

    ``min_face``: smallest face to find, as a fraction of the frame's shorter side (and never
    below ``min_face_px`` pixels); frames are up- or down-sampled for detection accordingly.
    ``chunk``: frames per detector call for batched (GPU) detectors. ``fps`` is only used for
    bare-array inputs without timestamps.
    """

    detector: str = "auto"
    weights_dir: str | None = None
    device: str = "cpu"
    min_face: float = 0.08
    min_face_px: float = 20.0
    track: TrackConfig = field(default_factory=TrackConfig)
    smooth: SmoothConfig = field(default_factory=SmoothConfig)
    chunk: int = 8
    fps: float = 30.0


@dataclass(eq=False)
class AlignedFace:
    """One frame leaving the face stage.

    frame: the uint8 RGB ``[H,W,3]`` frame as given. quad: ``[4,2]`` smoothed crop quad, or None
    (passthrough). status: ``detected`` | ``interpolated`` | ``passthrough``. edit_weight: in [0,1]
    (fades next to long gaps; 0 for passthrough). landmarks: frame coordinates ``[68,2]`` or
    ``[5,2]`` (as detected; interpolated for interpolated frames) or None. landmarks_crop: the
    smoothed landmarks in crop-normalised coordinates (0..1; multiply by S for crop pixels), for
    masks. face: the raw detection or None. pts, duration: the frame's presentation timestamp and
    duration in the source stream's time-base ticks (None for bare arrays), carried with the frame.
    track: the face's track id (0 with one face; see :mod:`vidinvert.face.stream` for several faces).
    """

    index: int
    time: float
    frame: np.ndarray
    quad: np.ndarray | None
    status: str
    edit_weight: float
    landmarks: np.ndarray | None = None
    landmarks_crop: np.ndarray | None = None
    face: Face | None = None
    pts: int | None = None
    duration: int | None = None
    track: int = 0

    @property
    def edited(self) -> bool:
        return self.quad is not None and self.edit_weight > 0


@dataclass
class AlignCounts:
    """How many frames were detected, interpolated (both edited) and passed through."""

    detected: int = 0
    interpolated: int = 0
    passthrough: int = 0

    @property
    def edited(self) -> int:
        return self.detected + self.interpolated

    @property
    def total(self) -> int:
        return self.edited + self.passthrough

    def add(self, status: str) -> None:
        setattr(self, status, getattr(self, status) + 1)

    def as_dict(self) -> dict[str, int]:
        return {"edited": self.edited, "detected": self.detected, "interpolated": self.interpolated,
                "passthrough": self.passthrough, "total": self.total}


def to_crop_normalised(quad: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Frame points ``[K,2]`` -> crop-normalised (0..1) coordinates of ``quad``."""
    return apply_affine(frame_to_crop(quad[None], 1)[0], pts) + 0.5


def from_crop_normalised(quad: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Crop-normalised (0..1) points ``[K,2]`` -> frame coordinates."""
    return apply_affine(crop_to_frame(quad[None], 1)[0], np.asarray(pts) - 0.5)


_Stamped = tuple[int, float, np.ndarray, "int | None", "int | None"]


def _unpack(item: Any, position: int, fps: float) -> _Stamped:
    """A frame item -> (index, time, rgb, pts, duration). Accepts ``(index, time, rgb)`` tuples,
    objects with ``index``/``time`` (and ``pts``/``duration``, e.g. the reader's ``Frame``) and one
    of ``rgb``/``image``/``array``/``data``, or bare arrays."""
    if isinstance(item, np.ndarray):
        return position, position / fps, item, None, None
    if isinstance(item, (tuple, list)) and len(item) == 3:
        return int(item[0]), float(item[1]), item[2], None, None
    index = getattr(item, "index", position)
    time = next((getattr(item, a) for a in ("time", "pts_time", "timestamp") if hasattr(item, a)), None)
    rgb = next((getattr(item, a) for a in ("rgb", "image", "array", "data") if hasattr(item, a)), None)
    if rgb is None:
        raise TypeError(f"cannot read a frame from {type(item).__name__}: expected (index, time, rgb) or .rgb/.image")
    pts, duration = getattr(item, "pts", None), getattr(item, "duration", None)
    return int(index), float(position / fps if time is None else time), np.asarray(rgb), pts, duration


class FaceAligner:
    """Streaming face stage. ``push`` frames in order, ``finish`` at the end; or ``run(frames)``.

    ``pixel_aspect`` != 1 (anamorphic frames): the face is found and its crop built as displayed,
    quads and landmarks come out in stored pixels (:mod:`vidinvert.face.geometry`)."""

    def __init__(self, cfg: FaceConfig = FaceConfig(), detector: FaceDetector | None = None,
                 pixel_aspect: float = 1.0):
        self.cfg = cfg
        self.pixel_aspect = float(pixel_aspect)
        self.geometry: PixelGeometry | None = None
        self.detector = detector or make_detector(cfg.detector, cfg.weights_dir, cfg.device,
                                                  min_face=cfg.min_face, min_face_px=cfg.min_face_px)
        self.tracker = FaceTracker(self.detector, cfg.track)
        self.smoother = StreamingQuadSmoother(cfg.smooth)
        self.counts = AlignCounts()
        self._held: dict[int, tuple[_Stamped, Face | None]] = {}
        self._pending: list[_Stamped] = []
        self._pos = 0

    def push(self, index: int, time: float, frame: np.ndarray, pts: int | None = None,
             duration: int | None = None) -> list[AlignedFace]:
        """One frame (uint8 RGB ``[H,W,3]``, with its timestamps) -> the frames that became ready
        (possibly none)."""
        self._pending.append((int(index), float(time), frame, pts, duration))
        if self.detector.batched and len(self._pending) < max(1, self.cfg.chunk):
            return []
        return self._flush_pending()

    def finish(self) -> list[AlignedFace]:
        """End of stream: everything still held."""
        out = self._flush_pending()
        return out + [self._emit(s) for s in self.smoother.finish()]

    def run(self, frames: Iterable[Any]) -> Iterator[AlignedFace]:
        """Frames (see :func:`_unpack` for accepted items) -> AlignedFace per frame, in order."""
        for i, item in enumerate(frames):
            yield from self.push(*_unpack(item, i, self.cfg.fps))
        yield from self.finish()

    # ------------------------------------------------------------------ internals
    def _flush_pending(self) -> list[AlignedFace]:
        if not self._pending:
            return []
        batch, self._pending = self._pending, []
        if self.geometry is None:
            self.geometry = PixelGeometry.for_frames(self.pixel_aspect, batch[0][2].shape[1])
        faces = self.tracker.track([self.geometry.display_image(stamped[2]) for stamped in batch])
        out: list[AlignedFace] = []
        for stamped, face in zip(batch, faces):
            pos = self._pos
            self._pos += 1
            self._held[pos] = (stamped, face)
            time = stamped[1]
            if face is None:
                ready = self.smoother.push(pos, time, None)
            else:
                quad = quad_from_face(face)
                ready = self.smoother.push(pos, time, quad_to_params(quad),
                                           to_crop_normalised(quad, face.landmarks))
            out += [self._emit(s) for s in ready]
        return out

    def _emit(self, s) -> AlignedFace:
        (index, time, frame, pts, duration), face = self._held.pop(s.index)
        face = self.geometry.face_to_stored(face)
        quad = None if s.quad is None else self.geometry.to_stored(s.quad)
        self.counts.add(s.status)
        lm = None
        if s.status == DETECTED and face is not None:
            lm = face.landmarks
        elif s.status == INTERPOLATED and s.landmarks_crop is not None:
            lm = from_crop_normalised(quad, s.landmarks_crop)
        return AlignedFace(index=index, time=time, frame=frame, quad=quad, status=s.status,
                           edit_weight=s.edit_weight if s.status != PASSTHROUGH else 0.0,
                           landmarks=lm, landmarks_crop=s.landmarks_crop, face=face, pts=pts, duration=duration)


class AlignStream:
    """An iterator of :class:`AlignedFace` with live :attr:`counts` (final once exhausted)."""

    def __init__(self, aligner: FaceAligner, frames: Iterable[Any]):
        self.aligner = aligner
        self._it = aligner.run(frames)

    @property
    def counts(self) -> AlignCounts:
        return self.aligner.counts

    def __iter__(self) -> AlignStream:
        return self

    def __next__(self) -> AlignedFace:
        return next(self._it)


def align_frames(frames: Iterable[Any], cfg: FaceConfig = FaceConfig(),
                 detector: FaceDetector | None = None, pixel_aspect: float = 1.0) -> AlignStream:
    """Frames -> :class:`AlignStream` of :class:`AlignedFace` (one per frame, in order) with ``.counts``.

    Items: ``(index, time_seconds, rgb uint8 [H,W,3])`` tuples, objects with ``index``, ``time`` and
    ``rgb``/``image``, or bare arrays (timestamps from ``cfg.fps``). ``pixel_aspect``: the
    frames' pixel shape as displayed (width / height; anamorphic clips).
    """
    return AlignStream(FaceAligner(cfg, detector, pixel_aspect), frames)
