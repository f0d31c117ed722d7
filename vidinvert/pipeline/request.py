"""The typed requests of ``invert`` and ``edit``: every setting, each default declared once, here.

``vidinvert invert``/``edit`` parse their options into one of these and call
:func:`vidinvert.pipeline.job.run_edit`; Python code does the same::

    from vidinvert import EditRequest, run_edit
    result = run_edit(EditRequest(inputs=("clip.mp4",), attr=("smile",), strength="2"))

This module imports no torch (it is read when the CLI starts). :meth:`InvertRequest.check`
validates values (finite numbers, known names, the time grammar) and
:meth:`InvertRequest.refuse_inapplicable` refuses options that do not apply to an input kind.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidinvert.errors import VidinvertError

# Input kinds: a video clip, an FFHQ-aligned square image (``--no-align``), a raw photo.
VIDEO, ALIGNED, PHOTO = "video", "aligned image", "photo"

# The options of each panel of ``--help`` (also the names of the request fields).
PANELS: dict[str, tuple[str, ...]] = {
    "Inputs and outputs": ("output", "out_dir", "no_align", "overwrite", "save_latents", "report", "frames_dir",
                           "side_by_side"),
    "Models": ("encoder", "generator", "weights_dir", "device", "dtype", "batch_size"),
    "Faces": ("detector", "face", "paste", "color_match", "flow_refine"),
    "Edit": ("attr", "direction", "strength", "combine"),
    "Temporal": ("start", "end", "smooth_latents", "fine_mean", "max_gap", "crop_sigma"),
    "Encoding": ("codec", "crf", "preset"),
    "Run": ("preview", "resume", "identity"),
}

# Options that only mean something for clips (refused for images when given).
VIDEO_ONLY = ("start", "end", "smooth_latents", "fine_mean", "max_gap", "crop_sigma", "flow_refine", "codec",
              "crf", "preset", "preview", "resume", "side_by_side", "frames_dir")
# Options that need a face to be found and pasted back (refused for aligned images).
FACE_OPTIONS = ("detector", "face", "paste", "color_match")
# Options that apply only to raw inputs (refused for videos).
ALIGNED_ONLY = ("no_align",)


def _finite(name: str, value: float, *, low: float | None = None) -> float:
    flag = "--" + name.replace("_", "-")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise VidinvertError(f"{flag} {value!r}: not a number") from None
    if not math.isfinite(v):
        raise VidinvertError(f"{flag} {value}: give a finite number")
    if low is not None and v < low:
        raise VidinvertError(f"{flag} {v:g}: must be at least {low:g}")
    return v


@dataclass(frozen=True)
class InvertRequest:
    """Invert faces (reconstruction) in clips, aligned images (``no_align``) or photos.

    Paths may be given as ``str``; they are stored as :class:`~pathlib.Path`. ``explicit`` names
    the options the caller set on purpose (the CLI passes those given on the command line or in
    the environment); an option counts as given when it is named there or differs from its default.
    """

    inputs: tuple[Path, ...] = ()
    output: Path | None = None
    out_dir: Path | None = None
    no_align: bool = False
    overwrite: bool = False
    save_latents: Path | None = None
    report: Path | None = None
    frames_dir: Path | None = None
    side_by_side: bool = False
    # models
    encoder: str | None = None
    generator: str | None = None
    weights_dir: Path | None = None
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int | None = None
    # faces
    detector: str = "auto"
    face: str = "largest"
    paste: str = "delta"
    color_match: bool = False
    flow_refine: bool = False
    # temporal
    start: str | None = None
    end: str | None = None
    smooth_latents: float = 0.0
    fine_mean: bool = False
    max_gap: float = 0.5
    crop_sigma: str = "2,4"
    # encoding
    codec: str = "libx264"
    crf: float = 18.0
    preset: str = "medium"
    # run
    preview: bool = False
    resume: bool = False
    identity: bool = True
    explicit: frozenset[str] = field(default=frozenset(), compare=False)

    kind = "invert"

    def __post_init__(self) -> None:
        def path(v):
            return None if v is None else Path(v).expanduser()

        set_ = object.__setattr__
        set_(self, "inputs", tuple(Path(p).expanduser() for p in self.inputs))
        for name in ("output", "out_dir", "save_latents", "report", "frames_dir", "weights_dir"):
            set_(self, name, path(getattr(self, name)))
        set_(self, "explicit", frozenset(self.explicit))

    # ------------------------------------------------------------------------------ queries
    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every field's default (the CLI takes its option defaults from here)."""
        out = {}
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                out[f.name] = f.default_factory()  # type: ignore[misc]
        return out

    def given(self, name: str) -> bool:
        """Whether the option ``name`` was set on purpose (named in ``explicit`` or not its default)."""
        return name in self.explicit or getattr(self, name) != self.defaults()[name]

    @property
    def tags(self) -> list[str]:
        """The output tag of each output of an input (``inverted``; edits override)."""
        return ["inverted"]

    def crop_sigmas(self) -> tuple[float, float]:
        """``crop_sigma`` ``"CENTER,AXES"`` -> two finite sigmas in frames."""
        try:
            parts = [float(x) for x in str(self.crop_sigma).split(",")]
            if len(parts) != 2 or not all(math.isfinite(x) and x >= 0 for x in parts):
                raise ValueError
        except ValueError:
            raise VidinvertError(f"--crop-sigma {self.crop_sigma!r}: give two finite sigmas in frames, e.g. 2,4") from None
        return parts[0], parts[1]

    # ---------------------------------------------------------------------------- checks
    def check(self) -> None:
        """Values valid (before any input is read): finite numbers, known names, the time grammar."""
        from vidinvert.face.types import PASTE_MODES
        from vidinvert.timespec import TimeRange

        if not self.inputs:
            raise VidinvertError("no inputs given")
        _finite("smooth_latents", self.smooth_latents, low=0.0)
        _finite("max_gap", self.max_gap, low=0.0)
        _finite("crf", self.crf)
        self.crop_sigmas()
        TimeRange.parse(self.start, self.end)
        if self.paste not in PASTE_MODES:
            raise VidinvertError(f"--paste {self.paste}: choose one of {', '.join(PASTE_MODES)}")
        if self.batch_size is not None and int(self.batch_size) < 1:
            raise VidinvertError(f"--batch-size {self.batch_size}: must be at least 1")
        if self.detector not in ("auto", "retinaface", "dlib"):
            raise VidinvertError(f"--detector {self.detector}: choose auto, retinaface or dlib")
        if self.device != "auto" and not (self.device == "cpu" or self.device.startswith("cuda")):
            raise VidinvertError(f"--device {self.device}: use auto, cpu, cuda or cuda:N")
        if self.dtype not in ("auto", "fp32", "bf16", "fp16"):
            raise VidinvertError(f"--dtype {self.dtype}: choose auto, fp32, bf16 or fp16")
        if self.output is not None and len(self.inputs) > 1:
            raise VidinvertError("--output names one file: with several inputs use --out-dir")
        if self.output is not None and len(self.tags) > 1:
            raise VidinvertError("--output names one file: with several edits use --out-dir (or --combine)")
        if self.out_dir is not None and self.out_dir.exists() and not self.out_dir.is_dir():
            raise VidinvertError(f"--out-dir {self.out_dir} exists and is not a folder")
        if self.frames_dir is not None and self.frames_dir.exists() and not self.frames_dir.is_dir():
            raise VidinvertError(f"--frames-dir {self.frames_dir} is a file, not a folder")
        if self.weights_dir is not None and not self.weights_dir.is_dir():
            raise VidinvertError(f"--weights-dir {self.weights_dir} is not an existing folder")

    def refuse_inapplicable(self, kind: str, name: Path) -> None:
        """Refuse, in one line naming it, an option given for an input kind it does not apply to."""
        if kind == VIDEO:
            refused = ALIGNED_ONLY
        elif kind == ALIGNED:
            refused = VIDEO_ONLY + FACE_OPTIONS
        else:
            refused = VIDEO_ONLY
        for opt in refused:
            if self.given(opt):
                flag = "--" + opt.replace("_", "-")
                what = {VIDEO: "videos", ALIGNED: "aligned images (--no-align)", PHOTO: "photos"}[kind]
                raise VidinvertError(f"{name}: {flag} does not apply to {what}")


