"""``vidinvert train``: train / resume / export an encoder (each a call to one library function).

Shapes::

    vidinvert train CONFIG [--set KEY=VALUE ...] [--run-dir DIR] [--resume] [--weights-dir DIR]
    vidinvert train --resume --run-dir DIR            # continue from the latest checkpoint
    vidinvert train export RUN_DIR OUT.pth            # the official bare state-dict format

``vidinvert train CONFIG`` is short for ``vidinvert train run CONFIG``: the ``train`` group runs
its ``run`` command when the first argument is not a sub-command name. Multi-GPU:
``torchrun --nproc_per_node 8 -m vidinvert train CONFIG --run-dir DIR``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer
from typer.core import TyperGroup

from vidinvert.cli import common


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


def register(app: typer.Typer) -> None:
    train_app = common.command_group(
        cls=_DefaultRunGroup,
        name="train",
        help="Train a Feature-Style encoder: [bold]vidinvert train configs/ffhq.yaml --run-dir runs/ffhq[/bold].",
        no_args_is_help=True,
    )

    def run(
        config: ConfigArg = None,
        sets: SetOpt = None,
        run_dir: RunDirOpt = None,
        resume: ResumeOpt = False,
        weights_dir: common.WeightsDirOpt = None,
        device: Annotated[Optional[str], typer.Option("--device", help="Override the config's device (auto | cuda | cpu).")] = None,
    ) -> common.Shown | None:
        """Train (or with --resume continue) an encoder; [bold]vidinvert train CONFIG[/bold] is short for this."""
        from vidinvert.train.job import TrainRequest, run_training

        request = TrainRequest(config, tuple(sets or ()), run_dir, resume, weights_dir, device)
        try:
            with _TrainProgress() as progress:
                summary = run_training(request, progress)
        except KeyboardInterrupt:
            hint = request.resume_hint()
            if hint is not None:
                common.err.print(f"[yellow]interrupted: {hint}[/yellow]")
            raise
        return None if summary is None else common.Shown(summary, lambda: _render_train(summary))

    common.command(train_app, "run")(run)

    def export(
        run_dir: Annotated[Path, typer.Argument(help="A training run folder.", show_default=False)],
        out: Annotated[Path, typer.Argument(help="Output .pth (bare encoder state dict).", show_default=False)],
        checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", help="A checkpoint file instead of the latest.")] = None,
        overwrite: common.OverwriteOpt = False,
    ) -> common.Shown:
        """Write a run's encoder in the official format: [bold]vidinvert train export runs/ffhq enc.pth[/bold]."""
        from vidinvert.train.export import export_run

        s = export_run(run_dir, out, checkpoint=checkpoint, overwrite=overwrite)
        return common.Shown(s, lambda: common.out.print(
            f"{s['output']} (iteration {s['iteration']}, {s['parameters']:,} parameters)"))

    common.command(train_app, "export")(export)
    app.add_typer(train_app, name="train")


def _render_train(summary: dict) -> None:
    state = "finished" if summary["finished"] else "stopped"
    common.out.print(f"{state} at iteration {summary['iteration']}: {summary['checkpoint']}")
    if summary["finished"]:
        common.out.print(f"encoder: {Path(summary['run_dir']) / 'encoder.pth'}")


__all__ = ["register"]
