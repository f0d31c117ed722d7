"""What every command shares: consoles, error rendering, the typed options.

Results go to stdout (tables, ``--json``); messages, notices and progress go to stderr,
so ``vidinvert info clip.mp4 --json | jq`` works. When stderr is not a terminal, Rich prints
plain lines (no colour, no live bars).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape

from vidinvert.errors import VidinvertError

out = Console(soft_wrap=True, highlight=False)  # results (stdout)
err = Console(stderr=True, soft_wrap=True, highlight=False)  # messages and progress (stderr)


class State:
    """Global flags set by the app callback (and ``--json``/``-q`` after a command)."""

    debug: bool = False
    quiet: bool = False
    as_json: bool = False


state = State()


def notice(message: str) -> None:
    """A one-line notice on stderr (yellow), silenced by --quiet."""
    if not state.quiet:
        err.print(f"[yellow]{message}[/yellow]", markup=True)


def loud(message: str) -> None:
    """A one-line warning that --quiet does not silence (e.g. running on the CPU by surprise)."""
    err.print(f"[bold red]{message}[/bold red]", markup=True)


def info(message: str) -> None:
    if not state.quiet:
        err.print(message, markup=False)


def print_json(obj: Any) -> None:
    """Machine-readable output on stdout, nothing else on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()


def render_error(exc: BaseException) -> None:
    """Render an error as one red line on stderr (and its few ``details`` lines, indented)."""
    msg = exc.message if isinstance(exc, VidinvertError) else f"internal error: {type(exc).__name__}: {exc}"
    msg = " ".join(str(msg).split())
    if not isinstance(exc, VidinvertError):
        msg += " (run with --debug for the traceback; please report it)"
    err.print(f"[red]error:[/red] {escape(msg)}", markup=True, highlight=False)
    for line in getattr(exc, "details", ()):
        err.print(f"  {line}", markup=False, highlight=False)


