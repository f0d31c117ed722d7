"""``vidinvert train`` (train / resume / export an encoder) and ``vidinvert directions fit``.

Shapes::

    vidinvert train CONFIG [--set KEY=VALUE ...] [--run-dir DIR] [--resume] [--weights-dir DIR]
    vidinvert train --resume --run-dir DIR            # continue from the latest checkpoint
    vidinvert train export RUN_DIR OUT.pth            # the official bare state-dict format
    vidinvert directions fit LATENTS... --labels CSV --out FILE.npy [--space wplus|w]

``vidinvert train CONFIG`` is short for ``vidinvert train run CONFIG``: the ``train`` group runs
its ``run`` command when the first argument is not a sub-command name. Multi-GPU:
``torchrun --nproc_per_node 8 -m vidinvert train CONFIG --run-dir DIR``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, List, Optional

import typer
from typer.core import TyperGroup

from vidinvert.cli import common
from vidinvert.errors import VidinvertError


class _DefaultRunGroup(TyperGroup):
    """A group whose ``run`` command is the default: ``train CONFIG`` == ``train run CONFIG``."""

    default_command = "run"

    def parse_args(self, ctx, args):  # noqa: D102
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


ConfigArg = Annotated[
    Optional[Path],
    typer.Argument(help="Training configuration (YAML), e.g. configs/ffhq.yaml; optional with --resume.",
                   show_default=False),
]
SetOpt = Annotated[
    Optional[List[str]],
    typer.Option("--set", "-s", help="Override a config value: --set optim.lr=5e-5 (repeatable)."),
]
RunDirOpt = Annotated[
    Optional[Path],
    typer.Option("--run-dir", help="Run folder for checkpoints and logs (default: runs/CONFIG-NAME)."),
]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue the run folder's latest checkpoint.")]


class _TrainProgress:
    """Rich progress bar on stderr: iterations, it/s, ETA, the latest losses."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
        from rich.table import Column

        self.bar = Progress(
            BarColumn(bar_width=20),
            MofNCompleteColumn(table_column=Column(no_wrap=True, min_width=9)),
            TextColumn("{task.fields[rate]}", table_column=Column(no_wrap=True, min_width=10)),
            TimeRemainingColumn(),
            TextColumn("{task.fields[losses]}", table_column=Column(no_wrap=True, overflow="ellipsis")),
            console=common.err,
            disable=common.state.quiet,
            transient=False,
        )
        self.task = None
        self._t0 = None
        self._n0 = 0

    def __enter__(self):
        return self  # the bar starts with the first finished step (errors before it print alone)

    def __exit__(self, *exc):
        if self.task is not None:
            self.bar.stop()
        return False

    def __call__(self, done: int, total: int, losses: dict[str, float]) -> None:
        import time

        now = time.perf_counter()
        if self.task is None:
            self.bar.start()
            self.task = self.bar.add_task("train", total=total, completed=done, rate="", losses="")
            self._t0, self._n0 = now, done
        rate = f"{(done - self._n0) / (now - self._t0):.2f} it/s" if done > self._n0 and now > self._t0 else ""
        text = " ".join(f"{k} {v:.3g}" for k, v in losses.items())
        self.bar.update(self.task, total=total, completed=done, rate=rate, losses=text)


def _run_train(config: Path | None, sets: list[str] | None, run_dir: Path | None, resume: bool,
               weights_dir: Path | None, device: str | None, as_json: bool) -> int:
    from vidinvert.distributed import context_from_env
    from vidinvert.train.config import load_config
    from vidinvert.train.loop import train

    overrides = list(sets or [])
    if device:
        overrides.append(f"device={device}")
    if run_dir is None:
        if config is None:
            raise VidinvertError("give a CONFIG file, or --run-dir DIR with --resume")
        run_dir = Path("runs") / config.stem
    cfg = load_config(config) if config is not None else None
    if config is not None:
        load_config(config, overrides)  # a bad --set is reported before anything starts
    info = context_from_env()
    if info.is_main:
        what = "resuming" if resume else "training"
        common.info(f"{what} into {run_dir}" + (f" ({info.world_size} processes)" if info.distributed else ""))
    if info.is_main:
        with _TrainProgress() as progress:
            summary = train(cfg, run_dir, resume=resume, overrides=tuple(overrides), weights_dir=weights_dir,
                            progress=progress)
    else:
        summary = train(cfg, run_dir, resume=resume, overrides=tuple(overrides), weights_dir=weights_dir)
    if not info.is_main:
        return 0
    if as_json:
        common.print_json(summary)
    else:
        state = "finished" if summary["finished"] else "stopped"
        common.out.print(f"{state} at iteration {summary['iteration']}: {summary['checkpoint']}")
        if summary["finished"]:
            common.out.print(f"encoder: {Path(summary['run_dir']) / 'encoder.pth'}")
    return 0


