"""Video mode: align every frame, invert in batches, compare each source crop with its reconstruction.

A frame is evaluated when the face stage gives it a crop (``detected`` or ``interpolated``);
``passthrough`` frames (no face) are counted and skipped. Identity consistency (eq. 9) takes the
first evaluated frame as the reference, for the source crops and for the reconstructions.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from vidinvert.engine import Inverter
from vidinvert.errors import VidinvertError
from vidinvert.evaluate.datasets import MediaItem
from vidinvert.evaluate.suite import ItemResult, MetricAccumulator, MetricSuite
from vidinvert.face.align import warp_faces
from vidinvert.face.detect import FaceDetector
from vidinvert.face.stage import AlignedFace, FaceConfig, align_frames
from vidinvert.metrics.identity import identity_consistency

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
                   progress: Callable[[int], None] | None = None) -> ItemResult:
    """Evaluate one video; never raises for a bad file (status ``unreadable`` instead).

    ``detector`` is reused between videos when given (the tracker and smoother are per video).
    ``progress(n)`` is called with the number of frames finished after each batch.
    """
    import av

    from vidinvert.video import open_video

    t0 = time.perf_counter()
    acc = MetricAccumulator()
    res = ItemResult(key=item.key, path=str(item.path), kind="video")
    batch: list[AlignedFace] = []
    pending_progress = 0

    def run_batch() -> None:
        nonlocal pending_progress
        if batch:
            quads = np.stack([a.quad for a in batch])
            crops = warp_faces([a.frame for a in batch], quads, inverter.size, device=inverter.compute.device)
            recon = inverter.synthesize(inverter.invert(crops))
            values, emb_src = suite.compare(crops, recon)
            acc.add(values, emb_src)
            res.frame_indices.extend(a.index for a in batch)
            batch.clear()
        if progress is not None and pending_progress:
            progress(pending_progress)
        pending_progress = 0

    try:
        reader = open_video(item.path)
        frames = iter(reader)
        if cfg.max_frames is not None:
            frames = itertools.islice(frames, cfg.max_frames)
        stream = align_frames(frames, cfg.face, detector=detector)
        for aligned in stream:
            res.frames += 1
            pending_progress += 1
            if aligned.quad is not None:
                batch.append(aligned)
            if len(batch) >= cfg.batch_size:
                run_batch()
        run_batch()
        counts = stream.counts
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
    if inverter.compute.device.type == "cuda":
        torch.cuda.synchronize(inverter.compute.device)
    res.seconds = time.perf_counter() - t0
    return res
