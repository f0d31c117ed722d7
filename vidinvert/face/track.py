"""Follow one chosen face through a clip.

Selection (``--face``, parsed into :class:`FaceSelect`): ``largest`` (largest box), ``center``
(box centre nearest the frame centre) or an integer N (the N-th face from the left, 0-based) on
the first frame where a face is found (``all`` and ``N,M`` are parsed too; a track follows one
face, so those are for photos). The chosen face is then locked:

- While it is seen, each frame is searched only in a region around its predicted position
  (constant-velocity prediction; the region is resized so the face is about ``roi_face_px`` wide),
  which is both fast (a few ms with dlib on any frame size) and immune to other faces elsewhere.
  Candidates must overlap the prediction (IoU) or sit close to the predicted landmarks.
- When it is not found, the region search is retried, and the whole frame (downscaled) is
  searched every ``redetect_every`` frames. Within ``reid_after`` frames of the last sighting a
  candidate near the last position is taken; after that a candidate must be the same person by
  dlib's face descriptor (distance < ``reid_threshold``) when dlib is installed, else near the
  last position with a search radius that grows with the time lost.
- Detectors that batch cheaply (RetinaFace on a GPU) search whole frames in one batched call per
  chunk instead, with the same matching rules.

Optional optical-flow refinement (``flow_refine``): landmarks tracked from the previous frame
with pyramidal Lucas-Kanade (OpenCV) are blended with the detected ones where the two agree,
which removes detector jitter without drifting (the detection always keeps a share).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from vidinvert.errors import VidinvertError
from vidinvert.face import dlib_models
from vidinvert.face.detect import FaceDetector
from vidinvert.face.types import (
    Face,
    FaceSelect,
    box_iou,
    landmarks5_from_68,
    parse_face_select,
)

log = logging.getLogger(__name__)

#: ``(rgb uint8 [H,W,3], faces) -> [len(faces), D]`` float embeddings; Euclidean distance compares them.
Embedder = Callable[[np.ndarray, Sequence[Face]], np.ndarray]


@dataclass(frozen=True)
class TrackConfig:
    """How the chosen face is followed (see the module docstring)."""

    select: str | int | FaceSelect = "largest"
    roi_margin: float = 0.6        # search region = predicted box grown by this fraction of its size per side
    roi_face_px: float = 100.0     # face width (px) in the resized search region (dlib's HOG window is 80)
    redetect_every: int = 5        # while lost: whole-frame detection every N frames
    min_iou: float = 0.3           # a candidate matches when its box overlaps the prediction this much ...
    max_landmark_dist: float = 0.35  # ... or its 5 landmarks are this close (mean distance / face size)
    reid_after: int = 15           # frames lost after which re-acquisition needs the same identity
    reid_threshold: float = 0.6    # dlib descriptor distance for "same person"
    flow_refine: bool = False      # blend optical-flow tracked landmarks with detections
    appearance_weight: float = 1.0  # several tracks: score penalty per reid_threshold of descriptor distance
    same_face_iou: float = 0.5     # several tracks: detections overlapping this much are one face


def select_face(faces: Sequence[Face], select: str | int | FaceSelect, frame_shape) -> Face | None:
    """Pick the one face to lock on among ``faces`` of a frame of ``frame_shape`` (H, W, ...)."""
    sel = parse_face_select(select)
    if not sel.single:
        raise VidinvertError(f"--face {sel}: a video follows one face; use largest, center or one number N")
    if not faces:
        return None
    if sel.mode == "largest":
        return max(faces, key=lambda f: f.width * f.height)
    if sel.mode == "center":
        c = np.array([frame_shape[1] - 1, frame_shape[0] - 1]) / 2
        return min(faces, key=lambda f: float(np.hypot(*(f.center - c))))
    ordered = sorted(faces, key=lambda f: f.center[0])
    n = sel.numbers[0]
    return ordered[n] if n < len(ordered) else None


class FaceTracker:
    """Stateful tracker: feed consecutive uint8 RGB frames, get the tracked face (or None) per frame."""

    def __init__(self, detector: FaceDetector, config: TrackConfig = TrackConfig()):
        self.detector = detector
        self.cfg = config
        self.select = parse_face_select(config.select)
        if not self.select.single:
            raise VidinvertError(f"--face {self.select}: a video follows one face; use largest, center or one number N")
        self.last: Face | None = None          # last sighting of the locked face
        self.velocity = np.zeros(2)            # centre motion per frame
        self.lost = 0                          # frames since the last sighting
        self.since_full = 10**9                # frames since the last whole-frame search
        self.embedding: np.ndarray | None = None
        #: optional ``(rgb, faces) -> [N,D]`` appearance embedder; default dlib's descriptor when installed
        self.embedder: Embedder | None = None
        self._prev_rgb: np.ndarray | None = None
        self._prev_pts: np.ndarray | None = None
        self.full_detections = 0
        self.roi_detections = 0

    @property
    def locked(self) -> bool:
        return self.last is not None

    def track(self, frames: Sequence[np.ndarray]) -> list[Face | None]:
        """Consecutive frames (uint8 RGB ``[H,W,3]``) -> the tracked face per frame, or None."""
        if self.detector.batched and len(frames) > 1:
            dets = self.detector.detect(list(frames))
            self.full_detections += len(frames)
            return [self._accept(f, self._choose(f, d)) for f, d in zip(frames, dets)]
        return [self.update(f) for f in frames]

    def update(self, rgb: np.ndarray) -> Face | None:
        """One frame -> the tracked face or None (searches a region, or the whole frame when lost)."""
        face = None
        if self.last is not None and self.lost < self.cfg.reid_after:
            face = self._choose(rgb, self._detect_roi(rgb))
        if face is None and self.since_full >= self.cfg.redetect_every:
            face = self._choose(rgb, self.detector.detect([rgb])[0])
            self.full_detections += 1
            self.since_full = 0
        else:
            self.since_full += 1
        return self._accept(rgb, face)

    # ------------------------------------------------------------------ internals
    def _predicted_box(self) -> np.ndarray:
        shift = self.velocity * (self.lost + 1)
        return self.last.box + np.tile(shift, 2)

    def _detect_roi(self, rgb: np.ndarray) -> list[Face]:
        h, w = rgb.shape[:2]
        box = self._predicted_box()
        size = max(box[2] - box[0], box[3] - box[1])
        half = size * (0.5 + self.cfg.roi_margin * (1 + 0.5 * min(self.lost, 4)))
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        x0, y0 = int(max(0, np.floor(cx - half))), int(max(0, np.floor(cy - half)))
        x1, y1 = int(min(w, np.ceil(cx + half))), int(min(h, np.ceil(cy + half)))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return []
        scale = min(self.detector.max_upsample, self.cfg.roi_face_px / max(size, 1.0))
        faces = self.detector.detect([rgb[y0:y1, x0:x1]], [scale])[0]
        self.roi_detections += 1
        return [f.shifted(x0, y0) for f in faces]

    def _accept(self, rgb: np.ndarray, face: Face | None) -> Face | None:
        if face is None:
            if self.last is not None:
                self.lost += 1
            self._prev_rgb, self._prev_pts = None, None
            return None
        if self.cfg.flow_refine:
            face = self._flow_refine(rgb, face)
        if self.last is not None and self.lost == 0:
            self.velocity = 0.5 * self.velocity + 0.5 * (face.center - self.last.center)
        else:
            self.velocity = np.zeros(2)
        if self.last is None:
            self._remember_identity(rgb, face)
        self.last, self.lost = face, 0
        return face

    def _choose(self, rgb: np.ndarray, cands: list[Face]) -> Face | None:
        if not cands:
            return None
        if self.last is None:
            return select_face(cands, self.select, rgb.shape)
        if self.lost >= self.cfg.reid_after and self.embedding is not None:
            best, best_d = None, self.cfg.reid_threshold
            for c in cands:
                d = float(np.linalg.norm(self._embed(rgb, c) - self.embedding))
                if d < best_d:
                    best, best_d = c, d
            return best
        score = self.motion_scores(cands)
        if not np.isfinite(score).any():
            return None
        return cands[int(np.argmax(score))]

    def motion_scores(self, cands: Sequence[Face]) -> np.ndarray:
        """``[N]`` match scores (IoU with the constant-velocity prediction minus the mean landmark
        distance over the face size) of ``cands``; ``-inf`` where a candidate is not plausible."""
        pred = self._predicted_box()
        shift = (pred[:2] - self.last.box[:2])
        size = self.last.size
        iou = box_iou(np.stack([c.box for c in cands]), pred[None])[:, 0]
        dist = np.array([np.linalg.norm(c.landmarks5 - (self.last.landmarks5 + shift), axis=1).mean() / size
                         for c in cands])
        ratio = np.array([c.size / size for c in cands])
        max_dist = self.cfg.max_landmark_dist * (1.0 + 0.25 * max(0, self.lost - 1))
        ok = ((iou >= self.cfg.min_iou) | (dist <= max_dist)) & (ratio > 0.5) & (ratio < 2.0)
        return np.where(ok, iou - dist, -np.inf)

    def _embed(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        if self.embedder is not None:
            return np.asarray(self.embedder(rgb, [face]), np.float64).reshape(-1)
        return dlib_models.dlib_face_embedding(rgb, face.landmarks68, box=face.box)

    def _remember_identity(self, rgb: np.ndarray, face: Face) -> None:
        if self.embedder is not None or dlib_models.dlib_available():
            try:
                self.embedding = self._embed(rgb, face)
            except Exception as exc:  # pragma: no cover - dlib failure is not fatal for tracking
                log.info("face descriptor unavailable (%s); re-acquisition by position only", exc)
                self.embedding = None

    def _flow_refine(self, rgb: np.ndarray, face: Face) -> Face:
        pts = face.landmarks.astype(np.float64)
        prev_rgb, prev_pts = self._prev_rgb, self._prev_pts
        self._prev_rgb = rgb
        if prev_rgb is None or prev_pts is None or prev_pts.shape != pts.shape or prev_rgb.shape != rgb.shape:
            self._prev_pts = pts
            return face
        refined = refine_landmarks_flow(prev_rgb, rgb, prev_pts, pts, face.size)
        self._prev_pts = refined
        if face.landmarks68 is not None:
            return Face(face.box, face.score, landmarks5_from_68(refined), refined, dict(face.extra))
        return Face(face.box, face.score, refined, None, dict(face.extra))


def refine_landmarks_flow(prev_rgb: np.ndarray, rgb: np.ndarray, prev_pts: np.ndarray, det_pts: np.ndarray,
                          face_size: float, tolerance: float = 0.03, max_flow_weight: float = 0.75) -> np.ndarray:
    """Blend landmarks tracked by Lucas-Kanade from ``prev_rgb`` with the detected ``det_pts`` ``[K,2]``.

    Each point takes ``a * flow + (1 - a) * detected`` with ``a = max_flow_weight * exp(-(d/t)^2)``,
    ``d`` the flow/detection disagreement and ``t = tolerance * face_size``: small detector jitter is
    replaced by the (smoother) flow, a real disagreement leaves the detection. Only a window around
    the face is converted to grey and searched.
    """
    h, w = rgb.shape[:2]
    allp = np.concatenate([prev_pts, det_pts])
    pad = 0.3 * face_size + 16
    x0, y0 = (np.floor(allp.min(0) - pad)).astype(int).clip(0, [w - 1, h - 1])
    x1, y1 = (np.ceil(allp.max(0) + pad)).astype(int).clip(1, [w, h])
    g0 = cv2.cvtColor(np.ascontiguousarray(prev_rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
    g1 = cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
    p0 = (prev_pts - [x0, y0]).astype(np.float32).reshape(-1, 1, 2)
    win = int(np.clip(face_size * 0.15, 9, 31)) | 1
    p1, status, _ = cv2.calcOpticalFlowPyrLK(
        g0, g1, p0, None, winSize=(win, win), maxLevel=3,
        criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01),
    )
    flow = p1.reshape(-1, 2).astype(np.float64) + [x0, y0]
    d = np.linalg.norm(flow - det_pts, axis=1)
    a = max_flow_weight * np.exp(-((d / max(tolerance * face_size, 1e-6)) ** 2))
    a = np.where(status.reshape(-1) > 0, a, 0.0)[:, None]
    return a * flow + (1 - a) * det_pts
