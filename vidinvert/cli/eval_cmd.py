"""``vidinvert eval``: the inversion benchmark on a video folder (Table 3, Figure 9) or aligned images (Table 1).

Several GPUs or machines: ``torchrun --nproc-per-node N -m vidinvert eval DIR --out OUT`` (each
rank takes a slice of the videos; rank 0 writes the report).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vidinvert.choices import Modality
from vidinvert.cli import common

SourceArg = Annotated[
    Optional[str],
    typer.Argument(metavar="DIR", show_default=False,
                   help="Videos: a folder (RAVDESS layout or any), a quoted glob, or a list file."),
]
ImagesOpt = Annotated[Optional[str], typer.Option("--images", help="Aligned face images (folder, glob or list file) instead of videos.")]
OutOpt = Annotated[Optional[Path], typer.Option("--out", help="Output folder (default: ./eval-<source name>).")]
ModalityOpt = Annotated[str, typer.Option(
    "--modality", help="RAVDESS clips held twice: video-only (default) or audio-video; the other is the fallback.")]
SampleOpt = Annotated[Optional[int], typer.Option("--sample", min=1, help="Evaluate N items drawn at random (reproducible with --seed).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of --sample.")]
MaxFramesOpt = Annotated[Optional[int], typer.Option("--max-frames", min=1, help="Only the first N frames of each video.")]
LimitOpt = Annotated[Optional[int], typer.Option(
    "--limit", min=1, help="Images: only the first N in name order (e.g. 1000 for CelebA-HQ).")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Skip the items already finished in --out.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Discard the results of an earlier run in --out.")]
BatchOpt = Annotated[Optional[int], typer.Option(
    "--batch-size", min=1, help="Most crops per batch, halved when memory runs out (default: 4 on CPU, 16 on CUDA).")]
MetricSizeOpt = Annotated[Optional[int], typer.Option(
    "--metric-size", min=11, help="Resize crops to this size for SSIM/PSNR/MSE/LPIPS (default: the generator's).")]


def _default_out(source: str) -> Path:
    name = Path(source.rstrip("/\\")).name
    name = "".join(c for c in name if c not in "*?[]") or "run"
    return Path(f"eval-{Path(name).stem or name}")


def _context(ctx: typer.Context) -> None: ...


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether the user gave option ``name`` (on the command line or through its environment variable)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


def refuse_video_options(ctx: typer.Context) -> None:
    """One-line VidinvertError for the first video-only option given with ``--images`` (the library's rule)."""
    from vidinvert.evaluate.runner import VIDEO_ONLY
    from vidinvert.evaluate.runner import refuse_video_options as refuse

    refuse({name for name in VIDEO_ONLY if _given(ctx, name)})


def _source_options(
    source: SourceArg = None,
    images: ImagesOpt = None,
    out: OutOpt = None,
    modality: ModalityOpt = Modality.VIDEO_ONLY.value,
    sample: SampleOpt = None,
    seed: SeedOpt = 0,
    max_frames: MaxFramesOpt = None,
    limit: LimitOpt = None,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
) -> None: ...


def _eval_options(
    batch_size: BatchOpt = None,
    detector: common.DetectorOpt = "auto",
    metric_size: MetricSizeOpt = None,
) -> None: ...


def eval_command(**o) -> common.Shown | None:
    """Measure inversion quality: SSIM, PSNR, MSE, LPIPS, ID and identity consistency.

    Writes OUT/videos.csv (or images.csv), summary.json, table.md, identity_consistency.png
    and run.json, and prints the table. Several GPUs or machines:
    torchrun --nproc-per-node N -m vidinvert eval DIR --out OUT.
    """
    from vidinvert.distributed import context_from_env
    from vidinvert.evaluate.runner import EvalRun, run_eval

    ctx = o.pop("ctx")
    source, images = o.pop("source"), o["images"]
    run = EvalRun(out=o.pop("out") or _default_out(source or images or "run"), videos=source, **o,
                  explicit=frozenset(n for n in o if _given(ctx, n)))
    run.check()
    main_rank = context_from_env().is_main
    unit = "videos" if run.mode == "video" else "images"
    with common.StageProgress(quiet=common.state.quiet or not main_rank) as prog:
        tasks: dict[str, int] = {}

        def on_ready(info: dict) -> None:
            if main_rank:  # said once the source and models are known to be fine
                shard = f", {info['mine']} on this rank of {info['world_size']}" if info["world_size"] > 1 else ""
                common.info(f"eval: {info['items']} {unit}{shard} on {info['device']}; identity: "
                            f"{info['models']['identity'] or 'none'}; LPIPS: {info['models']['lpips'] or 'none'}")

        def progress(kind: str, n: int) -> None:
            if kind == "total":
                tasks["item"] = prog.add(unit, total=n, unit=unit)
                if run.mode == "video":
                    tasks["frames"] = prog.add("frames", total=None, unit="frames")
            elif kind in tasks:
                prog.advance(tasks[kind], n)

        summary = run_eval(run, progress=progress, on_ready=on_ready)
    if summary is None:  # not rank 0: rank 0 reports
        return None
    return common.Shown(summary, lambda: _render(summary, run, unit))


def _render(summary: dict, run, unit: str) -> None:
    from vidinvert.evaluate.report import markdown_table

    common.out.print(markdown_table(summary, summary.get("method", "ours")), markup=False, end="")
    c = summary["counts"]
    if c["skipped"]:
        common.notice(f"{c['skipped']} of {c['selected']} {unit} skipped (see summary.json 'skipped')")
    common.info(f"results in {run.out}/: " + ", ".join(Path(p).name for p in summary.get("files", {}).values()))


def register(app: typer.Typer) -> None:
    common.command(app, "eval")(common.options_of(_context, _source_options, common.model_options, _eval_options)(
        eval_command))
