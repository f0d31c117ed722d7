"""The closed sets of values options take, and :class:`ModelChoice` (which networks to load), declared
once (torch-free: the CLI and the requests read them before anything heavy loads; the implementations
compare against the same members).

Each is a ``str`` enum, so a member equals its value (``PasteMode.DELTA == "delta"``), prints as its
value and is written as a plain string to JSON. :meth:`Choice.parse` turns user text into a member or
raises one :class:`~vidinvert.errors.VidinvertError` line naming the flag and the choices.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from vidinvert.errors import VidinvertError


class Choice(str, Enum):
    """A value among a closed set; ``str(member)`` and ``f"{member}"`` are the value."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(m.value for m in cls)

    @classmethod
    def parse(cls, value, flag: str):
        """``value`` (a member or its text, any case) -> the member; else one line naming ``flag``."""
        if isinstance(value, cls):
            return value
        text = str(value).strip().lower()
        for m in cls:
            if m.value == text:
                return m
        raise VidinvertError(f"{flag} {value} is not one of {', '.join(cls.values())}")


class Detector(Choice):
    """Face detector: RetinaFace when its weights are found (``auto``), else dlib."""

    AUTO = "auto"
    RETINAFACE = "retinaface"
    DLIB = "dlib"


class Dtype(Choice):
    """Autocast precision of the networks (``auto``: see :func:`vidinvert.device.resolve_compute`)."""

    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"


class PasteMode(Choice):
    """How an edited face goes back into the frame: only the edit's change, or the whole synthesis."""

    DELTA = "delta"
    FULL = "full"


class OnDamage(Choice):
    """What a clip's damaged data does: stop the run at it, or conceal it and finish the clip."""

    STOP = "stop"
    CONCEAL = "conceal"


class Codec(Choice):
    """Video encoder of the outputs (``ffv1`` is lossless)."""

    LIBX264 = "libx264"
    LIBX265 = "libx265"
    FFV1 = "ffv1"


class Preset(Choice):
    """x264/x265 speed preset."""

    ULTRAFAST = "ultrafast"
    SUPERFAST = "superfast"
    VERYFAST = "veryfast"
    FASTER = "faster"
    FAST = "fast"
    MEDIUM = "medium"
    SLOW = "slow"
    SLOWER = "slower"
    VERYSLOW = "veryslow"
    PLACEBO = "placebo"


class LayerPreset(Choice):
    """Named groups of w+ rows (``--layers``, ``--style-layers``; ranges ``A-B`` and lists ``A,B,C`` too)."""

    ALL = "all"
    COARSE = "coarse"
    MIDDLE = "middle"
    FINE = "fine"


class Modality(Choice):
    """Which copy of a RAVDESS clip held twice ``eval`` takes first."""

    VIDEO_ONLY = "video-only"
    AUDIO_VIDEO = "audio-video"


class FitSpace(Choice):
    """The form of a fitted direction: a W+ boundary ``(1, L*D)`` or a W direction ``(1, D)``."""

    WPLUS = "wplus"
    W = "w"


#: ``--device``: these words, or ``cuda:N``
DEVICE_WORDS = ("auto", "cuda", "cpu")


def parse_device(value: str, flag: str = "--device") -> str:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` (lower-cased); else one line naming ``flag``."""
    text = str(value or "auto").strip().lower()
    if text in DEVICE_WORDS or (text.startswith("cuda:") and text[5:].isdigit()):
        return text
    raise VidinvertError(f"{flag} {value}: use auto, cpu, cuda or cuda:N")


@dataclass(frozen=True)
class ModelChoice:
    """Which networks to load and where: ``encoder``/``generator`` (a file or a registry name; None
    for the defaults), ``weights_dir``, ``device`` (auto | cpu | cuda | cuda:N), ``dtype`` (see
    :class:`~vidinvert.choices.Dtype`). Shared by every command that loads the models."""

    encoder: str | None = None
    generator: str | None = None
    weights_dir: Path | None = None
    device: str = "auto"
    dtype: str = "auto"

    def check(self) -> None:
        parse_device(self.device)
        Dtype.parse(self.dtype, "--dtype")
        if os.environ.get("VIDINVERT_DTYPE", "").strip():  # read by resolve_compute when --dtype is auto
            Dtype.parse(os.environ["VIDINVERT_DTYPE"].strip().lower(), "VIDINVERT_DTYPE")
        if self.weights_dir is not None and not Path(self.weights_dir).is_dir():
            raise VidinvertError(f"--weights-dir {self.weights_dir} is not an existing folder")
