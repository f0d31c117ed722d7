"""Follow several faces through a clip: one track per person, stable ids.

Selection (``--face``): ``all`` follows every face, including people who appear later;
``N,M`` (0-based, left to right) fixes the set on the first frame where faces are found (people
who appear later are ignored); ``largest`` / ``center`` / ``N`` follow one face exactly as
:class:`~vidinvert.face.track.FaceTracker` does (it *is* that tracker, as track 0).

Track ids are 0, 1, 2... in order of first appearance, left to right within a frame. A track is
never re-numbered: when its person leaves and comes back it is re-found under the same id.

Per frame (:meth:`MultiFaceTracker.update`):

1. Every track seen recently (``lost < reid_after`` frames) searches a region around its
   constant-velocity prediction, as the one-face tracker does. Candidates are scored per track
   (IoU with the prediction minus the landmark distance; implausible pairs are excluded) and
   assigned jointly with the Hungarian algorithm, so two faces that cross each take their own
   detection. Detections of the same face from two search regions count as one.
2. Tracks still unmatched whose whole-frame search is due (every ``redetect_every`` frames while
   lost, as for one face) take candidates from one whole-frame detection. A track lost for
   ``reid_after`` frames or more is re-found by identity (embedding distance < ``reid_threshold``)
   when its embedding *separates* it from every other track's, else by position and motion
   with a search radius that grows with the time lost (copies of one face cannot be told apart).
3. Appearance term: where the assignment is ambiguous (a detection plausible for two tracks, or
   a track with two plausible detections) and the tracks' embeddings separate, each score is
   lowered by ``appearance_weight * distance / reid_threshold``.
4. ``all``: a whole-frame scan every ``redetect_every`` frames starts new tracks for faces no
   track has taken or could claim.

Detectors that batch cheaply (``detector.batched``) detect whole chunks at once instead; every
track then matches against the whole-frame detections of each frame (steps 2-4 every frame).

The embedder is ``(rgb uint8 [H,W,3], faces) -> [N,D]`` (Euclidean distance); by default dlib's
face descriptor when dlib is installed, else none (position and motion only).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from vidinvert.face import dlib_models
from vidinvert.face.detect import FaceDetector
from vidinvert.face.track import Embedder, FaceTracker, TrackConfig
from vidinvert.face.types import Face, box_iou, parse_face_select

log = logging.getLogger(__name__)

class _Track(FaceTracker):
    """One person followed inside a :class:`MultiFaceTracker` (the one-face tracker's state and rules)."""

    def __init__(self, detector: FaceDetector, cfg: TrackConfig, embedder: Embedder | None, appearance: bool):
        super().__init__(detector, dataclasses.replace(cfg, select="largest"))
        self.embedder = embedder
        self.appearance = appearance

    def _remember_identity(self, rgb: np.ndarray, face: Face) -> None:
        if self.appearance:
            super()._remember_identity(rgb, face)


class MultiFaceTracker:
    """Stateful tracker of several faces: feed consecutive uint8 RGB frames, get per frame a list
    indexed by track id (``None`` where that track is not seen; the list grows as tracks start)."""

    def __init__(self, detector: FaceDetector, config: TrackConfig = TrackConfig(),
                 embedder: Embedder | None = None):
        self.detector = detector
        self.cfg = config
        self.select = parse_face_select(config.select)
        self.multi = not self.select.single
        self.appearance = config.appearance_weight > 0 and (embedder is not None or dlib_models.dlib_available())
        self.embedder = embedder
        self.tracks: list[FaceTracker] = []
        self.selected = False              # N,M / all: the first faces were found
        self.missing: tuple[int, ...] = ()  # N,M numbers absent from the selection frame
        self.since_scan = 10**9
        self.scan_detections = 0
        if not self.multi:                 # one face: today's tracker is track 0 from the first frame
            self.tracks.append(FaceTracker(detector, config))
            self.tracks[0].embedder = embedder

    @property
    def full_detections(self) -> int:
        return self.scan_detections + sum(t.full_detections for t in self.tracks)

    @property
    def roi_detections(self) -> int:
        return sum(t.roi_detections for t in self.tracks)

    def track(self, frames: Sequence[np.ndarray]) -> list[list[Face | None]]:
        """Consecutive frames (uint8 RGB ``[H,W,3]``) -> per frame, the face of each track or None."""
        if not self.multi:
            return [[f] for f in self.tracks[0].track(frames)]
        if self.detector.batched and len(frames) > 1:
            dets = self.detector.detect(list(frames))
            self.scan_detections += len(frames)
            return [self._step(f, d) for f, d in zip(frames, dets)]
        return [self._step(f, None) for f in frames]

    def update(self, rgb: np.ndarray) -> list[Face | None]:
        """One frame -> the face of each track or None."""
        return self.track([rgb])[0]

    # ------------------------------------------------------------------ one frame
    def _step(self, rgb: np.ndarray, dets: list[Face] | None) -> list[Face | None]:
        cfg = self.cfg
        cache: dict[str, list[Face]] = {} if dets is None else {"full": dets}

        def full() -> list[Face]:
            if "full" not in cache:
                cache["full"] = self.detector.detect([rgb])[0]
                self.scan_detections += 1
            return cache["full"]

        found: dict[int, Face] = {}
        emb: dict[int, np.ndarray | None] = {}
        if dets is None:
            live = [i for i, t in enumerate(self.tracks) if t.last is not None and t.lost < cfg.reid_after]
            regions = {i: self.tracks[i]._detect_roi(rgb) for i in live}
            found.update(self._assign(rgb, self._objects(regions), emb))
            due = []
            scan_now = self.select.mode == "all" and self.since_scan >= cfg.redetect_every
            for i, t in enumerate(self.tracks):
                if i in found:
                    t.since_full += 1
                elif t.since_full >= cfg.redetect_every or (scan_now and len(self.tracks) > 1):
                    due.append(i)  # (several tracks: a lost one also uses the scan for new faces)
                    t.since_full = 0
                else:
                    t.since_full += 1
        else:
            due = [i for i, t in enumerate(self.tracks) if t.last is not None]
        if due:
            cands = self._unclaimed(full(), found)
            found.update(self._assign(rgb, [{i: c for i in due} for c in cands], emb))
        self._start_tracks(rgb, full, found, emb, every_frame=dets is not None)
        for i, t in enumerate(self.tracks):
            t._accept(rgb, found.get(i))
        return [found.get(i) for i in range(len(self.tracks))]

    def _start_tracks(self, rgb, full, found: dict[int, Face], emb, every_frame: bool) -> None:
        """Selection on the first frame with faces; under ``all`` new tracks for new faces."""
        if self.selected and self.select.mode != "all":
            return
        if not every_frame and self.since_scan < self.cfg.redetect_every:
            self.since_scan += 1
            return
        self.since_scan = 0
        cands = self._unclaimed(full(), found)
        if self.selected:
            cands = [c for c in cands if not self._claimed(rgb, c, found, emb)]
        cands.sort(key=lambda f: f.center[0])
        if not self.selected and cands:
            if self.select.mode == "numbers":
                nums = self.select.numbers
                self.missing = tuple(n for n in nums if n >= len(cands))
                picked = [cands[n] for n in nums if n < len(cands)]
                if not picked:
                    return
                if self.missing:
                    log.warning("--face: no face number %s in the first frame with faces (%d found)",
                                ",".join(map(str, self.missing)), len(cands))
                cands = picked
            self.selected = True
        for c in cands:
            t = _Track(self.detector, self.cfg, self.embedder, self.appearance)
            t.since_full = 0
            found[len(self.tracks)] = c
            self.tracks.append(t)

    # ------------------------------------------------------------------ matching
    def _unclaimed(self, cands: list[Face], found: dict[int, Face]) -> list[Face]:
        """Candidates that are not (by overlap) a face already assigned this frame."""
        if not found or not cands:
            return list(cands)
        iou = box_iou(np.stack([c.box for c in cands]), np.stack([f.box for f in found.values()]))
        return [c for c, row in zip(cands, iou) if row.max() <= self.cfg.same_face_iou]

    def _claimed(self, rgb, cand: Face, found: dict[int, Face], emb) -> bool:
        """Could an unmatched existing track take ``cand`` (so it must not start a new track)?"""
        for i, t in enumerate(self.tracks):
            if i in found or t.last is None:
                continue
            if np.isfinite(self._scores(rgb, i, [cand], emb)).any():
                return True
        return False

    def _objects(self, per_track: dict[int, list[Face]]) -> list[dict[int, Face]]:
        """Per-track candidate lists -> faces, each as {track: that track's detection of it}: a
        detection joins the face (not yet seen by its track) it overlaps most, above same_face_iou."""
        objs: list[dict[int, Face]] = []
        for i, cands in per_track.items():
            for c in cands:
                best, best_iou = None, self.cfg.same_face_iou
                for o in objs:
                    if i in o:
                        continue
                    v = float(box_iou(c.box[None], np.stack([r.box for r in o.values()])).max())
                    if v > best_iou:
                        best, best_iou = o, v
                if best is None:
                    objs.append({i: c})
                else:
                    best[i] = c
        return objs

    def _separable(self, i: int) -> bool:
        """Does track ``i``'s embedding tell it apart from every other track's?"""
        e = self.tracks[i].embedding
        if e is None:
            return False
        thr = self.cfg.reid_threshold
        return all(float(np.linalg.norm(e - t.embedding)) >= thr
                   for j, t in enumerate(self.tracks) if j != i and t.embedding is not None)

    def _distance(self, rgb, i: int, face: Face, emb: dict[int, np.ndarray | None]) -> float | None:
        key = id(face)
        if key not in emb:
            try:
                emb[key] = self.tracks[i]._embed(rgb, face)
            except Exception as exc:  # pragma: no cover - a failed descriptor leaves position and motion
                log.debug("face descriptor failed (%s)", exc)
                emb[key] = None
        e = emb[key]
        return None if e is None else float(np.linalg.norm(e - self.tracks[i].embedding))

    def _scores(self, rgb, i: int, cands: list[Face], emb) -> np.ndarray:
        """Motion scores of ``cands`` for track ``i``, or identity scores when it is re-found by identity."""
        t, thr = self.tracks[i], self.cfg.reid_threshold
        if t.lost >= self.cfg.reid_after and self._separable(i):
            d = [self._distance(rgb, i, c, emb) for c in cands]
            return np.array([-x / thr if x is not None and x < thr else -np.inf for x in d])
        score = t.motion_scores(cands)
        if t.lost > 0 and len(self.tracks) > 1 and self._separable(i):
            # lost among several people: the same face where motion does not explain it (it turned back)
            for k in np.flatnonzero(~np.isfinite(score)):
                d = self._distance(rgb, i, cands[k], emb)
                if d is not None and d < thr:
                    score[k] = -1.0 - d / thr
        return score

    def _assign(self, rgb, objs: list[dict[int, Face]], emb) -> dict[int, Face]:
        """Hungarian assignment of tracks to faces (maximum total score; implausible pairs excluded)."""
        ids = sorted({i for o in objs for i in o})
        if not ids:
            return {}
        score = np.full((len(ids), len(objs)), -np.inf)
        for r, i in enumerate(ids):
            cols = [k for k, o in enumerate(objs) if i in o]
            score[r, cols] = self._scores(rgb, i, [objs[k][i] for k in cols], emb)
        ok = np.isfinite(score)
        w, thr = self.cfg.appearance_weight, self.cfg.reid_threshold
        if self.appearance and w > 0 and len(self.tracks) > 1:
            for r, i in enumerate(ids):
                cols = np.flatnonzero(ok[r])
                ambiguous = len(cols) > 1 or any(ok[:, k].sum() > 1 for k in cols)
                if not ambiguous or self.tracks[i].lost >= self.cfg.reid_after or not self._separable(i):
                    continue
                for k in cols:
                    d = self._distance(rgb, i, objs[k][i], emb)
                    if d is not None:
                        score[r, k] -= w * d / thr
        if not ok.any():
            return {}
        cost = np.where(ok, -score, 1e6)
        rows, cols = linear_sum_assignment(cost)
        return {ids[r]: objs[k][ids[r]] for r, k in zip(rows, cols) if ok[r, k]}
