"""``vidinvert invert`` and ``vidinvert edit``: parse the options into one request, call
:func:`vidinvert.pipeline.job.run_edit`, render the result.

The options are generated from the request's fields (:func:`vidinvert.pipeline.request.option`
declares each one's default, help, panel and flags), so the CLI and the library cannot disagree and a
new request field is a new option without touching this module.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from vidinvert.cli import common
from vidinvert.pipeline.request import FACE_OPTIONS, VIDEO_ONLY, EditRequest, InvertRequest

# The options about clips and faces that both commands parse.
VIDEO_OPTIONS = tuple(o for o in VIDEO_ONLY + FACE_OPTIONS if o in InvertRequest.defaults())

InputsArg = Annotated[List[Path], typer.Argument(
    help="Input videos or images; with --out-dir also folders (recursive), quoted globs and list files "
         "(.txt/.lst/.list, one path a line): a corpus run.", show_default=False)]


def _cli_type(hint):
    """A request field's type -> the type Typer parses (choices and tuples as their text)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        return Optional[List[args[0]]]
    if args and type(None) in args:  # X | None
        inner = next(a for a in args if a is not type(None))
        return Optional[_cli_type(inner)]
    if isinstance(hint, type) and issubclass(hint, str):
        return str  # a Choice enum: the request checks the value (one line naming the choices)
    return hint


def option_parameter(f: dataclasses.Field, hint) -> inspect.Parameter:
    """The Typer parameter of one request field (see :func:`~vidinvert.pipeline.request.option`)."""
    meta = f.metadata
    choices = getattr(type(f.default), "values", None)
    help_text = meta["help"].replace("{choices}", " | ".join(choices()) if choices else "")
    flags = meta["flags"] or ("--" + f.name.replace("_", "-"),)
    default = f.default
    if isinstance(default, tuple):
        default = None  # a repeatable option: nothing given
    elif choices is not None:
        default = str(default)
    opt = typer.Option(*flags, help=help_text, rich_help_panel=meta["panel"], **meta["click"])
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[_cli_type(hint), opt])


def request_parameters(cls: type[InvertRequest]) -> list[inspect.Parameter]:
    """Every option field of ``cls``, as Typer parameters, in declaration order."""
    hints = typing.get_type_hints(cls)
    return [option_parameter(f, hints[f.name]) for f in cls.option_fields()]


def build_request(cls: type[InvertRequest], options: dict, explicit: frozenset[str]) -> InvertRequest:
    """The request from parsed options (repeatable options as tuples; ``explicit``: those given)."""
    values = {}
    for f in cls.option_fields():
        v = options.get(f.name, f.default)
        values[f.name] = tuple(v or ()) if isinstance(f.default, tuple) else v
    return cls(inputs=tuple(options["inputs"]), **values, explicit=explicit)


def request_argv(request: InvertRequest) -> list[str]:
    """The command line that parses back into ``request``: ``[kind, inputs..., options...]`` (the
    inverse of :func:`build_request`). An option is written when it was given (``explicit`` or not
    its default); repeatable options once per value; ``--x/--no-x`` flags as either."""
    args = [request.kind, *(str(p) for p in request.inputs)]
    for f in type(request).option_fields():
        value = getattr(request, f.name)
        if not request.given(f.name) or value is None:
            continue
        flags = f.metadata["flags"] or ("--" + f.name.replace("_", "-"),)
        flag = flags[0]
        if isinstance(value, bool):
            on, _, off = flag.partition("/")
            if value or off:
                args.append(on if value else off)
        elif isinstance(value, tuple):
            for v in value:
                args += [flag, str(v)]
        else:
            args += [flag, str(value)]
    return args


def command_line(request: InvertRequest) -> str:
    """``vidinvert edit ...``: the shell command that runs ``request`` (see :func:`request_argv`)."""
    import shlex

    return shlex.join(["vidinvert", *request_argv(request)])


def _run(kind: str, options: dict) -> common.Shown:
    """Build the request from the parsed options (``explicit``: those the user gave) and run it; each
    input's table and files are printed as it finishes, the whole result at the end (``--json``)."""
    from vidinvert.cli.render import failure_count, result_printer
    from vidinvert.pipeline.corpus_job import corpus_mode
    from vidinvert.pipeline.job import run_edit

    options = dict(options)
    explicit = frozenset(options.pop("explicit", frozenset()))
    request = build_request(EditRequest if kind == "edit" else InvertRequest, options, explicit)
    # a corpus prints one plain line per input itself (and rank 0 the whole corpus)
    printer = None if corpus_mode(request) else result_printer(common.state.as_json, len(request.inputs))
    result = run_edit(request, progress=common.stage_progress, on_result=printer)
    return common.Shown(result, lambda: failure_count(result), code=result.exit_code)


def _signature(cls: type[InvertRequest]) -> inspect.Signature:
    fixed = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
             inspect.Parameter("inputs", inspect.Parameter.KEYWORD_ONLY, annotation=InputsArg)]
    return inspect.Signature(fixed + request_parameters(cls))


def _command(kind: str, cls: type[InvertRequest], doc: str):
    def command(ctx: typer.Context, **options) -> common.Shown:
        explicit = frozenset(n for n in options if common.given_on_command_line(ctx, n))
        return _run(kind, {**options, "explicit": explicit})

    command.__signature__ = _signature(cls)  # type: ignore[attr-defined]
    command.__doc__ = doc
    command.__name__ = kind
    return command


_INVERT_HELP = """Invert faces without editing (the reconstruction): [bold]vidinvert invert clip.mp4[/bold] or
    photo.jpg.

    Aligned images with --no-align; folders, globs and list files with --out-dir."""
_EDIT_HELP = """Edit faces in videos and photos: [bold]vidinvert edit clip.mp4 --attr smile[/bold] -> clip.smile.mp4.

    photo.jpg -> photo.smile.jpg; aligned images with --no-align; a corpus with --out-dir."""


def register(app: typer.Typer) -> None:
    common.command(app, "invert")(_command("invert", InvertRequest, _INVERT_HELP))
    common.command(app, "edit")(_command("edit", EditRequest, _EDIT_HELP))
