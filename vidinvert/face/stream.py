"""The streaming face stage for any number of faces: frames in, one :class:`FaceFrame` per frame out.

``align_tracks(frames, cfg)`` tracks the selected faces (:mod:`vidinvert.face.tracks`; ``cfg.track.select``
is ``largest`` | ``center`` | N | ``all`` | (N, M, ...)) and runs, per track, the same FFHQ quads, gap
filling, temporal smoothing and fades as the one-face stage (:mod:`vidinvert.face.smooth`). It yields one
:class:`FaceFrame` per input frame, in order, with a bounded delay:

``FaceFrame(index, time, pts, duration, frame, faces)``
    ``frame``: the uint8 RGB ``[H,W,3]`` frame as given; ``pts`` / ``duration``: the reader's
    :class:`vidinvert.video.reader.Frame` timestamps (time-base ticks; None for other inputs), so
    they travel with the frame. ``faces``: one :class:`~vidinvert.face.stage.AlignedFace` per track
    that exists at this frame, sorted by ``track`` id, passthrough entries included (``quad`` None,
    ``edit_weight`` 0); ``edited_faces`` keeps the ones to edit, ``depth_order`` sorts them for paste.

A track exists from the frame its person is first found to the end of the clip. Its edit fades in
where the track starts (unless that is the clip's first frame), fades out and back in around
absences longer than ``max_gap`` seconds, and fills shorter ones by interpolation, exactly as the
one-face stage does around its gaps. With one-face selections the single track (id 0) exists from
the first frame, and the quads, statuses and weights are those of :class:`~vidinvert.face.stage.FaceAligner`;
``all`` on a clip with one face gives the same quads, statuses and weights for every frame where
the face is present (frames before the person appears have no entry instead of a passthrough one).

Anamorphic clips (``pixel_aspect`` != 1): detection, tracking, quads and smoothing work on the
frames as displayed, and the quads and landmarks handed out are in stored pixels (see
:mod:`vidinvert.face.geometry`).

Per-track counts: ``stream.counts[track]`` (an :class:`~vidinvert.face.stage.AlignCounts`, frames before
a track starts counted as passthrough, so every track's ``total`` is the clip's frame count).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vidinvert.face.align import quad_from_face, quad_scale, quad_to_params
from vidinvert.face.detect import FaceDetector, make_detector
from vidinvert.face.geometry import PixelGeometry
from vidinvert.face.smooth import (
    DETECTED,
    INTERPOLATED,
    PASSTHROUGH,
    StreamingQuadSmoother,
)
from vidinvert.face.stage import (
    AlignCounts,
    AlignedFace,
    FaceConfig,
    _unpack,
    from_crop_normalised,
    to_crop_normalised,
)
from vidinvert.face.track import Embedder
from vidinvert.face.tracks import MultiFaceTracker
from vidinvert.face.types import Face


@dataclass(eq=False)
class FaceFrame:
    """One frame leaving the multi-face stage (see the module docstring)."""

    index: int
    time: float
    pts: int | None
    duration: int | None
    frame: np.ndarray
    faces: list[AlignedFace] = field(default_factory=list)
    planes: Any = None  # the decoded samples (vidinvert.video.planes.Planes), set by the video job

    @property
    def edited_faces(self) -> list[AlignedFace]:
        """The faces to invert, edit and paste in this frame (quad set, weight > 0), by track id."""
        return [a for a in self.faces if a.edited]

    def depth_order(self) -> list[AlignedFace]:
        """Edited faces, farther (smaller crop) first: the order to paste them in."""
        return sorted(self.edited_faces, key=lambda a: (float(quad_scale(a.quad[None], 1)[0]), a.track))


def _unpack_frame(item: Any, position: int, fps: float) -> tuple[int, float, int | None, int | None, np.ndarray]:
    """A frame item -> (index, time, pts, duration, rgb); pts/duration from reader ``Frame`` objects."""
    index, time, rgb, pts, duration = _unpack(item, position, fps)
    return index, time, None if pts is None else int(pts), None if duration is None else int(duration), rgb


@dataclass
class _Held:
    index: int
    time: float
    pts: int | None
    duration: int | None
    frame: np.ndarray
    faces: list[Face | None]
    done: dict[int, AlignedFace] = field(default_factory=dict)


class MultiFaceAligner:
    """Streaming multi-face stage. ``push`` frames in order, ``finish`` at the end; or ``run(frames)``.

    ``pixel_aspect``: the frames' pixel shape (width / height as displayed; 1 = square)."""

    def __init__(self, cfg: FaceConfig = FaceConfig(), detector: FaceDetector | None = None,
                 embedder: Embedder | None = None, pixel_aspect: float = 1.0):
        self.cfg = cfg
        self.pixel_aspect = float(pixel_aspect)
        self.geometry: PixelGeometry | None = None
        self.detector = detector or make_detector(cfg.detector, cfg.weights_dir, cfg.device,
                                                  min_face=cfg.min_face, min_face_px=cfg.min_face_px)
        self.tracker = MultiFaceTracker(self.detector, cfg.track, embedder)
        self.smoothers: list[StreamingQuadSmoother] = []
        self.counts: list[AlignCounts] = []
        self._held: dict[int, _Held] = {}
        self._pending: list[tuple[int, float, int | None, int | None, np.ndarray]] = []
        self._pos = 0
        self._emit = 0

    @property
    def n_tracks(self) -> int:
        return len(self.smoothers)

    def push(self, index: int, time: float, frame: np.ndarray, pts: int | None = None,
             duration: int | None = None) -> list[FaceFrame]:
        """One frame (uint8 RGB ``[H,W,3]``) -> the frames that became ready (possibly none)."""
        self._pending.append((int(index), float(time), pts, duration, frame))
        if self.detector.batched and len(self._pending) < max(1, self.cfg.chunk):
            return []
        return self._flush_pending()

    def finish(self) -> list[FaceFrame]:
        """End of stream: everything still held."""
        out = self._flush_pending()
        for tid, sm in enumerate(self.smoothers):
            self._place(tid, sm.finish())
        out += self._drain()
        if self._held:  # pragma: no cover - every pushed frame is emitted once
            raise RuntimeError(f"face stage lost frames {sorted(self._held)[:5]}")
        return out

    def run(self, frames: Iterable[Any]) -> Iterator[FaceFrame]:
        """Frames (``(index, time, rgb)`` tuples, reader ``Frame`` objects, bare arrays) -> FaceFrame each."""
        for i, item in enumerate(frames):
            index, time, pts, duration, rgb = _unpack_frame(item, i, self.cfg.fps)
            yield from self.push(index, time, rgb, pts, duration)
        yield from self.finish()

    # ------------------------------------------------------------------ internals
    def _flush_pending(self) -> list[FaceFrame]:
        if not self._pending:
            return []
        batch, self._pending = self._pending, []
        if self.geometry is None:
            self.geometry = PixelGeometry.for_frames(self.pixel_aspect, batch[0][-1].shape[1])
        per_frame = self.tracker.track([self.geometry.display_image(b[-1]) for b in batch])
        for (index, time, pts, duration, frame), faces in zip(batch, per_frame):
            pos = self._pos
            self._pos += 1
            while len(self.smoothers) < len(faces):  # a track starts at this frame
                self.smoothers.append(StreamingQuadSmoother(self.cfg.smooth, fade_in=pos > 0))
                self.counts.append(AlignCounts(passthrough=pos))
            self._held[pos] = _Held(index, time, pts, duration, frame, list(faces))
            for tid, face in enumerate(faces):
                if face is None:
                    ready = self.smoothers[tid].push(pos, time, None)
                else:
                    quad = quad_from_face(face)
                    ready = self.smoothers[tid].push(pos, time, quad_to_params(quad),
                                                     to_crop_normalised(quad, face.landmarks))
                self._place(tid, ready)
        return self._drain()

    def _place(self, tid: int, ready) -> None:
        geo = self.geometry
        for s in ready:
            h = self._held[s.index]
            face = geo.face_to_stored(h.faces[tid])
            quad = None if s.quad is None else geo.to_stored(s.quad)
            self.counts[tid].add(s.status)
            lm = None
            if s.status == DETECTED and face is not None:
                lm = face.landmarks
            elif s.status == INTERPOLATED and s.landmarks_crop is not None:
                lm = from_crop_normalised(quad, s.landmarks_crop)
            h.done[tid] = AlignedFace(index=h.index, time=h.time, frame=h.frame, quad=quad, status=s.status,
                                      edit_weight=s.edit_weight if s.status != PASSTHROUGH else 0.0,
                                      landmarks=lm, landmarks_crop=s.landmarks_crop, face=face, track=tid,
                                      pts=h.pts, duration=h.duration)

    def _drain(self) -> list[FaceFrame]:
        out = []
        while self._emit in self._held and len(self._held[self._emit].done) == len(self._held[self._emit].faces):
            h = self._held.pop(self._emit)
            out.append(FaceFrame(h.index, h.time, h.pts, h.duration, h.frame, [h.done[t] for t in sorted(h.done)]))
            self._emit += 1
        return out


