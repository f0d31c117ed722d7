"""The typed requests of ``invert`` and ``edit``: every setting, each default declared once, here.

``vidinvert invert``/``edit`` parse their options into one of these and call
:func:`vidinvert.pipeline.job.run_edit`; Python code does the same::

    from vidinvert import EditRequest, run_edit
    result = run_edit(EditRequest(inputs=("clip.mp4",), attr=("smile",), strength="2"))

Each field is declared with :func:`option`: its default, its ``--help`` line and panel, and the
input kinds it applies to. The CLI generates its options from these declarations
(:mod:`vidinvert.cli.jobs`), so a new option is a field here (with its check in :meth:`check`) and
its implementation. This module imports no torch (it is read when the CLI starts).
:meth:`InvertRequest.check` validates values (finite numbers, known names, the time grammar) and
:meth:`InvertRequest.refuse_inapplicable` refuses options that do not apply to an input kind.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidinvert.choices import Codec, Detector, Dtype, ModelChoice, OnDamage, PasteMode, Preset, parse_device
from vidinvert.errors import VidinvertError
from vidinvert.specs import TEXT_BETA, TEXT_NEUTRAL
from vidinvert.timespec import Keyframes, TimeRange, check_unit_schedule, parse_strength

__all__ = ["ALIGNED", "PHOTO", "VIDEO", "EditRequest", "InvertRequest", "ModelChoice", "option"]

# Input kinds: a video clip, an FFHQ-aligned square image (``--no-align``), a raw photo.
VIDEO, ALIGNED, PHOTO = "video", "aligned image", "photo"
KINDS = frozenset({VIDEO, ALIGNED, PHOTO})
#: ``--strength`` of edits that are all ``--text`` ones when it is not given (StyleCLIP's demo default alpha).
TEXT_STRENGTH = 4.1
#: Frames per chunk of the video job (the unit of streaming, resuming and latent smoothing).
CHUNK_FRAMES = 32

# The ``--help`` panels, in order.
PANEL_ORDER = ("Inputs and outputs", "Models", "Faces", "Edit", "Temporal", "Encoding", "Run")


def option(default: Any = None, help: str = "", *, panel: str, flags: tuple[str, ...] = (),
           kinds: frozenset[str] = KINDS, cli: bool = True, **click: Any):
    """A request field with its command-line declaration.

    ``flags``: the option's names (default ``--field-name``); ``kinds``: the input kinds it applies
    to (given for another kind, it is refused or, in a mixed run, reset); ``click``: extra
    ``typer.Option`` settings (``min=1``). ``help`` may hold ``{choices}`` (the enum's values).
    A tuple default means a repeatable option. ``cli=False``: not an option (set by the CLI itself).
    """
    meta = {"help": help, "panel": panel, "flags": tuple(flags), "kinds": frozenset(kinds), "cli": cli,
            "click": click}
    return field(default=default, metadata=meta)


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


def unit_schedule(name: str, text: str) -> float | Keyframes:
    """A number or keyframes (the time grammar), every value finite and within [0, 1]."""
    flag = "--" + name.replace("_", "-")
    try:
        sched = parse_strength(text)
    except VidinvertError:
        raise VidinvertError(f"{flag} {text!r}: give a finite number in 0..1 or keyframes like 0s:0,2s:1") from None
    check_unit_schedule(flag, sched)
    return sched


def crop_sigmas(text: str) -> tuple[float, float]:
    """``--crop-sigma`` ``"CENTER,AXES"`` -> two finite sigmas in frames."""
    try:
        parts = [float(x) for x in str(text).split(",")]
        if len(parts) != 2 or not all(math.isfinite(x) and x >= 0 for x in parts):
            raise ValueError
    except ValueError:
        raise VidinvertError(f"--crop-sigma {text!r}: give two finite sigmas in frames, e.g. 2,4") from None
    return parts[0], parts[1]


_IO, _MODELS, _FACES, _EDIT, _TEMPORAL, _ENCODING, _RUN = PANEL_ORDER
_V = frozenset({VIDEO})
_RAW = frozenset({VIDEO, PHOTO})  # inputs whose faces are found and pasted back


@dataclass(frozen=True)
class InvertRequest:
    """Invert faces (reconstruction) in clips, aligned images (``no_align``) or photos.

    Paths may be given as ``str``; they are stored as :class:`~pathlib.Path`, choices as their
    enum member. ``explicit`` names the options the caller set on purpose (the CLI passes those given
    on the command line or in the environment); an option counts as given when it is named there or
    differs from its default.
    """

    inputs: tuple[Path, ...] = option((), panel=_IO, cli=False)
    output: Path | None = option(None, "Output file (one input).", panel=_IO, flags=("--output", "-o"))
    out_dir: Path | None = option(None, "Folder for the outputs (created if missing).", panel=_IO)
    no_align: bool = option(False, "Images (and the --style reference) are already FFHQ-aligned squares.",
                            panel=_IO, kinds=frozenset({ALIGNED, PHOTO}))
    overwrite: bool = option(False, "Replace existing outputs.", panel=_IO)
    save_latents: Path | None = option(
        None, "Write w+ and F: a .npz for images, a folder of per-chunk .npz files for videos.", panel=_IO)
    report: Path | None = option(
        None, "Write the report as JSON here (a folder for several inputs); clips also get its picture beside it "
        "(r.json -> r.png).", panel=_IO)
    frames_dir: Path | None = option(None, "Also write every output frame as PNG into this folder.", panel=_IO,
                                     kinds=_V)
    side_by_side: bool = option(False, "Also write OUTPUT.side-by-side.mp4: source | inversion | edit.", panel=_IO,
                                kinds=_V)
    # models
    encoder: str | None = option(None, "Encoder file or registry name (default: fs-encoder).", panel=_MODELS)
    generator: str | None = option(
        None, "Generator file or registry name (default: stylegan2-ffhq, else psp-ffhq).", panel=_MODELS)
    weights_dir: Path | None = option(
        None, "Folder with the model files (before $VIDINVERT_HOME and ~/.cache/vidinvert).", panel=_MODELS)
    device: str = option("auto", "auto | cuda | cuda:N | cpu.", panel=_MODELS)
    dtype: Dtype = option(Dtype.AUTO, "{choices} (auto: $VIDINVERT_DTYPE if set, else bf16 on CUDA and on CPUs with AMX-BF16 or "
                          "AVX512-BF16 units, fp32 elsewhere; fp32 matches the official code).", panel=_MODELS)
    batch_size: int | None = option(None, "Most frames per batch, halved when memory runs out (default: from free "
                                    "GPU memory).", panel=_MODELS,
                                    kinds=frozenset({VIDEO, ALIGNED}), min=1)
    # faces
    detector: Detector = option(Detector.AUTO, "{choices} (auto: RetinaFace if its weights are found, else dlib).",
                                panel=_FACES, kinds=_RAW)
    face: str = option("largest", "Which faces: largest | center | all | N | N,M (0 = leftmost); videos track them "
                       "over time.", panel=_FACES, kinds=_RAW)
    min_face: float = option(0.0, "Photos: skip faces whose box is smaller than PX pixels (0: off).", panel=_FACES,
                             kinds=frozenset({PHOTO}))
    paste: PasteMode = option(PasteMode.DELTA, "{choices} (delta adds only the edit's change: keeps source detail).",
                              panel=_FACES, kinds=_RAW)
    color_match: bool = option(False, "Match the pasted face's colours to the source (full paste).", panel=_FACES,
                               kinds=_RAW)
    flow_refine: bool = option(False, "Refine landmarks with optical flow between detections.", panel=_FACES,
                               kinds=_V)
    # temporal
    start: str | None = option(None, "Start of the range: 12.5 / 12.5s (seconds) or 300f (frame).", panel=_TEMPORAL,
                               kinds=_V)
    end: str | None = option(None, "End of the range (exclusive), same grammar as --start.", panel=_TEMPORAL, kinds=_V)
    smooth_latents: float = option(0.0, "Gaussian sigma (frames) over w+ and F; 0 = off.", panel=_TEMPORAL, kinds=_V)
    fine_mean: bool = option(False, "Replace the fine rows of w+ (9..17) by their running mean.", panel=_TEMPORAL,
                             kinds=_V)
    max_gap: float = option(0.5, "Seconds without the face filled by interpolation; longer gaps pass through.",
                            panel=_TEMPORAL, kinds=_V)
    crop_sigma: str = option("2,4", "Temporal smoothing of the crop, Gaussian sigmas in frames: CENTER,AXES.",
                             panel=_TEMPORAL, kinds=_V)
    # encoding
    codec: Codec = option(Codec.LIBX264, "{choices} (ffv1 is lossless).", panel=_ENCODING, kinds=_V)
    crf: float = option(18.0, "Quality for libx264/libx265 (0 lossless .. 51; 18 is visually lossless).",
                        panel=_ENCODING, kinds=_V)
    preset: Preset = option(Preset.MEDIUM, "x264/x265 speed preset: {choices}.", panel=_ENCODING, kinds=_V)
    # run
    preview: bool = option(False, "Render a short stretch (first 2 s, or --start/--end) and estimate the full time.",
                           panel=_RUN, kinds=_V)
    resume: bool = option(False, "Keep a work folder so a stopped run continues where it stopped.", panel=_RUN,
                          kinds=_V)
    on_damage: OnDamage = option(OnDamage.STOP, "Damaged clip data: {choices} (stop names the frame; conceal "
                                 "finishes the clip with the decoder's concealment, else the last good frame, and "
                                 "lists the damaged frames in the report).", panel=_RUN, kinds=_V)
    identity: bool = option(True, "Identity metrics in the report (ArcFace, else dlib: CPU, about 3 embeddings per "
                            "frame); --no-identity skips them (flicker and counts remain).", panel=_RUN,
                            flags=("--identity/--no-identity",))
    shard: str | None = option(None, "Take shard I of N of the inputs (I/N, from 0) or 'slurm' (job array); needs "
                               "--out-dir.", panel=_RUN)
    retry_failed: bool = option(False, "Corpus runs: also redo inputs recorded as failed with this configuration.",
                                panel=_RUN)
    explicit: frozenset[str] = field(default=frozenset(), compare=False, metadata={"cli": False})

    kind = "invert"

    def __post_init__(self) -> None:
        def path(v):
            return None if v is None else Path(v).expanduser()

        set_ = object.__setattr__
        set_(self, "inputs", tuple(Path(p).expanduser() for p in self.inputs))
        for name in ("output", "out_dir", "save_latents", "report", "frames_dir", "weights_dir"):
            set_(self, name, path(getattr(self, name)))
        for name, enum in self.choice_fields().items():
            try:  # a value outside the set stays as given: check() names it
                set_(self, name, enum.parse(getattr(self, name), "--" + name))
            except VidinvertError:
                pass
        set_(self, "explicit", frozenset(self.explicit))

    # ------------------------------------------------------------------------------ queries
    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every field's default (the CLI takes its option defaults from here)."""
        return {f.name: f.default for f in dataclasses.fields(cls)}

    @classmethod
    def option_fields(cls) -> list[dataclasses.Field]:
        """The fields that are command-line options (all but ``inputs`` and ``explicit``)."""
        return [f for f in dataclasses.fields(cls) if f.metadata.get("cli", True)]

    @classmethod
    def choice_fields(cls) -> dict[str, type]:
        """Fields whose values come from a :class:`~vidinvert.choices.Choice` enum -> the enum."""
        return {f.name: type(f.default) for f in dataclasses.fields(cls) if hasattr(type(f.default), "parse")}

    @classmethod
    def panels(cls) -> dict[str, tuple[str, ...]]:
        """``--help`` panel -> the option fields shown there."""
        out: dict[str, list[str]] = {p: [] for p in PANEL_ORDER}
        for f in cls.option_fields():
            out[f.metadata["panel"]].append(f.name)
        return {p: tuple(names) for p, names in out.items() if names}

    def given(self, name: str) -> bool:
        """Whether the option ``name`` was set on purpose (named in ``explicit`` or not its default)."""
        return name in self.explicit or getattr(self, name) != self.defaults()[name]

    @property
    def tags(self) -> list[str]:
        """The output tag of each output of an input (``inverted``; edits override)."""
        return ["inverted"]

    def crop_sigmas(self) -> tuple[float, float]:
        """``crop_sigma`` ``"CENTER,AXES"`` -> two finite sigmas in frames."""
        return crop_sigmas(self.crop_sigma)

    @property
    def models(self) -> ModelChoice:
        """The model fields of this request."""
        return ModelChoice(self.encoder, self.generator, self.weights_dir, self.device, str(self.dtype))

    # ---------------------------------------------------------------------------- checks
    def check(self) -> None:
        """Every value valid (before any input is read): finite numbers, known names, the time grammar."""
        if not self.inputs:
            raise VidinvertError("no inputs given")
        for name, enum in self.choice_fields().items():
            enum.parse(getattr(self, name), "--" + name.replace("_", "-"))
        parse_device(self.device)
        _finite("smooth_latents", self.smooth_latents, low=0.0)
        radius = math.ceil(3 * float(self.smooth_latents)) if float(self.smooth_latents) > 0 else 0
        if radius > CHUNK_FRAMES:
            raise VidinvertError(f"--smooth-latents {float(self.smooth_latents):g} reaches {radius} frames, more "
                                 f"than a chunk ({CHUNK_FRAMES}); use a smaller sigma")
        _finite("max_gap", self.max_gap, low=0.0)
        crf = _finite("crf", self.crf)
        if not 0 <= crf <= 51:
            raise VidinvertError(f"--crf {crf:g} is out of range: use 0 (lossless) .. 51 (worst); 18 is the default")
        if self.codec == Codec.FFV1:
            for name in ("crf", "preset"):
                if self.given(name):
                    raise VidinvertError(f"--{name} sets libx264/libx265; --codec ffv1 is lossless and has none")
        _finite("min_face", self.min_face, low=0.0)
        from vidinvert.face.types import parse_face_select

        parse_face_select(self.face)
        if (self.shard is not None or self.retry_failed) and self.out_dir is None:
            raise VidinvertError("--shard and --retry-failed need --out-dir (where the manifests are kept)")
        if self.shard is not None:
            from vidinvert.pipeline.corpus import parse_shard

            parse_shard(self.shard)
        self.crop_sigmas()
        TimeRange.parse(self.start, self.end)
        if self.batch_size is not None and int(self.batch_size) < 1:
            raise VidinvertError(f"--batch-size {self.batch_size}: must be at least 1")
        self._check_paths()

    def _check_paths(self) -> None:
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
        """The options that mean nothing for an input kind (from each field's ``kinds``)."""
        return tuple(f.name for f in self.option_fields() if kind not in f.metadata.get("kinds", KINDS))

    def for_kind(self, kind: str) -> InvertRequest:
        """This request for inputs of ``kind`` in a mixed run: the options given for other kinds
        (``--codec`` for the clips, ``--min-face`` for the photos) back at their defaults."""
        drop = [o for o in self.inapplicable(kind) if self.given(o)]
        if not drop:
            return self
        defaults = self.defaults()
        return dataclasses.replace(self, **{o: defaults[o] for o in drop}, explicit=self.explicit - set(drop))

    def refuse_inapplicable(self, kinds: dict[str, Path]) -> None:
        """Refuse, in one line naming it, an option given that applies to none of the input kinds
        present (``kinds``: kind -> one input of that kind). In a run mixing clips and photos, a
        clip-only option applies to the clips."""
        what = {VIDEO: "videos", ALIGNED: "aligned images (--no-align)", PHOTO: "photos"}
        for opt in sorted({o for kind in kinds for o in self.inapplicable(kind)}):
            if all(opt in self.inapplicable(kind) for kind in kinds) and self.given(opt):
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

    attr: tuple[str, ...] = option(
        (), "Edit by name (a direction file found in the weights folders, e.g. smile); repeatable. "
        "`vidinvert weights` lists the published directions and how to get them.", panel=_EDIT)
    direction: tuple[Path, ...] = option(
        (), "Edit direction file: .npy (w+) or .npz (a StyleSpace direction); repeatable.",
        panel=_EDIT)
    channel: tuple[str, ...] = option(
        (), "StyleSpace channel L_C[=S] (e.g. 6_501): move it by S (default 1) standard deviations per unit of "
        "--strength; repeatable, all channels make one edit tagged chL_C+...", panel=_EDIT)
    text: tuple[str, ...] = option(
        (), "An edit described in words (StyleCLIP's global directions), e.g. \"a face with a beard\"; repeatable. "
        "Needs CLIP and a relevance matrix (`vidinvert weights`); --strength is alpha (default 4.1 when the edits "
        "are text only).", panel=_EDIT)
    text_neutral: str = option(TEXT_NEUTRAL, "--text is measured against this phrase: the direction of e(text) - "
                               "e(neutral).", panel=_EDIT)
    text_beta: float = option(TEXT_BETA, "--text channel threshold beta in (0, 1): channels less relevant stay; higher, "
                              "fewer channels move.", panel=_EDIT)
    text_matrix: Path | None = option(None, "--text relevance matrix (default StyleCLIP's fs3.npy for the FFHQ 1024 "
                                      "generator; `vidinvert directions stylespace-stats` makes one).", panel=_EDIT)
    strength: str = option("3", "Edit strength (w~ = w + 15*S*d, d unit-norm; S edits: s~ = s + S*delta); videos: "
                           "keyframes 0s:0,2s:3.", panel=_EDIT)
    combine: bool = option(False, "Sum several edits into one output.", panel=_EDIT)
    layers: str | None = option(
        None, "Move only these w+ rows: all | coarse (0-3) | middle (4-7) | fine (8-17) | A-B | A,B,C.", panel=_EDIT)
    keep: tuple[str, ...] = option(
        (), "Keep this attribute unchanged (name or file): the edit is made orthogonal to it; repeatable.",
        panel=_EDIT)
    region: tuple[str, ...] = option(
        (), "Edit only these face parts: mouth,eyes,brows,nose,skin,face,hair,neck (comma-separated or repeated; "
        "hair and neck need the parsing weights).", panel=_EDIT, kinds=_RAW)
    feature_keep: str = option("1", "B in 0..1 (or keyframes): below 1 lets the edit move what the feature code "
                               "holds (stronger edits, less detail); 1 is the paper's eq. (1).", panel=_EDIT)
    style: Path | None = option(None, "Appearance from this reference photo (the paper's style mixing): every frame "
                                "keeps its own feature code (geometry).", panel=_EDIT)
    style_strength: str = option("1", "How much of the reference: 0..1 (or keyframes).", panel=_EDIT)
    style_layers: str = option("all", "The w+ rows taken from the reference: all | coarse | middle | fine | A-B | "
                               "A,B,C.", panel=_EDIT)

    kind = "edit"

    def __post_init__(self) -> None:
        super().__post_init__()
        set_ = object.__setattr__
        set_(self, "attr", tuple(str(a) for a in self.attr))
        set_(self, "direction", tuple(Path(p).expanduser() for p in self.direction))
        set_(self, "channel", tuple(str(c) for c in self.channel))
        set_(self, "text", tuple(str(t) for t in self.text))
        set_(self, "text_matrix", None if self.text_matrix is None else Path(self.text_matrix).expanduser())
        set_(self, "keep", tuple(str(k) for k in self.keep))
        set_(self, "region", tuple(str(r) for r in self.region))
        for name in ("strength", "feature_keep", "style_strength"):
            set_(self, name, str(getattr(self, name)))
        set_(self, "style", None if self.style is None else Path(self.style).expanduser())

    @property
    def edit_names(self) -> list[str]:
        """The names of the direction edits (one output each, or one sum with ``combine``); every
        ``channel`` together is one edit, named by its channels (``ch6_501+9_409=-2``)."""
        names = [*self.attr, *(p.stem for p in self.direction)]
        if self.channel:
            from vidinvert.models.stylespace import channels_tag, parse_channels

            try:
                names.append(channels_tag(parse_channels(self.channel)))
            except VidinvertError:
                names.append("ch" + "+".join(self.channel))  # check() names the bad one
        if self.text:
            from vidinvert.specs import prompt_tag

            names += [prompt_tag(t, self.text) for t in self.text]
        return ["+".join(names)] if self.combine and names else names

    @property
    def style_edits(self) -> bool:
        """Whether an edit moves StyleSpace channels (``channel`` or an ``.npz`` direction)."""
        from vidinvert.models.stylespace import is_style_direction_path

        return bool(self.channel or self.text) or any(is_style_direction_path(p) for p in self.direction)

    @property
    def tags(self) -> list[str]:
        """Output tags: the edits' names; with ``style``, ``style-<stem>`` alone or before each edit."""
        names = self.edit_names
        if self.style is None:
            return names
        st = f"style-{self.style.stem}"
        return [f"{st}.{n}" for n in names] if names else [st]

    @property
    def has_directions(self) -> bool:
        return bool(self.attr or self.direction or self.channel or self.text)

    def parsed_strength(self) -> float | Keyframes:
        """``strength`` -> a float or :class:`~vidinvert.timespec.Keyframes` (all values finite);
        :data:`TEXT_STRENGTH` when not given and every edit is a ``--text`` one."""
        if self.text and not (self.attr or self.direction or self.channel) and not self.given("strength"):
            return TEXT_STRENGTH
        return parse_strength(self.strength)

    def check(self) -> None:
        from vidinvert.specs import parse_layers, parse_regions

        super().check()
        directions = self.has_directions
        if not directions and self.style is None:
            raise VidinvertError("nothing to edit: give --attr NAME, --direction FILE.npy, --channel L_C, --text PROMPT "
                                 "or --style PHOTO")
        for p in self.direction:
            if not p.is_file():
                raise VidinvertError(f"--direction {p}: file not found")
        self._check_style_space()
        self._check_text()
        self.parsed_strength()
        for name in ("layers", "keep"):
            if self.given(name) and not directions:
                raise VidinvertError(f"--{name} shapes an --attr/--direction edit: give one")
        if self.layers is not None:
            parse_layers(self.layers, 1 << 20)  # the syntax; the rows are checked against the generator
        if self.region:
            if self.paste == PasteMode.FULL:
                raise VidinvertError("--region with --paste full: the whole crop would change (w~ also moves the "
                                     "layers after K); use --paste delta to keep the edit inside the region")
            parse_regions(self.region)
        unit_schedule("feature_keep", self.feature_keep)
        if self.given("feature_keep") and not directions:
            raise VidinvertError("--feature-keep acts on --attr/--direction edits (the style leaves F unchanged)")
        self._check_style()

    def _check_style_space(self) -> None:
        """``--channel`` syntax, every ``.npz`` direction readable and consistent, no ``--keep`` with
        them (the layout is checked against the generator before the networks load)."""
        from vidinvert.models.stylespace import is_style_direction_path, parse_channels, read_style_direction

        parse_channels(self.channel)
        for p in self.direction:
            if is_style_direction_path(p):
                read_style_direction(p)
        if self.keep and self.style_edits:
            raise VidinvertError("--keep conditions w+ directions; it cannot be applied to a StyleSpace edit "
                                 "(--channel, --text or an .npz direction): leave --keep out")

    def _check_text(self) -> None:
        """``--text`` prompts not empty, ``--text-beta`` in (0, 1), the text options only with ``--text``
        (the prompts' CLIP token counts are checked before the networks load)."""
        for t in self.text:
            if not t.strip():
                raise VidinvertError("--text: an empty prompt; describe the edit, e.g. \"a face with a beard\"")
        if not str(self.text_neutral).strip():
            raise VidinvertError("--text-neutral: empty; the default is \"a face\"")
        b = _finite("text_beta", self.text_beta)
        if not 0.0 < b < 1.0:
            raise VidinvertError(f"--text-beta {b:g}: give a number between 0 and 1 (exclusive), e.g. 0.15")
        if not self.text:
            for name in ("text_neutral", "text_beta", "text_matrix"):
                if self.given(name):
                    raise VidinvertError(f"--{name.replace('_', '-')} shapes a --text edit: give --text PROMPT")
        if self.text_matrix is not None and not self.text_matrix.is_file():
            raise VidinvertError(f"--text-matrix {self.text_matrix}: file not found")

    def _check_style(self) -> None:
        from vidinvert.specs import parse_layers

        if self.style is not None:
            if not self.style.is_file():
                raise VidinvertError(f"--style {self.style}: file not found")
            _check_image_header("--style", self.style)
            unit_schedule("style_strength", self.style_strength)
            parse_layers(self.style_layers, 1 << 20, what="--style-layers")
            return
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


# The option names of each panel (kept for the CLI's help and the tests).
PANELS: dict[str, tuple[str, ...]] = EditRequest.panels()
# Options that only mean something for clips / need a face found and pasted back / photos only.
VIDEO_ONLY = tuple(f.name for f in EditRequest.option_fields() if f.metadata["kinds"] == _V)
FACE_OPTIONS = tuple(f.name for f in EditRequest.option_fields() if f.metadata["kinds"] == _RAW)
PHOTO_ONLY = tuple(f.name for f in EditRequest.option_fields() if f.metadata["kinds"] == frozenset({PHOTO}))
ALIGNED_ONLY = ("no_align",)
