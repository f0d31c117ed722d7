"""``vidinvert directions from-text`` (a prompt -> a StyleSpace direction file) and ``directions
stylespace-stats`` (a relevance matrix for any generator); both join the ``directions`` group."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vidinvert.choices import ModelChoice
from vidinvert.cli import common
from vidinvert.specs import TEXT_BETA, TEXT_NEUTRAL

_NEUTRAL, _BETA = TEXT_NEUTRAL, TEXT_BETA


def from_text(
    target: Annotated[str, typer.Argument(help="What the edited face should look like, e.g. \"a face with a beard\".",
                                          show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="The direction file (.npz) for edit --direction.",
                                      show_default=False)],
    neutral: Annotated[str, typer.Option("--neutral", help="The phrase the target is measured against.")] = _NEUTRAL,
    beta: Annotated[float, typer.Option("--beta", help="Channel threshold in (0, 1): higher, fewer channels move.")] = _BETA,
    matrix: Annotated[Optional[Path], typer.Option(
        "--matrix", help="Relevance matrix (default StyleCLIP's fs3.npy; stylespace-stats makes one).")] = None,
    overwrite: common.OverwriteOpt = False,
    generator: common.GeneratorOpt = None,
    weights_dir: common.WeightsDirOpt = None,
    device: common.DeviceOpt = "auto",
) -> common.Shown:
    """A StyleCLIP global direction from words: [bold]vidinvert directions from-text "a face with a beard" -o beard.npz[/bold].

    Then: vidinvert edit clip.mp4 --direction beard.npz --strength 4.1 (alpha; about -10..10)."""
    from vidinvert.pipeline.text_jobs import FromTextRequest, run_from_text

    s = run_from_text(FromTextRequest(target, out, neutral=neutral, beta=beta, matrix=matrix, overwrite=overwrite,
                                      models=ModelChoice(None, generator, weights_dir, device)))

    def render() -> None:
        top = ", ".join(f"{c['channel']} ({c['std']:+.2f})" for c in s["strongest"])
        common.out.print(f"{s['output']}: {s['channels_kept']} channels with relevance >= {s['beta']:g}; "
                         f"strongest {top}", markup=False)

    return common.Shown(s, render)


def stylespace_stats(
    out: Annotated[Path, typer.Option("--out", "-o", help="The relevance matrix (.npz); an unfinished one is resumed.",
                                      show_default=False)],
    samples: Annotated[int, typer.Option("--samples", min=1, help="Sampled images per channel (StyleCLIP: 100).")] = 100,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sampled images.")] = 0,
    max_resolution: Annotated[int, typer.Option(
        "--max-resolution", min=4, help="Conv style layers up to this resolution (StyleCLIP's file: 128).")] = 128,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Images per synthesis batch.")] = 8,
    generator: common.GeneratorOpt = None,
    weights_dir: common.WeightsDirOpt = None,
    device: common.DeviceOpt = "auto",
) -> common.Shown:
    """Measure a relevance matrix for --text with any generator, as StyleCLIP does.

    Each channel is moved by -5 and +5 standard deviations on every sampled image and CLIP's image
    embeddings compared: for the 1024 generator that is 5376 channels x 100 images x 2, about a million
    syntheses: about 24 days on a 2-core CPU; on a GPU not measured yet (docs/benchmarks.md says how to
    estimate it). Resumable: run the same command again after a stop."""
    from vidinvert.pipeline.text_jobs import StatsRequest, run_stylespace_stats

    request = StatsRequest(out, samples=samples, seed=seed, max_resolution=max_resolution, batch=batch,
                           models=ModelChoice(None, generator, weights_dir, device))
    with common.StageProgress() as prog:
        task: dict = {}

        def progress(done: int, total: int) -> None:
            if "t" not in task:
                task["t"] = prog.add("channels", total=total, unit="channels")
                task["last"] = done - 1
            prog.advance(task["t"], done - task["last"])
            task["last"] = done

        s = run_stylespace_stats(request, progress)
    return common.Shown(s, lambda: common.out.print(
        f"{s['output']}: {s['channels']} channels over {s['samples']} images ({s['seconds']:.0f} s)", markup=False))


def add_commands(group: typer.Typer) -> None:
    common.command(group, "from-text")(from_text)
    common.command(group, "stylespace-stats")(stylespace_stats)