def batch_frames(frames: Iterable[FaceFrame], max_faces: int) -> Iterator[list[FaceFrame]]:
    """Group consecutive :class:`FaceFrame` s (in order, whole frames) so that each group holds at most
    ``max_faces`` edited faces (a frame with more faces than that is a group of its own). The faces of
    a group, ``[a for ff in group for a in ff.depth_order()]``, make one ``[faces,3,S,S]`` batch
    mixing frames; paste each frame's slice back with ``paste_faces_depth``. Frames without edited
    faces join the current group (nothing to compute, they keep their place in the output order)."""
    if max_faces < 1:
        raise ValueError("max_faces must be at least 1")
    group: list[FaceFrame] = []
    n = 0
    for ff in frames:
        k = len(ff.edited_faces)
        if group and n + k > max_faces:
            yield group
            group, n = [], 0
        group.append(ff)
        n += k
    if group:
        yield group


class TrackStream:
    """An iterator of :class:`FaceFrame` with live per-track :attr:`counts` (final once exhausted)."""

    def __init__(self, aligner: MultiFaceAligner, frames: Iterable[Any]):
        self.aligner = aligner
        self._it = aligner.run(frames)

    @property
    def counts(self) -> list[AlignCounts]:
        return self.aligner.counts

    def __iter__(self) -> TrackStream:
        return self

    def __next__(self) -> FaceFrame:
        return next(self._it)


def align_tracks(frames: Iterable[Any], cfg: FaceConfig = FaceConfig(), detector: FaceDetector | None = None,
                 embedder: Embedder | None = None, pixel_aspect: float = 1.0) -> TrackStream:
    """Frames -> :class:`TrackStream` of :class:`FaceFrame` (one per frame, in order) with per-track ``.counts``."""
    return TrackStream(MultiFaceAligner(cfg, detector, embedder, pixel_aspect), frames)