@dataclass(frozen=True)
class EditRequest(InvertRequest):
    """Edit faces: ``attr`` names and ``direction`` files, each its own output unless ``combine``.

    ``strength``: a number, or keyframes ``"0s:0,2s:3"`` for clips (the time grammar of
    :mod:`vidinvert.timespec`); ``w~ = w + 15·S·d`` with d of unit norm.
    """

    attr: tuple[str, ...] = ()
    direction: tuple[Path, ...] = ()
    strength: str = "3"
    combine: bool = False

    kind = "edit"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "attr", tuple(str(a) for a in self.attr))
        object.__setattr__(self, "direction", tuple(Path(p).expanduser() for p in self.direction))
        object.__setattr__(self, "strength", str(self.strength))

    @property
    def tags(self) -> list[str]:
        names = [*self.attr, *(p.stem for p in self.direction)]
        return ["+".join(names)] if self.combine and names else names

    def parsed_strength(self):
        """``strength`` -> a float or :class:`~vidinvert.timespec.Keyframes` (all values finite)."""
        from vidinvert.timespec import parse_strength

        return parse_strength(self.strength)

    def check(self) -> None:
        super().check()
        if not self.attr and not self.direction:
            raise VidinvertError("nothing to edit: give --attr NAME or --direction FILE.npy")
        for p in self.direction:
            if not p.is_file():
                raise VidinvertError(f"--direction {p}: file not found")
        self.parsed_strength()
