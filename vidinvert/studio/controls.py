"""The studio's edit controls, each mapped to exactly one ``edit`` option, and the request they make.

A :class:`Controls` holds the page's values; :meth:`Controls.request` turns them into the
:class:`~vidinvert.pipeline.request.EditRequest` (or, with no direction and no style, the
``InvertRequest`` of the reconstruction) that both the frame view (the editing session) and the
clip render (:func:`~vidinvert.pipeline.job.run_edit`) use, so the page and the shown command line
(:func:`~vidinvert.cli.jobs.command_line`) cannot disagree. Strength keyframes are not on the page:
the shown command line can be edited by hand.

A direction is chosen as a tagged value: ``attr:NAME`` (``--attr NAME``, a name that resolves in
the weights folders) or ``file:PATH`` (``--direction PATH``: a discovered ``sefa_*`` file or an
uploaded ``.npy`` saved under the output folder).

StyleSpace channels are one text box of ``L_C[=S]`` specs (``6_501, 9_409=-0.5``: one ``--channel``
each, all one edit), a prompt is ``--text`` with its ``--text-neutral``, ``--text-beta`` and
``--text-matrix``. With several edits (a direction, the channels, a prompt) the page shows their sum:
the request gets ``--combine`` (one output, as the page shows it).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidinvert.choices import LayerPreset, PasteMode
from vidinvert.errors import VidinvertError
from vidinvert.pipeline.request import EditRequest, InvertRequest
from vidinvert.specs import TEXT_BETA, TEXT_NEUTRAL

__all__ = ["CONTROL_OPTIONS", "LAYER_CHOICES", "Controls", "channel_specs", "direction_value", "number_text"]

#: Each control -> the ``edit`` option it sets (``direction``: ``--attr`` or ``--direction`` by its tag).
CONTROL_OPTIONS: dict[str, str] = {
    "direction": "--attr / --direction", "strength": "--strength", "layers": "--layers", "keep": "--keep",
    "region": "--region", "feature_keep": "--feature-keep", "style": "--style", "style_strength": "--style-strength",
    "style_layers": "--style-layers", "paste": "--paste", "color_match": "--color-match", "face": "--face",
    "channel": "--channel", "text": "--text", "text_neutral": "--text-neutral", "text_beta": "--text-beta",
    "text_matrix": "--text-matrix",
}
#: The layer presets offered (a custom ``A-B`` or ``A,B,C`` may be typed); "" is every row (the default).
LAYER_CHOICES = ("", *LayerPreset.values())


def number_text(value: float) -> str:
    """A slider's value as the option's text (``2.0`` -> ``"2"``, ``0.30000000000000004`` -> ``"0.3"``)."""
    v = float(value)
    text = f"{v:.6g}"
    return "0" if text == "-0" else text


def channel_specs(text: str | None) -> tuple[str, ...]:
    """The channel box's text -> one ``--channel`` value each: specs separated by commas, semicolons or
    spaces (``"6_501, 9_409 = -0.5"`` -> ``("6_501", "9_409=-0.5")``); checked as the CLI checks them."""
    joined = re.sub(r"\s*=\s*", "=", str(text or "").strip())
    return tuple(t for t in re.split(r"[,;\s]+", joined) if t)


def direction_value(kind: str, what: str | Path) -> str:
    """The tagged value of a direction choice: ``attr:NAME`` or ``file:PATH``."""
    if kind not in ("attr", "file"):
        raise ValueError(kind)
    return f"{kind}:{what}"


@dataclass(frozen=True)
class Controls:
    """The page's values (see :data:`CONTROL_OPTIONS` for the option each one sets). ``direction``: ""
    (none), ``attr:NAME`` or ``file:PATH``; ``layers``/``style_layers``: a preset or rows ("" for the
    default); ``keep``: names or files (or tagged direction choices); ``style``: a reference photo's path or ""."""

    direction: str = ""
    strength: float = 3.0
    layers: str = ""
    keep: tuple[str, ...] = ()
    region: tuple[str, ...] = ()
    feature_keep: float = 1.0
    style: str = ""
    style_strength: float = 1.0
    style_layers: str = "all"
    paste: str = str(PasteMode.DELTA)
    color_match: bool = False
    face: str = "largest"
    channel: str = ""
    text: str = ""
    text_neutral: str = TEXT_NEUTRAL
    text_beta: float = TEXT_BETA
    text_matrix: str = ""

    @classmethod
    def of(cls, **values: Any) -> Controls:
        """From the page's raw values (None for an empty control, lists for multi-choices)."""
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        clean = {}
        for name, v in values.items():
            if name not in defaults:
                raise TypeError(f"no control {name!r}")
            if v is None:
                v = defaults[name]
            if isinstance(defaults[name], tuple):
                v = tuple(str(x) for x in (v or ()))
            clean[name] = v
        return cls(**clean)

    def edit_fields(self) -> dict[str, Any]:
        """The ``EditRequest`` fields these controls set (the defaults left out)."""
        out: dict[str, Any] = {}
        if self.direction:
            kind, _, what = self.direction.partition(":")
            if kind == "attr":
                out["attr"] = (what,)
            elif kind == "file":
                out["direction"] = (Path(what),)
            else:
                raise VidinvertError(f"direction {self.direction!r}: choose one from the list or upload a .npy file")
        out.update(strength=number_text(self.strength), feature_keep=number_text(self.feature_keep),
                   keep=tuple(_untagged(k) for k in self.keep), region=tuple(self.region), style_strength=number_text(self.style_strength),
                   style_layers=self.style_layers or "all")
        if self.layers:
            out["layers"] = self.layers
        if self.style:
            out["style"] = Path(self.style)
        out.update(self._style_space_fields())
        if sum(bool(x) for x in (self.direction, out.get("channel"), out.get("text"))) > 1:
            out["combine"] = True  # the page shows one output: the edits' sum
        return out

    def _style_space_fields(self) -> dict[str, Any]:
        """The ``--channel`` and ``--text`` fields (the text options only differ from their defaults when moved)."""
        out: dict[str, Any] = {}
        channels = channel_specs(self.channel)
        if channels:
            out["channel"] = channels
        prompt = str(self.text or "").strip()
        if prompt:
            out["text"] = (prompt,)
        out["text_neutral"] = str(self.text_neutral or "").strip() or TEXT_NEUTRAL
        out["text_beta"] = float(number_text(self.text_beta))
        if str(self.text_matrix or "").strip():
            out["text_matrix"] = Path(str(self.text_matrix).strip()).expanduser().absolute()
        return out

    @property
    def edits(self) -> bool:
        """Whether anything is edited (a direction, channels, a prompt or a style); otherwise the page
        shows the reconstruction."""
        return bool(self.direction or self.style or channel_specs(self.channel) or str(self.text or "").strip())

    def request(self, **fields: Any) -> InvertRequest:
        """The request of these controls plus ``fields`` (inputs, output, range, models, ``explicit``):
        an ``EditRequest``, or the reconstruction's ``InvertRequest`` when nothing is edited and no
        edit control was moved (moved ones are then refused by the request's own checks)."""
        face = {"face": self.face or "largest", "paste": self.paste or str(PasteMode.DELTA),
                "color_match": bool(self.color_match)}
        edit = self.edit_fields()
        if not self.edits and not _moved(edit):
            return InvertRequest(**fields, **face)
        if edit.get("text"):  # the slider's strength, not --text's own default alpha
            fields = {**fields, "explicit": frozenset(fields.get("explicit", ())) | {"strength"}}
        return EditRequest(**fields, **face, **edit)


def _untagged(value: str) -> str:
    """A ``--keep`` value: the name or file of a tagged direction choice (plain text as it is)."""
    kind, sep, what = str(value).partition(":")
    return what if sep and kind in ("attr", "file") else str(value)


def _moved(edit: dict[str, Any]) -> bool:
    """Whether any edit field differs from ``edit``'s default."""
    defaults = EditRequest.defaults()
    return any(v != defaults[k] for k, v in edit.items())
