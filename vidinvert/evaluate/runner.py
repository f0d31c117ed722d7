"""One benchmark run: select the items, load the models, evaluate this rank's slice (with the
per-item cache for ``--resume``), gather on rank 0 and write the report.

Output folder layout::

    OUT/videos.csv | images.csv       one row per item
    OUT/summary.json                  mean/std per metric, counts, skipped items, models, settings
    OUT/table.md                      the Markdown table (also printed by the CLI)
    OUT/identity_consistency.png      video mode: box plot source vs inversion
    OUT/figures/<item>.png            video mode: each video's figure over time (identity, flicker,
                                      warping error, faces), as the video job's report picture
    OUT/run.json                      versions, configuration, weight files with sha256
    OUT/cache/<item>.json             one finished item each (read back by --resume)
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from vidinvert import distributed
from vidinvert.choices import Detector, Modality, ModelChoice
from vidinvert.device import Compute, resolve_compute, warn_cpu_fallback
from vidinvert.engine import Inverter
from vidinvert.errors import VidinvertError
from vidinvert.evaluate.datasets import MediaItem, discover_images, discover_videos
from vidinvert.evaluate.images import evaluate_images
from vidinvert.evaluate.report import SUMMARY_NAME, summarize, write_json, write_report
from vidinvert.evaluate.suite import ItemResult, MetricSuite
from vidinvert.evaluate.video import VideoEvalConfig, evaluate_video
from vidinvert.face.detect import make_detector
from vidinvert.face.stage import FaceConfig
from vidinvert.memory import BatchSize, batch_report
from vidinvert.runinfo import run_record
from vidinvert.weights import find, model_files

log = logging.getLogger(__name__)

CACHE_DIR = "cache"
CACHE_VERSION = 2  # 2: TL-ID / TG-ID, warping errors and the per-video temporal report
# Ranks finish their slices at different times; rank 0 waits for the slowest one at the gather.
GATHER_TIMEOUT = _dt.timedelta(hours=48)

Progress = Callable[[str, int], None]
"""``progress(kind, n)``: kind ``total`` (items of this rank, once), ``item`` (items finished),
``frames`` (frames finished)."""


@dataclass(frozen=True)
class EvalRun:
    """Everything ``vidinvert eval`` was asked for. Exactly one of ``videos`` / ``images``."""

    out: Path
    videos: str | None = None
    images: str | None = None
    modality: str = "video-only"
    sample: int | None = None
    seed: int = 0
    max_frames: int | None = None
    limit: int | None = None
    resume: bool = False
    overwrite: bool = False
    encoder: str | None = None
    generator: str | None = None
    weights_dir: Path | None = None
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int | None = None
    detector: str = "auto"
    metric_size: int | None = None
    explicit: frozenset[str] = field(default=frozenset(), compare=False)  # the options given on purpose

    @property
    def mode(self) -> str:
        return "video" if self.videos is not None else "image"

    def check(self) -> None:
        """Every rule of ``vidinvert eval``'s options (before anything is read)."""
        if (self.videos is None) == (self.images is None):
            raise VidinvertError("give a video source (DIR, glob or list file) or --images DIR, exactly one")
        if self.images is not None:
            refuse_video_options(self.explicit)
        Modality.parse(self.modality, "--modality")
        Detector.parse(self.detector, "--detector")
        if self.limit is not None and self.images is None:
            raise VidinvertError("--limit applies to --images; for videos use --sample or --max-frames")
        if self.max_frames is not None and self.images is not None:
            raise VidinvertError("--max-frames applies to videos; for images use --limit or --sample")
        for name in ("sample", "max_frames", "limit", "batch_size", "metric_size"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise VidinvertError(f"--{name.replace('_', '-')} must be at least 1, got {v}")
        if self.metric_size is not None and self.metric_size < 11:
            raise VidinvertError("--metric-size must be at least 11 px (the SSIM window)")
        if self.resume and self.overwrite:
            raise VidinvertError("--resume keeps finished results and --overwrite discards them: give one")
        ModelChoice(self.encoder, self.generator, self.weights_dir, self.device, self.dtype).check()


# Video-only options that --images refuses, when the user gave them, with the reason.
VIDEO_ONLY = {
    "modality": ("--modality", "it picks between RAVDESS clips held twice"),
    "detector": ("--detector", "--images takes aligned faces, no face is detected"),
}


def refuse_video_options(given) -> None:
    """One-line VidinvertError for the first video-only option in ``given`` (names given on purpose)."""
    for name, (flag, why) in VIDEO_ONLY.items():
        if name in given:
            raise VidinvertError(f"{flag} applies to videos, not to --images ({why}): leave it out")


def _check_out_dir(run: EvalRun) -> str | None:
    """None when the output folder may be used, else the error message (checked on rank 0)."""
    out = Path(run.out)
    if out.exists() and not out.is_dir():
        return f"--out {out} exists and is not a folder"
    cache = out / CACHE_DIR
    previous = (out / SUMMARY_NAME).exists() or (cache.is_dir() and any(cache.glob("*.json")))
    if previous and not (run.resume or run.overwrite):
        return (f"{out} holds results of an earlier run: pass --resume to skip the finished items,"
                f" --overwrite to start again, or choose another --out")
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create the output folder {cache}: {exc.strerror}"
    return None


def _file_id(path: Path) -> dict[str, Any]:
    return {"name": Path(path).name, "size": Path(path).stat().st_size}


def _cache_path(out: Path, item: MediaItem) -> Path:
    return Path(out) / CACHE_DIR / f"{item.cache_name}.json"


def _read_cache(path: Path, item: MediaItem, fingerprint: dict) -> ItemResult | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if data.get("fingerprint") != fingerprint or data.get("result", {}).get("key") != item.key:
        return None
    return ItemResult.from_dict(data["result"])


def _write_cache(path: Path, result: ItemResult, fingerprint: dict) -> None:
    write_json(path, {"version": CACHE_VERSION, "fingerprint": fingerprint, "result": result.to_dict()})


def run_eval(run: EvalRun, progress: Progress | None = None,
             on_ready: Callable[[dict], None] | None = None) -> dict[str, Any] | None:
    """Run the benchmark; the summary dict on rank 0 (None on the other ranks).

    ``on_ready(info)`` is called once the models are loaded (device, models, item counts).
    Unreadable items are skipped and counted, never raised.
    """
    run.check()
    compute = resolve_compute(run.device, run.dtype)
    ctx = distributed.context_from_env()
    device = distributed.device_for(ctx, compute.device)
    compute = Compute(device, compute.dtype, compute.fell_back, compute.reason)
    # rank 0 waits at the gather for the slowest rank's whole slice of videos
    ctx = distributed.init_process_group(ctx, device, timeout=GATHER_TIMEOUT)
    try:
        return _run(run, ctx, compute, progress, on_ready)
    finally:
        distributed.shutdown()


def _run(run: EvalRun, ctx: distributed.DistContext, compute, progress: Progress | None,
         on_ready: Callable[[dict], None] | None) -> dict[str, Any] | None:
    t_start = time.perf_counter()
    if run.mode == "video":
        items, selection = discover_videos(run.videos, run.modality, run.sample, run.seed)
    else:
        items, selection = discover_images(run.images, run.sample, run.seed, run.limit)

    problem = _check_out_dir(run) if ctx.is_main else None
    problem = distributed.broadcast_from_main(problem)
    if problem:
        raise VidinvertError(problem)

    enc_path, gen_path = model_files(run.encoder, run.generator, run.weights_dir)
    inverter = Inverter.from_files(enc_path, gen_path, compute)
    suite = MetricSuite.load(run.weights_dir, compute.device, metric_size=run.metric_size)
    batch_size = run.batch_size or (4 if compute.device.type == "cpu" else 16)
    # a ceiling, halved when memory runs out and kept for the rest of this rank's slice
    sizes = BatchSize(batch_size, "eval", device=compute.device)

    detector = None
    face_cfg = None
    if run.mode == "video":

        face_cfg = FaceConfig(detector=run.detector, weights_dir=str(run.weights_dir) if run.weights_dir else None,
                              device=str(compute.device))
        detector = make_detector(face_cfg.detector, face_cfg.weights_dir, face_cfg.device,
                                 min_face=face_cfg.min_face, min_face_px=face_cfg.min_face_px)

    fingerprint = {
        "version": CACHE_VERSION, "mode": run.mode, "encoder": _file_id(enc_path), "generator": _file_id(gen_path),
        "dtype": str(compute.dtype), "max_frames": run.max_frames, "metrics": suite.describe(),
        "detector": getattr(detector, "name", None),
    }
    mine = distributed.shard(items, ctx)
    models = {"encoder": str(enc_path), "generator": str(gen_path), "size": inverter.size,
              "identity": suite.describe()["identity"], "lpips": suite.describe()["lpips"],
              "detector": getattr(detector, "name", None)}
    if ctx.is_main:
        warn_cpu_fallback(compute, run.device)
    if on_ready is not None:
        on_ready({"device": compute.describe(), "items": len(items), "mine": len(mine), "rank": ctx.rank,
                  "world_size": ctx.world_size, "models": models, "selection": selection})
    if progress is not None:
        progress("total", len(mine))

    results, from_cache = _evaluate_slice(run, mine, inverter, suite, sizes, detector, face_cfg,
                                          fingerprint, progress)
    seconds = time.perf_counter() - t_start

    gathered = distributed.gather_to_main(ctx, {"rank": ctx.rank, "results": [r.to_dict() for r in results],
                                                "seconds": seconds, "from_cache": from_cache,
                                                "batch": batch_report([sizes, getattr(detector, "batch", None)])})
    if not ctx.is_main:
        return None
    all_results = [ItemResult.from_dict(d) for part in gathered for d in part["results"]]
    timing = {
        "wall_seconds": max(p["seconds"] for p in gathered),
        "world_size": ctx.world_size,
        "seconds_per_item": _mean([r.seconds for r in all_results if r.ok]),
        "seconds_per_frame": (sum(r.seconds for r in all_results if r.ok)
                              / max(1, sum(r.evaluated for r in all_results if r.ok))),
        "items_from_cache": sum(p["from_cache"] for p in gathered),
    }
    backoff = {f"rank {p['rank']}": p["batch"] for p in gathered}  # start, final and reductions per rank
    method = Path(enc_path).stem
    summary = summarize(all_results, run.mode, selection=selection, extra={
        "method": method, "models": models, "device": compute.describe(),
        "batch_size": batch_size, "batch_backoff": backoff, "max_frames": run.max_frames,
        "metric_settings": suite.describe(), "conventions": suite.conventions(), "timing": timing,
    })
    write_report(run.out, all_results, summary, method)
    _write_run_json(run, enc_path, gen_path, timing, backoff)
    return summary


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _evaluate_slice(run: EvalRun, mine: list[MediaItem], inverter, suite: MetricSuite, sizes: BatchSize,
                    detector, face_cfg, fingerprint: dict,
                    progress: Progress | None) -> tuple[list[ItemResult], int]:
    """This rank's results in item order, and how many came from the cache."""
    def tick(kind: str, n: int) -> None:
        if progress is not None and n:
            progress(kind, n)

    done: dict[str, ItemResult] = {}
    if run.resume:
        for it in mine:
            cached = _read_cache(_cache_path(run.out, it), it, fingerprint)
            if cached is not None:
                done[it.key] = cached
        if done:
            log.info(f"--resume: {len(done)} of {len(mine)} items already finished")
            tick("item", len(done))
    from_cache = len(done)
    todo = [it for it in mine if it.key not in done]

    if run.mode == "video":
        cfg = VideoEvalConfig(batch_size=sizes.start, max_frames=run.max_frames, face=face_cfg)
        for it in todo:
            res = evaluate_video(it, inverter, suite, cfg, detector=detector, progress=lambda n: tick("frames", n),
                                 batch_size=sizes)
            if res.status != "unreadable":  # a broken file is retried by --resume (it fails fast)
                _write_cache(_cache_path(run.out, it), res, fingerprint)
            done[it.key] = res
            tick("item", 1)
    else:
        # images: progress per batch; every finished image is cached for --resume
        step = sizes.start * 8
        for start in range(0, len(todo), step):
            chunk = todo[start:start + step]
            for res, it in zip(evaluate_images(chunk, inverter, suite, sizes.start,
                                               progress=lambda n: tick("item", n), sizes=sizes), chunk):
                if res.ok:
                    _write_cache(_cache_path(run.out, it), res, fingerprint)
                done[it.key] = res
    return [done[it.key] for it in mine], from_cache


def _write_run_json(run: EvalRun, enc_path: Path, gen_path: Path, timing: dict, backoff: dict) -> None:
    weights = {"encoder": enc_path, "generator": gen_path,
               "lpips-alexnet": find("lpips-alexnet", run.weights_dir), "arcface": find("arcface", run.weights_dir)}
    write_json(Path(run.out) / "run.json", run_record(command="eval", config=run, weights=weights, timings=timing,
                                                      extra={"batch_size": backoff}))
