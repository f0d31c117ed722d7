"""``run_edit``: the one library call behind ``vidinvert invert`` and ``vidinvert edit``.

Order of work: the request's values are checked, every input is probed and every output checked
(:mod:`vidinvert.pipeline.plan`, no torch), the bad inputs are reported, and only then do the
models load; each input then runs (a failing input does not stop the others) and its outputs
get a ``run.json`` (and the report, with ``report``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager, Iterator

from vidinvert.errors import VidinvertError
from vidinvert.pipeline.plan import PlannedInput, plan_inputs
from vidinvert.pipeline.request import ALIGNED, PHOTO, VIDEO, EditRequest, InvertRequest

# progress(title, totals per stage, unit) -> a context whose value is advance(stage, n)
ProgressFactory = Callable[[str, dict, str], ContextManager[Callable[[str, int], None]]]


@contextlib.contextmanager
def _no_progress(title: str, totals: dict, unit: str) -> Iterator[Callable[[str, int], None]]:
    yield lambda stage, n: None


@dataclass
class InputResult:
    """What happened to one input: its outputs, its report (clips; images with ``report``), or
    the one-line reason it failed."""

    source: Path
    kind: str
    outputs: dict[str, Path] = field(default_factory=dict)
    report: dict | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class EditResult:
    """The result of :func:`run_edit`: one :class:`InputResult` per input (in order), the
    device, the model files and the seconds spent checking inputs, loading models and running."""

    items: list[InputResult]
    device: str | None = None
    models: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def failed(self) -> list[InputResult]:
        return [r for r in self.items if not r.ok]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def as_dict(self) -> dict:
        """JSON-able: ``inputs`` (one entry each), ``videos`` (the clips' reports), ``outputs``
        (every file written), ``failed`` (inputs), ``device``, ``models``, ``seconds``."""
        return {"inputs": [{"input": str(r.source), "kind": r.kind, "outputs": {k: str(v) for k, v in r.outputs.items()},
                            "error": r.error} for r in self.items],
                "videos": [r.report for r in self.items if r.ok and r.kind == VIDEO],
                "images": [r.report for r in self.items if r.ok and r.kind != VIDEO and r.report is not None],
                "outputs": [str(v) for r in self.items for v in r.outputs.values()],
                "failed": [str(r.source) for r in self.failed], "device": self.device, "models": self.models,
                "seconds": self.seconds}


def run_edit(request: InvertRequest, *, progress: ProgressFactory | None = None,
             on_result: Callable[[InputResult], None] | None = None) -> EditResult:
    """Run an :class:`~vidinvert.pipeline.request.EditRequest` (or ``InvertRequest``).

    ``on_result`` is called once per input as soon as it is done or known to fail (bad inputs
    first, before any model loads). Request-wide problems raise :class:`VidinvertError`; a
    single input's problem is its result's ``error``, and with one input it raises. A corpus
    (``out_dir`` with a folder, glob or list input, ``shard``, or torchrun) runs through
    :func:`~vidinvert.pipeline.corpus_job.run_corpus_edit`.
    """
    from vidinvert.pipeline.corpus_job import corpus_mode, run_corpus_edit

    if corpus_mode(request):  # folders, globs, list files, --shard or torchrun: see corpus_job
        return run_corpus_edit(request, progress=progress, on_result=on_result)
    t0 = time.perf_counter()
    request.check()
    planned = plan_inputs(request)
    notify = on_result or (lambda r: None)
    results: dict[Path, InputResult] = {}
    for p in planned:
        if p.error is not None:
            if len(planned) == 1:
                raise VidinvertError(f"{p.source}: {p.error}")
            results[p.source] = InputResult(p.source, p.kind, error=p.error)
            notify(results[p.source])
    good = [p for p in planned if p.error is None]
    seconds = {"check_inputs": round(time.perf_counter() - t0, 4)}
    if not good:
        return EditResult([results[p.source] for p in planned], seconds=seconds)
    t1 = time.perf_counter()
    check_direction_names(request)
    ctx = load_context(request, {p.kind for p in good})
    seconds["load_models"] = round(time.perf_counter() - t1, 4)
    t2 = time.perf_counter()
    images = [p for p in good if p.kind == ALIGNED]
    if images:
        from vidinvert.pipeline.images import run_aligned_images

        for r in run_aligned_images(request.for_kind(ALIGNED), ctx, images, progress or _no_progress):
            results[r.source] = r
            notify(r)
    for p in good:
        if p.kind == ALIGNED:
            continue
        run_one = run_video if p.kind == VIDEO else run_photo
        results[p.source] = _run_safely(run_one, request.for_kind(p.kind), ctx, p, progress or _no_progress,
                                        many=len(planned) > 1)
        notify(results[p.source])
    seconds["run"] = round(time.perf_counter() - t2, 4)
    inv = ctx.inverter
    return EditResult([results[p.source] for p in planned], device=inv.compute.describe(),
                      models={k: str(v) for k, v in inv.files.items()}, seconds=seconds)


run_invert = run_edit


@dataclass
class JobContext:
    """What the inputs of one request share once loaded: the inverter, each output's edit
    (``(tag, EditSpec | None)`` in the request's tag order; None is the style alone), the
    :class:`~vidinvert.pipeline.edits.EditPlan`, the identity embedder and the parsing masker."""

    inverter: object
    edits: tuple = ()
    plan: object | None = None
    embedder: object | None = None
    masker: object | None = None

    @property
    def strength(self):
        return 0.0 if self.plan is None else self.plan.strength


def check_direction_names(req: InvertRequest) -> None:
    """``--attr`` and ``--keep`` names resolve to files here, before the models load (seconds)."""
    if not isinstance(req, EditRequest):
        return
    from vidinvert.edit.directions import resolve_attr

    for name in req.attr:
        resolve_attr(name, req.weights_dir)
    for name in req.keep:
        if not (Path(name).suffix in (".npy", ".pt", ".pth") or Path(name).exists()):
            resolve_attr(name, req.weights_dir)


def load_context(req: InvertRequest, kinds: set[str]) -> JobContext:
    import logging

    from vidinvert.device import resolve_compute
    from vidinvert.engine import Inverter
    from vidinvert.weights import model_files

    enc_path, gen_path = model_files(req.encoder, req.generator, req.weights_dir)
    compute = resolve_compute(req.device, req.dtype)
    if compute.fell_back and req.device != "cpu":
        logging.getLogger("vidinvert").warning(
            "running on the CPU: CUDA is not available" + (" although --device cuda was asked for"
                                                           if req.device.startswith("cuda") else "")
            + " (this is slow; pass --device cpu to silence this)")
    inverter = Inverter.from_files(enc_path, gen_path, compute)
    ctx = JobContext(inverter)
    device = compute.device
    raw = kinds & {VIDEO, PHOTO}
    if raw:
        from vidinvert.face.masks import load_parsing_masker

        ctx.masker = load_parsing_masker(req.weights_dir, device)
    if isinstance(req, EditRequest):
        _edit_context(req, ctx)
    if req.identity and (VIDEO in kinds or req.report is not None):
        from vidinvert.metrics.identity import make_identity_embedder

        ctx.embedder = make_identity_embedder(req.weights_dir, device)
    return ctx


def _edit_context(req: EditRequest, ctx: JobContext) -> None:
    """The outputs' edits and the job's :class:`~vidinvert.pipeline.edits.EditPlan`."""
    from vidinvert.pipeline.edits import EditPlan, StyleReference
    from vidinvert.timespec import parse_strength

    inv = ctx.inverter
    specs = _direction_specs(req, inv) if (req.attr or req.direction) else ()
    ctx.edits = tuple(zip(req.tags, specs or (None,)))
    plan = EditPlan(strength=req.parsed_strength(), feature_keep=parse_strength(req.feature_keep))
    if req.region:
        from vidinvert.face.regions import RegionMasker, parse_regions

        plan.regions = RegionMasker(parse_regions(req.region), ctx.masker)
    if req.style is not None:
        from vidinvert.edit.layers import parse_layers, rows_mask
        from vidinvert.edit.style import reference_crop

        rows = rows_mask(parse_layers(req.style_layers, inv.n_latent, what="--style-layers"), inv.n_latent)
        detector = None
        if not req.no_align:
            from vidinvert.pipeline.photo import make_photo_detector

            detector = make_photo_detector(req.detector, req.weights_dir, inv.compute.device)
        crop = reference_crop(req.style, inv.size, detector=detector, align=not req.no_align,
                              device=inv.compute.device)
        plan.style = StyleReference(req.style, inv.invert(crop).w.cpu(), parse_strength(req.style_strength), rows,
                                    crop=crop)
    ctx.plan = plan


def _direction_specs(req: EditRequest, inv) -> tuple:
    """The direction edits, restricted to ``layers`` and made orthogonal to ``keep``, named by
    the output tags."""
    import dataclasses as dc

    from vidinvert.edit.conditional import restrict_and_condition
    from vidinvert.edit.directions import EditSpec, load_named

    n, d = inv.n_latent, inv.style_dim
    dirs = [load_named(name, n, d, req.weights_dir) for name in (*req.attr, *req.direction)]
    if req.layers is not None or req.keep:
        kept = [load_named(k, n, d, req.weights_dir) for k in req.keep]
        dirs = restrict_and_condition(dirs, n_latent=n, layers=req.layers, keep=kept)
    if req.combine:
        specs = (EditSpec("+".join(x.name for x in dirs), tuple(dirs), tuple(1.0 for _ in dirs)),)
    else:
        specs = tuple(EditSpec(x.name, (x,), (1.0,)) for x in dirs)
    return tuple(dc.replace(sp, name=tag) for sp, tag in zip(specs, req.tags))


def _run_safely(run_one, req, ctx, p: PlannedInput, progress, *, many: bool) -> InputResult:
    try:
        return run_one(req, ctx, p, progress, many=many)
    except VidinvertError as exc:
        if not many:
            raise
        return InputResult(p.source, p.kind, error=exc.message)


def video_job(req: InvertRequest, ctx: JobContext, p: PlannedInput, *, many: bool):
    """The :class:`~vidinvert.pipeline.video.VideoJob` of one clip of the request."""
    from vidinvert.face.smooth import SmoothConfig
    from vidinvert.face.stage import FaceConfig
    from vidinvert.face.track import TrackConfig, parse_face_select
    from vidinvert.pipeline.video_config import OutputSpec, VideoConfig, VideoJob

    inv = ctx.inverter
    sigma_center, sigma_axes = req.crop_sigmas()
    cfg = VideoConfig(
        strength=ctx.strength, batch_size=req.batch_size or _default_batch(inv), paste_mode=req.paste,
        color_match=req.color_match, latent_sigma=float(req.smooth_latents), fine_mean=req.fine_mean,
        codec=req.codec, crf=float(req.crf), preset=req.preset, overwrite=req.overwrite, resume=req.resume,
        side_by_side=req.side_by_side, report_identity=req.identity,
        frames_dir=None if req.frames_dir is None else (req.frames_dir / p.source.stem if many else req.frames_dir))
    face = FaceConfig(
        detector=req.detector, weights_dir=str(req.weights_dir) if req.weights_dir else None,
        device=str(inv.compute.device),
        track=TrackConfig(select=parse_face_select(req.face), flow_refine=req.flow_refine),
        smooth=SmoothConfig(sigma_center=sigma_center, sigma_axes=sigma_axes, max_gap=float(req.max_gap)))
    edits = [None] if req.kind == "invert" else [spec for _, spec in ctx.edits]
    outs = tuple(OutputSpec(tag, path, e) for (tag, path), e in zip(p.outputs.items(), edits))
    latents_dir = None
    if req.save_latents is not None:
        latents_dir = req.save_latents / p.source.stem if many else req.save_latents
    return VideoJob(source=p.source, outputs=outs, config=cfg, face=face, time_range=time_range_of(req),
                    save_latents=latents_dir)


def time_range_of(req: InvertRequest):
    """The request's ``start``/``end``; a preview without ``end`` renders 2 s (or 60 frames)."""
    from vidinvert.timespec import TimeRange, parse_time

    start, end = req.start, req.end
    if req.preview and end is None:
        s0 = parse_time(start) if start else None
        if s0 is None or s0.seconds is not None:
            end = f"{(s0.seconds if s0 else 0.0) + 2.0}s"
        else:
            end = f"{s0.frame + 60}f"
    return TimeRange.parse(start, end)


def _default_batch(inverter) -> int:
    import torch

    dev = inverter.compute.device
    if dev.type != "cuda":
        return 2
    free, _ = torch.cuda.mem_get_info(dev)
    per_frame = 0.6 * 2**30 * (inverter.size / 1024) ** 2  # activations of one 1024 frame, generous
    return int(max(1, min(32, free * 0.6 // per_frame)))


def run_video(req, ctx, p: PlannedInput, progress, *, many: bool) -> InputResult:
    from vidinvert.pipeline.video import VideoRun
    from vidinvert.pipeline.workdir import WorkDir
    from vidinvert.video import open_video

    job = video_job(req, ctx, p, many=many)
    workdir = WorkDir.open(job, ctx.inverter) if req.resume else None
    total = open_video(p.source, time_range=job.time_range).count()
    with progress(p.source.name, {"invert": total, "render": total}, "frames") as advance:
        run = VideoRun(ctx.inverter, job, embedder=ctx.embedder, masker=ctx.masker, progress=advance,
                       workdir=workdir, plan=ctx.plan)
        t0 = time.perf_counter()
        rep = run.run()
        rep["wall_seconds"] = round(time.perf_counter() - t0, 3)
    if ctx.plan is not None and ctx.plan.style is not None and ctx.embedder is not None:
        import torch

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
    write_records(req, ctx, p, outputs, rep, config={"video": job.config, "face": job.face,
                                                      "range": [req.start, req.end]})
    return InputResult(p.source, p.kind, outputs=outputs, report=rep)


def identity_to_reference(embedder, reference_crop, streams: dict) -> dict:
    """``--style``: each stream's mean identity to the reference crop (the embedder's measure;
    ``streams``: name -> ``[N,D]`` embeddings or None)."""
    from vidinvert.metrics.identity import paired_identity

    ref = embedder.embed(reference_crop)
    out = {}
    for name, m in streams.items():
        if m is None or len(m) == 0:
            out[name] = None
            continue
        per = paired_identity(m, ref.expand(len(m), -1).to(m.device), getattr(embedder, "measure", "cosine"))
        out[name] = float(per.mean())
    return out


def write_records(req, ctx, p: PlannedInput, outputs: dict[str, Path], rep: dict | None, config: dict) -> None:
    """``run.json`` beside each output and the report where ``req.report`` says."""
    from vidinvert.fileio import write_json
    from vidinvert.runinfo import run_json_path, run_record

    inv = ctx.inverter
    extra = {"report": {k: v for k, v in rep.items() if k != "per_frame"}} if rep else {}
    fields = {f.name: getattr(req, f.name) for f in dataclasses.fields(req) if f.name != "explicit"}
    record = run_record(command=req.kind, config={"request": fields, **config, "edits": [t for t, _ in ctx.edits]},
                        weights={"encoder": inv.files.get("encoder"), "generator": inv.files.get("generator")},
                        timings=(rep or {}).get("stages", {}), extra=extra)
    for out_path in outputs.values():
        write_json(run_json_path(Path(out_path)), record)
    if req.report is not None and rep is not None:
        dest = req.report / f"{p.source.stem}.report.json" if req.report.is_dir() else req.report
        write_json(dest, rep)


def run_photo(req, ctx, p: PlannedInput, progress, *, many: bool) -> InputResult:
    """One raw photo: every chosen face aligned, inverted and edited in one batch, pasted back."""
    from vidinvert.pipeline.photo import INVERSION, edit_photo

    tags = {t: spec for t, spec in ctx.edits}
    outputs = {(INVERSION if req.kind == "invert" else tag): path for tag, path in p.outputs.items()}
    latents = None
    if req.save_latents is not None:
        latents = req.save_latents / f"{p.source.stem}.npz" if many else req.save_latents
    with progress(p.source.name, {"photo": 1}, "photos") as advance:
        res = edit_photo(ctx.inverter, p.source, edits=[s for s in tags.values() if s is not None],
                         plan=ctx.plan, face_select=req.face, detector=req.detector, paste_mode=req.paste,
                         color_match=req.color_match, masker=ctx.masker,
                         embedder=ctx.embedder if req.identity else None, min_face=req.min_face,
                         outputs=outputs, overwrite=req.overwrite, save_latents=latents, weights_dir=req.weights_dir)
        advance("photo", 1)
    written = {tag: res.outputs[INVERSION if req.kind == "invert" else tag] for tag in p.outputs}
    rep = res.as_dict()
    write_records(req, ctx, p, written, rep, config={"photo": {"face": req.face, "min_face": req.min_face}})
    return InputResult(p.source, p.kind, outputs=written, report=rep)
