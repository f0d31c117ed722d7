"""One dispatch by input kind: the planned inputs of a request through the clip, photo or aligned-image
job, used by :func:`~vidinvert.pipeline.job.run_edit` and by the corpus runner alike.

Every job reads the resolved :class:`~vidinvert.pipeline.settings.JobSettings` and the loaded
:class:`~vidinvert.pipeline.context.JobContext`; each input's result is an
:class:`~vidinvert.pipeline.results.InputResult` with ``run.json`` beside its outputs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from vidinvert.errors import VidinvertError
from vidinvert.metrics.identity import paired_identity
from vidinvert.pipeline.context import JobContext
from vidinvert.pipeline.images import run_aligned_images
from vidinvert.pipeline.photo import INVERSION, PhotoConfig, edit_photo
from vidinvert.pipeline.plan import PlannedInput
from vidinvert.pipeline.records import write_records
from vidinvert.pipeline.request import ALIGNED, VIDEO
from vidinvert.pipeline.results import InputResult, ProgressFactory
from vidinvert.pipeline.settings import JobSettings
from vidinvert.pipeline.video import VideoRun
from vidinvert.pipeline.video_config import OutputSpec, VideoJob
from vidinvert.pipeline.workdir import WorkDir
from vidinvert.video import open_video


def run_planned(s: JobSettings, ctx: JobContext, planned: Sequence[PlannedInput], progress: ProgressFactory, *,
                many: bool, notify: Callable[[InputResult], None] = lambda r: None) -> dict[Path, InputResult]:
    """Run the good ``planned`` inputs (aligned images as one batched job, then each clip and photo
    in order), each kind with its own settings (:meth:`JobSettings.for_kind`). A failing input is its
    result's ``error`` when ``many``; with one input it raises. ``notify`` gets each result at once."""
    results: dict[Path, InputResult] = {}
    images = [p for p in planned if p.kind == ALIGNED]
    if images:
        for r in run_aligned_images(s.for_kind(ALIGNED), ctx, images, progress):
            results[r.source] = r
            notify(r)
    for p in planned:
        if p.kind == ALIGNED:
            continue
        run_one = run_video if p.kind == VIDEO else run_photo
        try:
            results[p.source] = run_one(s.for_kind(p.kind), ctx, p, progress, many=many)
        except VidinvertError as exc:
            if not many:
                raise
            results[p.source] = InputResult(p.source, p.kind, error=exc.message)
        notify(results[p.source])
    return results


def video_job(s: JobSettings, ctx: JobContext, p: PlannedInput, *, many: bool) -> VideoJob:
    """The :class:`~vidinvert.pipeline.video_config.VideoJob` of one clip of the request."""
    req, inv = s.request, ctx.inverter
    edits = [None] if req.kind == "invert" else [spec for _, spec in ctx.edits]
    outs = tuple(OutputSpec(tag, path, e) for (tag, path), e in zip(p.outputs.items(), edits))
    return VideoJob.from_settings(s, p.source, outs, compute=inv.compute, image_size=inv.size,
                                  frames_dir=_per_input(req.frames_dir, p.source.stem, many),
                                  save_latents=_per_input(req.save_latents, p.source.stem, many))


def _per_input(base: Path | None, name: str, many: bool) -> Path | None:
    return None if base is None else (base / name if many else base)


def run_video(s: JobSettings, ctx: JobContext, p: PlannedInput, progress: ProgressFactory, *,
              many: bool) -> InputResult:
    """One clip through :class:`~vidinvert.pipeline.video.VideoRun` (resumable with ``resume``)."""
    req = s.request
    job = video_job(s, ctx, p, many=many)
    workdir = WorkDir.open(job, ctx.inverter) if req.resume else None
    total = open_video(p.source, time_range=job.time_range).count()
    with progress(p.source.name, {"invert": total, "render": total}, "frames") as advance:
        run = VideoRun(ctx.inverter, job, embedder=ctx.embedder, masker=ctx.masker, progress=advance,
                       workdir=workdir, plan=ctx.plan)
        t0 = time.perf_counter()
        rep = run.run()
        rep["wall_seconds"] = round(time.perf_counter() - t0, 3)
    if ctx.plan is not None and ctx.plan.style is not None and ctx.embedder is not None:
        streams = {}  # every track's frames of each edit output
        for name in run.state.edit_names:
            mats = [m for ts in run.state.tracks.values() if (m := ts.edits[name].matrix()) is not None]
            streams[name] = torch.cat(mats) if mats else None
        rep["identity_to_reference"] = identity_to_reference(ctx.embedder, ctx.plan.style.crop, streams)
    if workdir is not None:
        workdir.remove()
    if req.preview:
        fps = rep["fps_end_to_end"] or 0.0
        whole = open_video(p.source).count() or 0
        rep["preview"] = {"frames_rendered": rep["frames"]["total"], "fps": fps, "frames_total": whole,
                          "estimated_seconds": (whole / fps) if fps else None}
    outputs = {k: Path(v) for k, v in rep["outputs"].items()}
    write_records(s, ctx, p, outputs, rep, config={"video": job.config, "face": job.face,
                                                    "range": [req.start, req.end]})
    return InputResult(p.source, p.kind, outputs=outputs, report=rep)


def identity_to_reference(embedder, reference_crop, streams: dict) -> dict:
    """``--style``: each stream's mean identity to the reference crop (the embedder's measure;
    ``streams``: name -> ``[N,D]`` embeddings or None)."""
    ref = embedder.embed(reference_crop)
    out = {}
    for name, m in streams.items():
        if m is None or len(m) == 0:
            out[name] = None
            continue
        per = paired_identity(m, ref.expand(len(m), -1).to(m.device), getattr(embedder, "measure", "cosine"))
        out[name] = float(per.mean())
    return out


def run_photo(s: JobSettings, ctx: JobContext, p: PlannedInput, progress: ProgressFactory, *,
              many: bool) -> InputResult:
    """One raw photo: every chosen face aligned, inverted and edited in one batch, pasted back."""
    req = s.request
    tags = dict(ctx.edits)
    invert = req.kind == "invert"
    outputs = {(INVERSION if invert else tag): path for tag, path in p.outputs.items()}
    latents = None
    if req.save_latents is not None:
        latents = req.save_latents / f"{p.source.stem}.npz" if many else req.save_latents
    with progress(p.source.name, {"photo": 1}, "photos") as advance:
        res = edit_photo(ctx.inverter, p.source, outputs=outputs, edits=[sp for sp in tags.values() if sp is not None],
                         plan=ctx.plan, masker=ctx.masker, embedder=ctx.embedder if req.identity else None,
                         save_latents=latents, config=PhotoConfig.from_settings(s))
        advance("photo", 1)
    written = {tag: res.outputs[INVERSION if invert else tag] for tag in p.outputs}
    rep = res.as_dict()
    write_records(s, ctx, p, written, rep, config={"photo": {"face": req.face, "min_face": req.min_face}})
    return InputResult(p.source, p.kind, outputs=written, report=rep)
