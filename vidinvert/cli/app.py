"""The Typer application and the ``vidinvert`` entry point.

One error type (:class:`~vidinvert.errors.VidinvertError`) is rendered once, as a red line, with
a non-zero exit; ``--debug`` re-raises so the traceback is shown. Ctrl-C exits with 130.
"""

from __future__ import annotations

import sys
from typing import Annotated, Optional, Sequence

import typer
from typer.exceptions import TyperException

from vidinvert.cli import common
from vidinvert.errors import VidinvertError
from vidinvert.version import __version__

app = common.command_group(
    name="vidinvert",
    help="Edit faces in real videos through a pretrained StyleGAN2 (Feature-Style encoder).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vidinvert {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and results.")] = False,
) -> None:
    common.state.debug = debug
    common.state.quiet = quiet
    common.setup_logging()


def _register_commands() -> None:
    # Each module adds its commands to ``app``; imports are cheap (heavy imports happen inside commands).
    from vidinvert.cli import (
        directions_cmd,
        doctor,
        eval_cmd,
        info,
        jobs,
        manifest_cmd,
        studio_cmd,
        train_cmd,
        weights_cmd,
    )

    for module in (jobs, info, eval_cmd, train_cmd, directions_cmd, weights_cmd, doctor, manifest_cmd, studio_cmd):
        module.register(app)


_register_commands()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (also used by ``python -m vidinvert``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    common.state.debug = "--debug" in args
    common.state.as_json = False
    common.setup_logging()
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=args, prog_name="vidinvert", standalone_mode=False)
        return int(rv) if isinstance(rv, int) else 0
    except typer.Exit as exc:
        return exc.exit_code
    except TyperException as exc:  # usage errors (bad option, missing argument)
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            common.render_error(VidinvertError(exc.message))
        return exc.exit_code
    except typer.Abort:
        common.err.print("[red]aborted[/red]")
        return 130
    except KeyboardInterrupt:
        common.err.print("[red]interrupted[/red]")
        return 130
    except VidinvertError as exc:
        if common.state.debug:
            raise
        common.render_error(exc)
        return exc.exit_code
    except Exception as exc:  # a bug (or the machine's limits): still one line unless --debug
        if common.state.debug:
            raise
        common.render_error(resource_error(exc) or exc)
        return 1


def resource_error(exc: BaseException) -> VidinvertError | None:
    """The machine's limits (GPU or host memory, a full disk) as an actionable one-line error."""
    import errno

    from vidinvert.memory import is_out_of_memory, memory_error_line

    if is_out_of_memory(exc):  # outside the batches, which halve themselves (vidinvert.memory)
        return VidinvertError(memory_error_line(exc))
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" writing {exc.filename}" if exc.filename else ""
        return VidinvertError(f"no space left on the disk{where}: free some space and run again")
    return None


def entry(argv: Sequence[str] | None = None) -> None:
    """Console entry point: run :func:`main` and exit with its code.

    A rank started by ``torchrun`` (``WORLD_SIZE`` > 1) leaves with ``os._exit`` once its outputs
    are written and flushed: after ``destroy_process_group`` the Gloo/NCCL worker threads can
    still abort the interpreter's finalisation (SIGABRT), which would turn a finished run into a
    failed one.
    """
    import logging
    import os

    code = main(argv)
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    raise SystemExit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()
