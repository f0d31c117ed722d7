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
    "Faces": ("detector", "face", "min_face", "paste", "color_match", "flow_refine"),
    "Edit": ("attr", "direction", "strength", "combine", "layers", "keep", "region", "feature_keep", "style",
             "style_strength", "style_layers"),
    "Temporal": ("start", "end", "smooth_latents", "fine_mean", "max_gap", "crop_sigma"),
    "Encoding": ("codec", "crf", "preset"),
    "Run": ("preview", "resume", "identity", "shard", "retry_failed"),
}

# Options that only mean something for clips (refused for images when given).
VIDEO_ONLY = ("start", "end", "smooth_latents", "fine_mean", "max_gap", "crop_sigma", "flow_refine", "codec",
              "crf", "preset", "preview", "resume", "side_by_side", "frames_dir")
# Options that need a face to be found and pasted back (refused for aligned images).
FACE_OPTIONS = ("detector", "face", "paste", "color_match", "region")
# Options that apply only to raw inputs (refused for videos).
ALIGNED_ONLY = ("no_align",)
# Options that apply only to photos.
PHOTO_ONLY = ("min_face",)


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


def _check_image_header(flag: str, path: Path) -> None:
    """An image file Pillow can open (its header only)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path):
            pass
    except (UnidentifiedImageError, OSError):
        raise VidinvertError(f"{flag} {path}: not an image file (or an unsupported format)") from None


def _unit_schedule(name: str, text: str):
    """A number or keyframes (the time grammar), every value finite and within [0, 1]."""
    from vidinvert.timespec import check_unit_schedule, parse_strength

    flag = "--" + name.replace("_", "-")
    try:
        sched = parse_strength(text)
    except VidinvertError:
        raise VidinvertError(f"{flag} {text!r}: give a finite number in 0..1 or keyframes like 0s:0,2s:1") from None
    check_unit_schedule(flag, sched)
    return sched


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
    min_face: float = 0.0
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
    shard: str | None = None
    retry_failed: bool = False
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
        _finite("min_face", self.min_face, low=0.0)
        if (self.shard is not None or self.retry_failed) and self.out_dir is None:
            raise VidinvertError("--shard and --retry-failed need --out-dir (where the manifests are kept)")
        if self.shard is not None:
            from vidinvert.pipeline.corpus import parse_shard

            parse_shard(self.shard)
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

    def inapplicable(self, kind: str) -> tuple[str, ...]:
        """The options that mean nothing for an input kind."""
        if kind == VIDEO:
            return ALIGNED_ONLY + PHOTO_ONLY
        if kind == ALIGNED:
            return VIDEO_ONLY + FACE_OPTIONS + PHOTO_ONLY
        return VIDEO_ONLY + ("batch_size",)  # a photo's faces go through the networks as one batch

    def for_kind(self, kind: str) -> InvertRequest:
        """This request for inputs of ``kind`` in a mixed run: the options given for other kinds
        (``--codec`` for the clips, ``--min-face`` for the photos) back at their defaults."""
        drop = [o for o in self.inapplicable(kind) if hasattr(self, o) and self.given(o)]
        if not drop:
            return self
        defaults = self.defaults()
        return dataclasses.replace(self, **{o: defaults[o] for o in drop}, explicit=self.explicit - set(drop))

    def refuse_inapplicable(self, kinds: dict[str, Path]) -> None:
        """Refuse, in one line naming it, an option given that applies to none of the input kinds
        present (``kinds``: kind -> one input of that kind). In a run mixing clips and photos, a
        clip-only option applies to the clips."""
        what = {VIDEO: "videos", ALIGNED: "aligned images (--no-align)", PHOTO: "photos"}
        for opt in {o for kind in kinds for o in self.inapplicable(kind)}:
            if all(opt in self.inapplicable(kind) for kind in kinds) and hasattr(self, opt) and self.given(opt):
                flag = "--" + opt.replace("_", "-")
                kind, name = next(iter(kinds.items()))
                names = " or ".join(what[k] for k in kinds)
                raise VidinvertError(f"{name}: {flag} does not apply to {names}")


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
    layers: str | None = None
    keep: tuple[str, ...] = ()
    region: tuple[str, ...] = ()
    feature_keep: str = "1"
    style: Path | None = None
    style_strength: str = "1"
    style_layers: str = "all"

    kind = "edit"

    def __post_init__(self) -> None:
        super().__post_init__()
        set_ = object.__setattr__
        set_(self, "attr", tuple(str(a) for a in self.attr))
        set_(self, "direction", tuple(Path(p).expanduser() for p in self.direction))
        set_(self, "keep", tuple(str(k) for k in self.keep))
        set_(self, "region", tuple(str(r) for r in self.region))
        for name in ("strength", "feature_keep", "style_strength"):
            set_(self, name, str(getattr(self, name)))
        set_(self, "style", None if self.style is None else Path(self.style).expanduser())

    @property
    def edit_names(self) -> list[str]:
        """The names of the direction edits (one output each, or one sum with ``combine``)."""
        names = [*self.attr, *(p.stem for p in self.direction)]
        return ["+".join(names)] if self.combine and names else names

    @property
    def tags(self) -> list[str]:
        """Output tags: the edits' names; with ``style``, ``style-<stem>`` alone or before each edit."""
        names = self.edit_names
        if self.style is None:
            return names
        st = f"style-{self.style.stem}"
        return [f"{st}.{n}" for n in names] if names else [st]

    def parsed_strength(self):
        """``strength`` -> a float or :class:`~vidinvert.timespec.Keyframes` (all values finite)."""
        from vidinvert.timespec import parse_strength

        return parse_strength(self.strength)

    def check(self) -> None:
        super().check()
        directions = bool(self.attr or self.direction)
        if not directions and self.style is None:
            raise VidinvertError("nothing to edit: give --attr NAME, --direction FILE.npy or --style PHOTO")
        for p in self.direction:
            if not p.is_file():
                raise VidinvertError(f"--direction {p}: file not found")
        self.parsed_strength()
        for name in ("layers", "keep"):
            if self.given(name) and not directions:
                raise VidinvertError(f"--{name} shapes an --attr/--direction edit: give one")
        if self.layers is not None:
            from vidinvert.edit.layers import parse_layers

            parse_layers(self.layers, 1 << 20)  # the syntax; the rows are checked against the generator
        if self.region:
            from vidinvert.face.regions import parse_regions

            if self.paste == "full":
                raise VidinvertError("--region with --paste full: the whole crop would change (w~ also moves the "
                                     "layers after K); use --paste delta to keep the edit inside the region")
            parse_regions(self.region)
        _unit_schedule("feature_keep", self.feature_keep)
        if self.given("feature_keep") and not directions:
            raise VidinvertError("--feature-keep acts on --attr/--direction edits (the style leaves F unchanged)")
        if self.style is not None:
            if not self.style.is_file():
                raise VidinvertError(f"--style {self.style}: file not found")
            _check_image_header("--style", self.style)
            from vidinvert.edit.layers import parse_layers

            _unit_schedule("style_strength", self.style_strength)
            parse_layers(self.style_layers, 1 << 20, what="--style-layers")
        else:
            for name in ("style_strength", "style_layers"):
                if self.given(name):
                    raise VidinvertError(f"--{name.replace('_', '-')} needs --style PHOTO")

    def inapplicable(self, kind: str) -> tuple[str, ...]:
        """As for invert, except that with ``style`` ``--no-align`` also says the reference is an
        aligned crop, so it applies to clips too."""
        refused = super().inapplicable(kind)
        return refused if self.style is None else tuple(o for o in refused if o != "no_align")

    def refuse_inapplicable(self, kinds: dict[str, Path]) -> None:
        """As for invert; and keyframed schedules only for clips (a photo is one frame)."""
        super().refuse_inapplicable(kinds)
        for kind, name in kinds.items():
            if kind == VIDEO:
                continue
            for opt in ("strength", "feature_keep", "style_strength"):
                if ":" in getattr(self, opt):
                    raise VidinvertError(f"{name}: --{opt.replace('_', '-')} keyframes apply to videos; "
                                         "give a single number for images")
