"""Video mode: align every frame, invert in batches, compare each source crop with its reconstruction.

A frame is evaluated when the face stage gives it a crop (``detected`` or ``interpolated``);
``passthrough`` frames (no face) are counted and skipped. Identity consistency (eq. 9) takes the
first evaluated frame as the reference, for the source crops and for the reconstructions.

The temporal figures come from the video job's own meters and report
(:class:`~vidinvert.pipeline.state.TrackState`, :func:`~vidinvert.pipeline.report.build_report`):
TL-ID / TG-ID of the inversion (ArcFace only) and the warping error of the source and the inversion,
with the face's landmark outline mask (what the video job pastes with when no face-parsing model
is found) as the valid set; runs break where a frame has no face. ``ItemResult.temporal`` keeps
that per-video report (per-frame lists included) for the summary and the video's figure.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import av
import numpy as np
import torch

from vidinvert.engine import Inverter
from vidinvert.errors import VidinvertError
from vidinvert.evaluate.datasets import MediaItem
from vidinvert.evaluate.suite import ItemResult, MetricAccumulator, MetricSuite
from vidinvert.face.align import warp_faces
from vidinvert.face.detect import FaceDetector
from vidinvert.face.masks import outline_masks
from vidinvert.face.smooth import INTERPOLATED
from vidinvert.face.stage import AlignedFace, FaceConfig, align_frames
from vidinvert.memory import BatchSize, OutOfMemoryStop
from vidinvert.metrics.identity import identity_consistency
from vidinvert.pipeline.report import StageClock, build_report
from vidinvert.pipeline.state import TrackState
from vidinvert.pipeline.temporal_report import FrameMark
from vidinvert.video import open_video

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoEvalConfig:
    """``batch_size``: crops per encoder/generator call. ``max_frames``: only the first N frames
    of each video (None: all). ``face``: the face stage's settings."""

    batch_size: int = 4
    max_frames: int | None = None
    face: FaceConfig = field(default_factory=FaceConfig)


def _unreadable(item: MediaItem, exc: BaseException, t0: float) -> ItemResult:
    msg = exc.message if isinstance(exc, VidinvertError) else f"{type(exc).__name__}: {exc}"
    log.warning(f"skipping unreadable video {item.path}: {msg}")
    return ItemResult(key=item.key, path=str(item.path), status="unreadable", error=msg,
                      seconds=time.perf_counter() - t0)


