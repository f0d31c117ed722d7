"""The video form of ``invert`` / ``edit``: many inputs, preview, resume, report, run.json."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

from vidinvert.cli import common
from vidinvert.errors import VidinvertError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv")


def _output_path(src: Path, tag: str, output: Path | None, out_dir: Path | None, preview: bool) -> Path:
    if output is not None:
        return output
    suffix = src.suffix.lower() if src.suffix.lower() in VIDEO_SUFFIXES else ".mp4"
    tag = f"{tag}.preview" if preview else tag
    return (out_dir or src.parent) / f"{src.stem}.{tag}{suffix}"


def check_video_outputs(src: Path, tags: Sequence[str], output: Path | None, out_dir: Path | None,
                        preview: bool, overwrite: bool) -> list[Path]:
    """The output path of each tag for ``src``, each checked (type, existing file, the input itself)."""
    from vidinvert.fileio import check_output

    paths = [_output_path(src, tag, output, out_dir, preview) for tag in tags]
    for path in paths:
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            raise VidinvertError(f"{path}: unsupported output type: use .mp4, .mov or .mkv")
        check_output(path, overwrite=overwrite, inputs=[src])
    return paths


def _default_batch(inverter) -> int:
    import torch

    dev = inverter.compute.device
    if dev.type != "cuda":
        return 2
    free, _ = torch.cuda.mem_get_info(dev)
    per_frame = 0.6 * 2**30 * (inverter.size / 1024) ** 2  # activations of one 1024 frame, generous
    return int(max(1, min(32, free * 0.6 // per_frame)))


def _report_table(rep: dict):
    from rich.table import Table

    t = Table(title=f"{Path(rep['input']).name}: identity and stability", show_lines=False)
    t.add_column("stream")
    t.add_column("identity consistency", justify="right")
    t.add_column("identity vs source", justify="right")
    t.add_column("flicker (- source)", justify="right")

    def f(x, nd=4):
        return "-" if x is None else f"{x:.{nd}f}"

    ic, ids, fl, fms = rep["identity_consistency"], rep["identity_to_source"], rep["flicker"], rep["flicker_minus_source"]
    t.add_row("source", f(ic.get("source")), "1" if rep["identity_embedder"] else "-", f(fl.get("source")))
    for name in ["inversion"] + [k for k in ic if k not in ("source", "inversion")]:
        t.add_row(name, f(ic.get(name)), f(ids.get(name)), f"{f(fl.get(name))} ({f(fms.get(name), 5)})")
    fr = rep["frames"]
    cap = (f"frames: {fr['edited']} edited ({fr['detected']} detected, {fr['interpolated']} interpolated), "
           f"{fr['passthrough']} passed through; identity: {rep['identity_embedder'] or 'off'}; "
           f"{rep['fps_end_to_end']} frames/s end to end on {rep['device']}")
    t.caption = cap
    return t


def run_videos(kind, inverter, inputs, output, out_dir, strength, edits, batch_size, save_latents, overwrite,
               as_json, weights_dir, opts) -> int:
    """Run every input; a failing input is reported and the others still run. Exit code 1 if any failed."""
    from vidinvert.face.masks import load_parsing_masker
    from vidinvert.face.smooth import SmoothConfig
    from vidinvert.face.stage import FaceConfig
    from vidinvert.face.track import TrackConfig, parse_face_select
    from vidinvert.fileio import write_json
    from vidinvert.metrics.identity import make_identity_embedder
    from vidinvert.pipeline.video import VideoConfig
    from vidinvert.runinfo import run_json_path, run_record
    from vidinvert.timespec import TimeRange, parse_time

    if output is not None and len(inputs) > 1:
        raise VidinvertError("--output names one file: with several inputs use --out-dir")
    if output is not None and len(edits) > 1:
        raise VidinvertError("--output names one file: with several edits use --out-dir (or --combine)")
    report_path: Path | None = opts.get("report")
    if report_path is not None and len(inputs) > 1 and not report_path.is_dir():
        raise VidinvertError("--report with several inputs must be an existing folder")
    preview = bool(opts.get("preview"))
    start, end = opts.get("start"), opts.get("end")
    if preview and end is None:
        s0 = parse_time(start) if start else None
        if s0 is None or s0.seconds is not None:
            end = f"{(s0.seconds if s0 else 0.0) + 2.0}s"
        else:
            end = f"{s0.frame + 60}f"
    time_range = TimeRange.parse(start, end)
    cfg = VideoConfig(
        strength=strength, batch_size=batch_size or _default_batch(inverter), paste_mode=opts.get("paste", "delta"),
        color_match=bool(opts.get("color_match")), latent_sigma=float(opts.get("smooth_latents") or 0.0),
        fine_mean=bool(opts.get("fine_mean")), codec=opts.get("codec", "libx264"), crf=float(opts.get("crf", 18)),
        preset=opts.get("preset", "medium"), overwrite=overwrite, resume=bool(opts.get("resume")),
        side_by_side=bool(opts.get("side_by_side")), frames_dir=opts.get("frames_dir"),
        report_identity=bool(opts.get("identity", True)),
    )
    device = inverter.compute.device
    try:
        sigma_center, sigma_axes = (float(x) for x in str(opts.get("crop_sigma", "2,4")).split(","))
        if sigma_center < 0 or sigma_axes < 0:
            raise ValueError
    except ValueError:
        raise VidinvertError(f"--crop-sigma {opts.get('crop_sigma')!r}: give two sigmas in frames, e.g. 2,4") from None
    face_cfg = FaceConfig(
        detector=opts.get("detector", "auto"), weights_dir=str(weights_dir) if weights_dir else None,
        device=str(device), track=TrackConfig(select=parse_face_select(opts.get("face", "largest")),
                                              flow_refine=bool(opts.get("flow_refine"))),
        smooth=SmoothConfig(sigma_center=sigma_center, sigma_axes=sigma_axes, max_gap=float(opts.get("max_gap", 0.5))),
    )
    embedder = make_identity_embedder(weights_dir, device) if cfg.report_identity else None
    masker = load_parsing_masker(weights_dir, device)
    failures: list[str] = []
    reports = []
    for src in inputs:
        try:
            rep = _one_video(kind, inverter, src, output, out_dir, edits, cfg, face_cfg, time_range, save_latents,
                             preview, embedder, masker, len(inputs) > 1)
        except VidinvertError as exc:
            if len(inputs) == 1:
                raise
            common.render_error(VidinvertError(f"{src}: {exc.message}"))
            failures.append(str(src))
            continue
        record = run_record(command=kind, config={"video": cfg, "face": face_cfg, "range": [start, end],
                                                  "edits": [e.name for e in edits]},
                            weights={"encoder": inverter.files.get("encoder"),
                                     "generator": inverter.files.get("generator")},
                            timings=rep["stages"], extra={"report": {k: v for k, v in rep.items() if k != "per_frame"}})
        for out_path in rep["outputs"].values():
            write_json(run_json_path(Path(out_path)), record)
        if report_path is not None:
            dest = report_path / f"{Path(src).stem}.report.json" if report_path.is_dir() else report_path
            write_json(dest, rep)
        if preview:
            rep["preview"] = _estimate(src, time_range, rep)
        reports.append(rep)
        if not as_json:
            common.out.print(_report_table(rep))
            for out_path in rep["outputs"].values():
                common.out.print(f"wrote {out_path}")
            if preview:
                p = rep["preview"]
                common.out.print(f"preview: {p['frames_rendered']} frames at {p['fps']:.2f} frames/s; "
                                 f"the whole clip ({p['frames_total']} frames) needs about {p['estimated_seconds']:.0f} s")
    if as_json:
        common.print_json({"videos": reports, "failed": failures})
    if failures:
        common.err.print(f"[red]{len(failures)} of {len(inputs)} inputs failed[/red]")
        return 1
    return 0


def _estimate(src, time_range, rep) -> dict:
    from vidinvert.video import open_video

    total = open_video(src).count() or 0
    frames = rep["frames"]["total"]
    fps = rep["fps_end_to_end"] or 0.0
    return {"frames_rendered": frames, "fps": fps, "frames_total": total,
            "estimated_seconds": (total / fps) if fps else None}


def _one_video(kind, inverter, src, output, out_dir, edits, cfg, face_cfg, time_range, save_latents, preview,
               embedder, masker, many):
    from vidinvert.pipeline.video import OutputSpec, VideoJob, VideoRun
    from vidinvert.pipeline.workdir import WorkDir
    from vidinvert.video import probe

    src = Path(src)
    probe(src, count_frames=False)  # clear one-line errors for bad inputs, before any work
    specs = [("inverted", None)] if kind == "invert" else [(e.name, e) for e in edits]
    paths = check_video_outputs(src, [t for t, _ in specs], output, out_dir, preview, cfg.overwrite)
    outs = tuple(OutputSpec(tag, path, e) for (tag, e), path in zip(specs, paths))
    latents_dir = None
    if save_latents is not None:
        latents_dir = save_latents if not many else save_latents / src.stem
        if latents_dir.exists() and any(latents_dir.iterdir()) and not cfg.overwrite:
            raise VidinvertError(f"--save-latents folder {latents_dir} is not empty: pass --overwrite or choose another")
    if cfg.frames_dir is not None and many:
        import dataclasses

        cfg = dataclasses.replace(cfg, frames_dir=cfg.frames_dir / src.stem)
    job = VideoJob(source=src, outputs=outs, config=cfg, face=face_cfg, time_range=time_range,
                   save_latents=latents_dir)
    workdir = WorkDir.open(job, inverter) if cfg.resume else None
    with common.StageProgress() as prog:
        from vidinvert.video import open_video

        total = open_video(src, time_range=time_range).count()
        tasks = {"invert": prog.add("invert", total=total), "render": prog.add("render", total=total)}
        run = VideoRun(inverter, job, embedder=embedder, masker=masker,
                       progress=lambda stage, n: prog.advance(tasks[stage], n), workdir=workdir)
        t0 = time.perf_counter()
        rep = run.run()
        rep["wall_seconds"] = round(time.perf_counter() - t0, 3)
    if workdir is not None:
        workdir.remove()
    return rep
