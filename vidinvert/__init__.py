"""vidinvert: edit faces in real videos through a pretrained StyleGAN2 and the Feature-Style encoder.

The Python API is the CLI's: build a request, call one function::

    from vidinvert import EditRequest, run_edit
    result = run_edit(EditRequest(inputs=("clip.mp4",), attr=("smile",), strength="2"))
    result.items[0].outputs      # {"smile": Path("clip.smile.mp4")}
    result.items[0].report       # identity consistency, flicker, frames, timings
"""

__version__ = "0.1.0"

from vidinvert.errors import VidinvertError  # noqa: E402
from vidinvert.pipeline.request import EditRequest, InvertRequest  # noqa: E402

__all__ = ["EditRequest", "InvertRequest", "VidinvertError", "__version__", "run_edit", "run_invert"]


def __getattr__(name: str):
    # run_edit loads on first use (its module is light, but keeps ``import vidinvert`` minimal).
    if name in ("run_edit", "run_invert"):
        from vidinvert.pipeline import job

        return getattr(job, name)
    raise AttributeError(f"module 'vidinvert' has no attribute {name!r}")