def register(app: typer.Typer) -> None:
    train_app = common.command_group(
        cls=_DefaultRunGroup,
        name="train",
        help="Train a Feature-Style encoder: [bold]vidinvert train configs/ffhq.yaml --run-dir runs/ffhq[/bold].",
        no_args_is_help=True,
    )

    @train_app.command("run")
    def run(
        config: ConfigArg = None,
        sets: SetOpt = None,
        run_dir: RunDirOpt = None,
        resume: ResumeOpt = False,
        weights_dir: common.WeightsDirOpt = None,
        device: Annotated[Optional[str], typer.Option("--device", help="Override the config's device (auto | cuda | cpu).")] = None,
        as_json: common.JsonOpt = False,
    ) -> None:
        """Train (or with --resume continue) an encoder; [bold]vidinvert train CONFIG[/bold] is short for this."""
        from vidinvert.train.checkpoint import latest_checkpoint

        try:
            _run_train(config, sets, run_dir, resume, weights_dir, device, as_json)
        except KeyboardInterrupt:
            if run_dir is not None or config is not None:
                rd = run_dir or Path("runs") / config.stem
                latest = latest_checkpoint(rd)
                if latest is not None:
                    common.err.print(f"[yellow]interrupted: continue with --resume --run-dir {rd} (from {latest.name})[/yellow]")
            raise

    @train_app.command("export")
    def export(
        run_dir: Annotated[Path, typer.Argument(help="A training run folder.", show_default=False)],
        out: Annotated[Path, typer.Argument(help="Output .pth (bare encoder state dict).", show_default=False)],
        checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", help="A checkpoint file instead of the latest.")] = None,
        overwrite: common.OverwriteOpt = False,
        as_json: common.JsonOpt = False,
    ) -> None:
        """Write a run's encoder in the official format: [bold]vidinvert train export runs/ffhq enc.pth[/bold]."""
        from vidinvert.train.export import export_run

        summary = export_run(run_dir, out, checkpoint=checkpoint, overwrite=overwrite)
        if as_json:
            common.print_json(summary)
        else:
            common.out.print(f"{summary['output']} (iteration {summary['iteration']}, {summary['parameters']:,} parameters)")

    app.add_typer(train_app, name="train")

    directions_app = common.command_group(
        name="directions",
        help="Edit directions: discover them without data, preview them, or fit one from labelled latents.",
        no_args_is_help=True,
    )

    @directions_app.command("fit")
    def fit(
        latents: Annotated[List[Path], typer.Argument(help="Latent .npz files (--save-latents) or folders of chunks.", show_default=False)],
        labels: Annotated[Path, typer.Option(
            "--labels", help="CSV with columns latent_file, frame_index, label (0/1).", show_default=False)],
        out: Annotated[Path, typer.Option("--out", "-o", help="Output direction .npy.", show_default=False)],
        space: Annotated[str, typer.Option("--space", help="wplus: (1, L*D) boundary; w: (1, D) direction.")] = "wplus",
        svm_c: Annotated[float, typer.Option("--svm-c", help="SVM regularisation C (smaller: smoother, for few frames).")] = 1.0,
        overwrite: common.OverwriteOpt = False,
        as_json: common.JsonOpt = False,
    ) -> None:
        """Fit an InterFaceGAN direction (linear SVM normal) for [bold]vidinvert edit --direction[/bold]."""
        from vidinvert.edit.fit import SPACES, fit_from_files, save_direction

        if space not in SPACES:
            raise VidinvertError(f"--space must be one of {', '.join(SPACES)}, got {space!r}")
        from vidinvert.fileio import check_output

        check_output(out, overwrite=overwrite, inputs=[*latents, labels])
        res = fit_from_files(latents, labels, space, c=svm_c)
        save_direction(res.direction, out, overwrite=overwrite)
        summary = {"output": str(out), "space": space, "shape": list(res.direction.shape),
                   "train_accuracy": res.accuracy, "positive": res.n_positive, "negative": res.n_negative}
        if res.accuracy < 0.75:
            logging.getLogger(__name__).warning(
                f"the SVM separates the labels poorly (training accuracy {res.accuracy:.2f}): check the labels"
            )
        if as_json:
            common.print_json(summary)
        else:
            common.out.print(
                f"{out} {tuple(res.direction.shape)} ({space}; {res.n_positive} positive, {res.n_negative} negative,"
                f" training accuracy {res.accuracy:.3f})"
            )

    from vidinvert.cli.directions_cmd import add_commands

    add_commands(directions_app)
    app.add_typer(directions_app, name="directions")


__all__ = ["register"]
