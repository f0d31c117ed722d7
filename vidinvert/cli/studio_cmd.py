"""``vidinvert studio [INPUT]``: parse the options into one :class:`~vidinvert.studio.request.StudioRequest`
(generated from its fields, like ``edit``'s), check it (torch- and gradio-free), then start the page.
Gradio is imported only here, inside the command, so no other command loads it."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Annotated, Optional

import typer

from vidinvert.cli import common
from vidinvert.cli.jobs import option_parameter
from vidinvert.studio.request import StudioRequest

InputArg = Annotated[Optional[Path], typer.Argument(
    help="A clip or photo to open (or a folder to choose from; default: the current folder).", show_default=False)]

_HELP = """A local web page to see an edit on any frame before rendering it: [bold]vidinvert studio clip.mp4[/bold].

    Sliders for every edit option, before | after on any frame, then the whole clip rendered exactly as
    the equivalent `vidinvert edit` command line (shown on the page) renders it.

    Needs the studio extra: pip install "vidinvert\\[studio]"."""


def build_request(options: dict) -> StudioRequest:
    """The request from parsed options."""
    return StudioRequest(input=options.get("input"),
                         **{f.name: options.get(f.name, f.default) for f in StudioRequest.option_fields()})


def studio(**options) -> common.Shown:
    request = build_request(options)
    request.check()
    from vidinvert.studio.server import serve

    serve(request, announce=lambda line: common.err.print(line, markup=False, highlight=False, soft_wrap=True))
    return common.Shown({"stopped": True}, lambda: None)


def _signature() -> inspect.Signature:
    hints = typing.get_type_hints(StudioRequest)
    params = [inspect.Parameter("input", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=InputArg)]
    params += [option_parameter(f, hints[f.name]) for f in StudioRequest.option_fields()]
    return inspect.Signature(params)


studio.__signature__ = _signature()  # type: ignore[attr-defined]
studio.__doc__ = _HELP


def register(app: typer.Typer) -> None:
    common.command(app, "studio")(studio)