def evaluate_video(item: MediaItem, inverter: Inverter, suite: MetricSuite, cfg: VideoEvalConfig,
                   detector: FaceDetector | None = None,
                   progress: Callable[[int], None] | None = None, batch_size: BatchSize | None = None) -> ItemResult:
    """Evaluate one video; never raises for a bad file (status ``unreadable`` instead).

    ``detector`` is reused between videos when given (the tracker and smoother are per video).
    ``progress(n)`` is called with the number of frames finished after each batch.
    ``batch_size``: the run's batch state (halved when memory runs out and kept for the next
    videos; default: ``cfg.batch_size`` for this video).
    """
    t0 = time.perf_counter()
    sizes = batch_size or BatchSize(cfg.batch_size, "eval", source=str(item.path), device=inverter.compute.device)
    acc = MetricAccumulator()
    res = ItemResult(key=item.key, path=str(item.path), kind="video")
    track = TrackState()
    batch: list[tuple[int, AlignedFace]] = []  # (stream position, face)
    clip: dict = {}
    pending_progress = 0

    def run_batch() -> None:
        nonlocal pending_progress
        for part, (crops, recon, values, emb_src) in sizes.batches(list(batch),
                                                                   lambda part: _measure(inverter, suite, part)):
            acc.add(values, emb_src)
            res.frame_indices.extend(a.index for _, a in part)
            _feed_track(track, part, crops, recon, emb_src, values.get("_emb_recon"))
        batch.clear()
        if progress is not None and pending_progress:
            progress(pending_progress)
        pending_progress = 0

    try:
        reader = open_video(item.path)
        frames = iter(reader)
        if cfg.max_frames is not None:
            frames = itertools.islice(frames, cfg.max_frames)
        stream = align_frames(frames, cfg.face, detector=detector, pixel_aspect=reader.info.pixel_aspect)
        for aligned in stream:
            clip.setdefault("first_frame", aligned.index)
            clip.setdefault("start", round(aligned.time, 6))
            clip.update(last_frame=aligned.index, end=round(aligned.time, 6))
            res.frames += 1
            pending_progress += 1
            if aligned.quad is not None:
                batch.append((res.frames - 1, aligned))
            if len(batch) >= sizes.size_for(cfg.batch_size):
                run_batch()
        run_batch()
        counts = stream.counts
    except OutOfMemoryStop:  # not the file's fault: the run stops (--resume continues it)
        raise
    except (VidinvertError, av.error.FFmpegError, OSError, EOFError) as exc:
        return _unreadable(item, exc, t0)

    res.detected, res.interpolated, res.passthrough = counts.detected, counts.interpolated, counts.passthrough
    res.evaluated = len(res.frame_indices)
    if res.frames == 0:
        return _unreadable(item, VidinvertError(f"{item.path}: no frames decoded"), t0)
    if res.evaluated == 0:
        log.warning(f"no face found in any of the {res.frames} frames of {item.path}: skipped")
        res.status = "no-face"
        res.seconds = time.perf_counter() - t0
        return res
    res.per_frame = acc.values
    res.metrics = acc.means()
    e_src, e_rec = acc.embeddings()
    if e_src is not None:
        res.ic_source = identity_consistency(e_src, suite.identity.measure)
        res.ic_inversion = identity_consistency(e_rec, suite.identity.measure)
    _temporal_result(res, track, suite, counts.as_dict(), clip)
    if inverter.compute.device.type == "cuda":
        torch.cuda.synchronize(inverter.compute.device)
    res.seconds = time.perf_counter() - t0
    return res


def _measure(inverter: Inverter, suite: MetricSuite, part: list[tuple[int, AlignedFace]]) -> tuple:
    """One batch's crops ``[n,3,S,S]`` in [-1,1], reconstructions, metric values and source embeddings."""
    faces = [a for _, a in part]
    quads = np.stack([a.quad for a in faces])
    crops = warp_faces([a.frame for a in faces], quads, inverter.size, device=inverter.compute.device)
    recon = inverter.synthesize(inverter.invert(crops))
    return crops, recon, *suite.compare(crops, recon)


def _feed_track(track: TrackState, batch: list[tuple[int, AlignedFace]], crops, recon, emb_src, emb_rec) -> None:
    """One batch into the video's temporal meters, a new run wherever the stream positions break."""
    pos = [p for p, _ in batch]
    masks = outline_masks([a.landmarks_crop for _, a in batch], 256, device=crops.device)
    marks = [FrameMark(a.index, a.time, a.status == INTERPOLATED) for _, a in batch]
    start = 0
    for k in range(1, len(batch) + 1):
        if k == len(batch) or pos[k] != pos[k - 1] + 1:
            sl = slice(start, k)
            track.feed({"source": crops[sl], "inversion": recon[sl]},
                       {"source": None if emb_src is None else emb_src[sl],
                        "inversion": None if emb_rec is None else emb_rec[sl]},
                       marks[sl], masks[sl], new_run=pos[start] != track.last_pos + 1)
            track.last_pos = pos[k - 1]
            start = k


def _temporal_result(res: ItemResult, track: TrackState, suite: MetricSuite, counts: dict, clip: dict) -> None:
    """TL-ID / TG-ID of the inversion, the warping error of source and inversion, and the report."""
    name = suite.identity.name if suite.identity is not None else None
    rep = build_report(source=track.source, inversion=track.inversion, edits={}, embedder=name, counts=counts,
                       clock=StageClock(), extra={"input": res.path, "clip": clip}, timeline=track.timeline,
                       warp=track.warp)
    rep.pop("stages", None)
    res.tl_id = rep["tl_id"]["inversion"]
    res.tg_id = rep["tg_id"]["inversion"]
    res.warp_source = rep["warping_error"]["source"]
    res.warp_inversion = rep["warping_error"]["inversion"]
    res.temporal = rep
