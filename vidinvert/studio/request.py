"""The typed request of ``vidinvert studio``: every option declared once, with its default and help.

Torch- and gradio-free (read when the CLI starts). The model options are ``edit``'s own
declarations (:func:`edit_option`), so the two commands cannot drift apart; the CLI generates its
options from these fields (:mod:`vidinvert.cli.studio_cmd`).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidinvert.choices import Detector, Dtype, ModelChoice
from vidinvert.errors import VidinvertError
from vidinvert.mediatypes import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from vidinvert.pipeline.request import EditRequest, option

__all__ = ["DEFAULT_PORT", "MODEL_FIELDS", "StudioRequest", "edit_option", "is_loopback"]

#: The port a plain ``vidinvert studio`` listens on (Gradio's customary one).
DEFAULT_PORT = 7860
#: The ``edit`` options the studio takes over unchanged (the models and the face detector).
MODEL_FIELDS = ("encoder", "generator", "weights_dir", "device", "dtype", "detector")
#: The folder under the input's folder where renders and uploads go by default.
DEFAULT_OUT = "studio"
_SERVER = "Server"
_LOOPBACK_NAMES = ("localhost",)


def edit_option(name: str):
    """``edit``'s declaration of option ``name`` (default, help, panel, flags), as a field here."""
    f = EditRequest.__dataclass_fields__[name]
    meta = f.metadata
    return option(f.default, meta["help"], panel=meta["panel"], flags=meta["flags"], **meta["click"])


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class StudioRequest:
    """``vidinvert studio [INPUT]``: ``input`` a clip or photo to open (or a folder to choose from;
    None: the current folder), the server's address, where renders go and the models."""

    input: Path | None = option(None, panel=_SERVER, cli=False)
    port: int = option(DEFAULT_PORT, "Port to listen on (0: any free port).", panel=_SERVER, min=0, max=65535)
    host: str = option("127.0.0.1", "Address to listen on; any but this machine's own (127.0.0.1, ::1, localhost) "
                       "needs --allow-remote.", panel=_SERVER)
    allow_remote: bool = option(False, "Listen on a --host other machines can reach; every request then needs the "
                                "access token printed once at start.", panel=_SERVER)
    out_dir: Path | None = option(None, "Folder for renders and for uploaded directions, style references and clips "
                                  f"(default: INPUT's folder/{DEFAULT_OUT}).", panel=_SERVER)
    max_upload_mb: float = option(2048.0, "Largest upload accepted (MB); larger ones are refused on the page.",
                                  panel=_SERVER)
    encoder: str | None = edit_option("encoder")
    generator: str | None = edit_option("generator")
    weights_dir: Path | None = edit_option("weights_dir")
    device: str = edit_option("device")
    dtype: Dtype = edit_option("dtype")
    detector: Detector = edit_option("detector")

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for name in ("input", "out_dir", "weights_dir"):
            v = getattr(self, name)
            set_(self, name, None if v is None else Path(v).expanduser().absolute())
        for name, enum in (("dtype", Dtype), ("detector", Detector)):
            try:  # a value outside the set stays as given: check() names it
                set_(self, name, enum.parse(getattr(self, name), "--" + name))
            except VidinvertError:
                pass

    @classmethod
    def option_fields(cls) -> list[dataclasses.Field]:
        """The fields that are command-line options (all but ``input``, the argument)."""
        return [f for f in dataclasses.fields(cls) if f.metadata.get("cli", True)]

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {f.name: f.default for f in dataclasses.fields(cls)}

    @property
    def models(self) -> ModelChoice:
        return ModelChoice(self.encoder, self.generator, self.weights_dir, self.device, str(self.dtype))

    @property
    def folder(self) -> Path:
        """The input's folder (the input itself when it is one; else the current folder)."""
        if self.input is None:
            return Path.cwd()
        return self.input if self.input.is_dir() else self.input.parent

    @property
    def output_folder(self) -> Path:
        return self.out_dir if self.out_dir is not None else self.folder / DEFAULT_OUT

    @property
    def remote(self) -> bool:
        return not is_loopback(self.host)

    @property
    def upload_limit(self) -> int:
        """The upload limit in bytes."""
        return int(float(self.max_upload_mb) * 1_000_000)

    def edit_models(self) -> dict[str, Any]:
        """The model and detector fields, as ``EditRequest`` keyword arguments."""
        return {name: getattr(self, name) for name in MODEL_FIELDS}

    def check(self) -> None:
        """Every value valid before anything starts (one line each)."""
        self.models.check()
        Detector.parse(self.detector, "--detector")
        if self.input is not None:
            if not self.input.exists():
                raise VidinvertError(f"{self.input}: input not found")
            if self.input.is_file() and self.input.suffix.lower() not in VIDEO_SUFFIXES | IMAGE_SUFFIXES:
                raise VidinvertError(f"{self.input}: not a clip or photo (by its suffix); give a video, a photo or a "
                                     "folder")
        if self.remote and not self.allow_remote:
            raise VidinvertError(f"--host {self.host} lets other machines reach the studio: add --allow-remote (every "
                                 "request then needs the access token printed at start)")
        if self.allow_remote and not self.remote:
            raise VidinvertError(f"--allow-remote needs a --host other machines can reach ({self.host} is this machine "
                                 "only)")
        if not 0 <= int(self.port) <= 65535:
            raise VidinvertError(f"--port {self.port}: give 0..65535 (0: any free port)")
        mb = float(self.max_upload_mb)
        if not math.isfinite(mb) or mb <= 0:
            raise VidinvertError(f"--max-upload-mb {self.max_upload_mb}: give a positive number of MB")
        out = self.output_folder
        if out.exists() and not out.is_dir():
            raise VidinvertError(f"--out-dir {out} exists and is not a folder")
