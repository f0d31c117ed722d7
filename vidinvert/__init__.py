"""vidinvert: edit faces in real videos through a pretrained StyleGAN2 and the Feature-Style encoder.

The Python API is the CLI's: build a request, call one function::

    from vidinvert import EditRequest, run_edit
    result = run_edit(EditRequest(inputs=("clip.mp4",), attr=("smile",), strength="2"))
    result.items[0].outputs      # {"smile": Path("clip.smile.mp4")}
    result.items[0].report       # identity consistency, flicker, frames, timings

The names below load on first use, so ``import vidinvert.<module>`` never pulls in the jobs (base
modules read the version from :mod:`vidinvert.version`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vidinvert.version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from vidinvert.errors import VidinvertError
    from vidinvert.pipeline.job import run_edit, run_invert
    from vidinvert.pipeline.request import EditRequest, InvertRequest
    from vidinvert.pipeline.results import EditResult, InputResult
    from vidinvert.pipeline.session import Editor
    from vidinvert.pipeline.session_types import FaceInfo, Media, RenderCancelled, Rendered

_LAZY = {
    "VidinvertError": "vidinvert.errors",
    "EditRequest": "vidinvert.pipeline.request",
    "InvertRequest": "vidinvert.pipeline.request",
    "EditResult": "vidinvert.pipeline.results",
    "InputResult": "vidinvert.pipeline.results",
    "run_edit": "vidinvert.pipeline.job",
    "Editor": "vidinvert.pipeline.session",
    "Media": "vidinvert.pipeline.session_types",
    "Rendered": "vidinvert.pipeline.session_types",
    "FaceInfo": "vidinvert.pipeline.session_types",
    "RenderCancelled": "vidinvert.pipeline.session_types",
    "run_invert": "vidinvert.pipeline.job",
}

__all__ = ["EditRequest", "EditResult", "Editor", "FaceInfo", "InputResult", "InvertRequest", "Media", "RenderCancelled",
           "Rendered", "VidinvertError", "__version__", "run_edit", "run_invert"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vidinvert' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