class _ConsoleHandler(logging.Handler):
    """Library log records -> one line each on stderr (warnings yellow; info hidden by --quiet)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = " ".join(record.getMessage().split())
        except Exception:  # pragma: no cover - malformed record
            return
        if record.levelno >= logging.ERROR:
            err.print(f"[red]{escape(msg)}[/red]", markup=True, highlight=False)
        elif record.levelno >= logging.WARNING and getattr(record, "loud", False):
            err.print(f"[bold red]{escape(msg)}[/bold red]", markup=True, highlight=False)  # even with --quiet
        elif record.levelno >= logging.WARNING:
            if not state.quiet:
                err.print(f"[yellow]notice:[/yellow] {escape(msg)}", markup=True, highlight=False)
        elif not state.quiet and (record.levelno >= logging.INFO or state.debug):
            err.print(msg, markup=False, highlight=False)


_handler = _ConsoleHandler()


def setup_logging() -> None:
    """Route the ``vidinvert`` loggers to the stderr console (idempotent)."""
    logger = logging.getLogger("vidinvert")
    if _handler not in logger.handlers:
        logger.addHandler(_handler)
    logger.setLevel(logging.DEBUG if state.debug else logging.INFO)
    logger.propagate = False


# ---------------------------------------------------------------------------------------------
# Shared typed options. Commands use these so one option means one thing everywhere.
# ---------------------------------------------------------------------------------------------
WeightsDirOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--weights-dir",
        help="Folder with the model files (before $VIDINVERT_HOME and ~/.cache/vidinvert).",
        envvar=None,
    ),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto | cuda | cuda:N | cpu.")]
DtypeOpt = Annotated[
    str, typer.Option("--dtype", help="auto ($VIDINVERT_DTYPE if set, else bf16 on CUDA and on CPUs with AMX-BF16 or AVX512-BF16, "
                              "fp32 elsewhere) | fp32 | bf16 | fp16.")
]
EncoderOpt = Annotated[
    Optional[str], typer.Option("--encoder", help="Encoder file or registry name (default: fs-encoder).")
]
GeneratorOpt = Annotated[
    Optional[str],
    typer.Option("--generator", help="Generator file or registry name (default: stylegan2-ffhq, else psp-ffhq)."),
]
DetectorOpt = Annotated[
    str, typer.Option("--detector", help="auto (RetinaFace if its weights are found, else dlib) | retinaface | dlib.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON result on stdout instead of a table.", rich_help_panel="Run")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and results.", rich_help_panel="Run")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")]


@dataclasses.dataclass
class Shown:
    """What a command returns to :func:`command`: ``data`` printed as JSON with ``--json`` (a dict, or
    anything with ``as_dict()``), else ``render()`` draws it for people; ``code`` is the exit code."""

    data: Any
    render: Callable[[], None] | None = None
    code: int = 0


def show(result: Shown | None) -> int:
    """The one place results are rendered: JSON on stdout with ``--json``, else the human rendering."""
    if result is None:
        return 0
    if state.as_json:
        data = result.data.as_dict() if hasattr(result.data, "as_dict") else result.data
        print_json(data)
    elif result.render is not None:
        result.render()
    return result.code


def command(group: typer.Typer, name: str, **settings: Any) -> Callable:
    """Register ``fn`` as command ``name`` of ``group`` with ``--json`` and ``-q/--quiet`` (accepted after
    the command name too); ``fn`` returns a :class:`Shown` (or None), rendered by :func:`show`."""

    def register(fn: Callable[..., Shown | None]) -> Callable:
        sig = inspect.signature(fn, eval_str=True)
        extra = [inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=JsonOpt),
                 inspect.Parameter("quiet", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=QuietOpt)]

        @functools.wraps(fn)
        def run(*args, as_json: bool = False, quiet: bool = False, **kwargs) -> None:
            state.as_json = as_json
            state.quiet = state.quiet or quiet
            code = show(fn(*args, **kwargs))
            if code:
                raise typer.Exit(code)

        params = list(sig.parameters.values())
        run.__signature__ = sig.replace(parameters=params + extra)  # type: ignore[attr-defined]
        group.command(name, **settings)(run)
        return fn

    return register


def command_group(**settings: Any) -> typer.Typer:
    """A Typer app or command group with the settings every vidinvert group shares (``-h``, rich
    help, no shell-completion commands); ``settings`` add to or override them."""
    base: dict[str, Any] = {"add_completion": False, "rich_markup_mode": "rich",
                            "context_settings": {"help_option_names": ["-h", "--help"]}}
    return typer.Typer(**{**base, **settings})


# Option groups are declared once, as the parameters of never-called functions, and a command's
# signature is assembled from them with :func:`options_of` (Typer reads ``__signature__``), so
# commands that share a group cannot drift apart in names, help or defaults.
def model_options(
    encoder: EncoderOpt = None,
    generator: GeneratorOpt = None,
    weights_dir: WeightsDirOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None: ...


def given_on_command_line(ctx: typer.Context, name: str) -> bool:
    """Whether the user gave option ``name`` (on the command line or through its environment
    variable), as opposed to its default."""
    source = ctx.get_parameter_source(name)
    return source is not None and getattr(source, "name", "") in ("COMMANDLINE", "ENVIRONMENT")


def options_of(*groups: Callable[..., None]):
    """Decorator: give a ``**options`` command the parameters of ``groups``, in order."""
    params = [p for g in groups for p in inspect.signature(g, eval_str=True).parameters.values()]

    def apply(command: Callable[..., None]) -> Callable[..., None]:
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        return command

    return apply


@contextlib.contextmanager
def stage_progress(title: str, totals: dict, unit: str):
    """A :class:`StageProgress` with one bar per stage of ``totals``; yields ``advance(stage, n)``
    (the progress factory the library jobs take)."""
    with StageProgress() as prog:
        tasks = {stage: prog.add(stage if len(totals) > 1 else title, total=total, unit=unit)
                 for stage, total in totals.items()}
        yield lambda stage, n: prog.advance(tasks[stage], n)


class StageProgress:
    """Rich progress bars (items/s and ETA) on a terminal; periodic plain lines otherwise.

    Usage::

        with StageProgress(quiet=state.quiet) as prog:
            task = prog.add("decode", total=n, unit="frames")
            prog.advance(task, 1)
    """

    def __init__(self, *, quiet: bool | None = None, plain_every_s: float = 5.0) -> None:
        self.quiet = state.quiet if quiet is None else quiet
        self.live = err.is_terminal and not self.quiet
        self.plain_every_s = plain_every_s
        self._progress = None
        self._plain: dict[int, dict] = {}

    def __enter__(self) -> StageProgress:
        if self.live:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description:<10}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=err,
                transient=False,
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
        elif not self.quiet:
            for tid in self._plain:
                self._plain_line(tid, final=True)

    def add(self, description: str, total: int | None, unit: str = "frames") -> int:
        import time

        if self._progress is not None:
            return self._progress.add_task(description, total=total, rate="", unit=unit)
        tid = len(self._plain)
        self._plain[tid] = {"desc": description, "total": total, "done": 0, "unit": unit,
                            "t0": time.perf_counter(), "last": time.perf_counter()}
        return tid

    def advance(self, task: int, n: int = 1) -> None:
        import time

        if self._progress is not None:
            t = self._progress.tasks[[x.id for x in self._progress.tasks].index(task)]
            speed = t.speed
            unit = t.fields.get("unit", "")
            rate = f"{speed:.1f} {unit}/s" if speed else ""
            self._progress.update(task, advance=n, rate=rate)
            return
        st = self._plain[task]
        st["done"] += n
        now = time.perf_counter()
        if not self.quiet and now - st["last"] >= self.plain_every_s:
            st["last"] = now
            self._plain_line(task)

    def set_total(self, task: int, total: int) -> None:
        if self._progress is not None:
            self._progress.update(task, total=total)
        else:
            self._plain[task]["total"] = total

    def _plain_line(self, task: int, final: bool = False) -> None:
        import time

        st = self._plain[task]
        el = max(time.perf_counter() - st["t0"], 1e-9)
        rate = st["done"] / el
        tot = st["total"]
        of = f"/{tot}" if tot else ""
        eta = ""
        if tot and rate > 0 and not final:
            eta = f", ETA {max(tot - st['done'], 0) / rate:.0f}s"
        err.print(f"{st['desc']}: {st['done']}{of} {st['unit']} ({rate:.1f} {st['unit']}/s{eta})",
                  markup=False, highlight=False)
