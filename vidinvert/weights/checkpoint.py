"""Safe reading of checkpoint files.

Every torch file is read with ``torch.load(..., weights_only=True)``: tensors, numbers, strings,
lists, tuples and dicts only, never arbitrary Python objects. ``.safetensors`` files are read with
safetensors. Files that are not checkpoints get their own one-line message before anything is
unpickled: an HTML page saved in place of the file (a Google Drive confirmation or quota page), a
git-lfs pointer, an NVIDIA ``.pkl`` (refused, with how to convert it), an empty or truncated file,
a directory, a missing path.
"""

from __future__ import annotations

import argparse
import logging
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from vidinvert.errors import VidinvertError

log = logging.getLogger(__name__)

_HEAD_BYTES = 4096
_ZIP_MAGIC = b"PK\x03\x04"
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."  # pickled magic number of torch < 1.6 files
_LFS_MAGIC = b"version https://git-lfs.github.com/spec/"
_NVIDIA_MARKERS = (b"dnnlib", b"torch_utils.persistence", b"torch_utils", b"tflib")

PKL_HINT = (
    "convert it to a PyTorch file first: a TensorFlow StyleGAN2 .pkl with rosinality's "
    "stylegan2-pytorch convert_weight.py (gives stylegan2-*-config-f.pt), a stylegan2-ada-pytorch/"
    "stylegan3 .pkl by exporting G_ema's weights to the rosinality layout"
)


def _is_html(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml")) or (
        b"<html" in text[:1024] and b"</" in text
    )


def _html_hint(head: bytes) -> str:
    low = head.lower()
    if b"google" in low or b"drive" in low:
        if b"quota" in low or b"too many users" in low:
            return "a Google Drive 'download quota exceeded' page: try again later or download it in a browser"
        return "probably Google Drive's virus-scan confirmation page: use `vidinvert weights download` or a browser"
    return "the download saved a web page instead of the file"


def _is_safetensors(path: Path, head: bytes) -> bool:
    if path.suffix == ".safetensors":
        return True
    if len(head) < 10:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 0 < n < 100_000_000 and head[8:9] == b"{"


def _looks_like_nvidia_pickle(head: bytes) -> bool:
    # A plain pickle (protocol >= 2 starts with 0x80) naming NVIDIA's modules; never unpickled.
    return head[:1] == b"\x80" and any(m in head for m in _NVIDIA_MARKERS)


def _allowed_globals() -> list:
    # rosinality's training checkpoints store their argparse.Namespace under 'args'; rebuilding one
    # only sets attributes, so it is safe to allow.
    return [argparse.Namespace]


def _torch_load(path: Path, map_location: Any, mmap: bool) -> Any:
    kwargs: dict[str, Any] = {"weights_only": True, "map_location": map_location}
    if mmap:
        kwargs["mmap"] = True
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    if safe_globals is not None:
        with safe_globals(_allowed_globals()):
            return torch.load(str(path), **kwargs)
    return torch.load(str(path), **kwargs)  # pragma: no cover - torch < 2.5


def _unsupported_global(message: str) -> str | None:
    for marker in ("Unsupported global: GLOBAL ", "unsupported GLOBAL "):
        if marker in message:
            return message.split(marker, 1)[1].split()[0]
    return None


# What torch's weights-only unpickler says when a file holds Python objects it will not build
# (classes, functions, reduce calls to blocked modules), as opposed to a damaged pickle.
_OBJECT_MARKERS = ("Unsupported global", "unsupported GLOBAL", "Can only create new object",
                   "Can only build", "must be imported to load")


def refused_objects_error(path: Path | str, exc: BaseException) -> VidinvertError | None:
    """The one-line error for a weights-only refusal of Python objects in ``path`` (None when
    ``exc`` is not one): ``FILE holds Python objects that a weights-only load refuses; not loaded``."""
    message = str(exc)
    if not any(m in message for m in _OBJECT_MARKERS):
        return None
    name = _unsupported_global(message)
    what = f"first: {name.rstrip('.')}; " if name else ""
    return VidinvertError(
        f"{path} holds Python objects that a weights-only load refuses; not loaded ({what}"
        "re-save it as a plain state dict of tensors: torch.save(model.state_dict(), path))"
    )


def read_checkpoint(path: Path | str, map_location: Any = "cpu") -> Any:
    """Read a checkpoint file safely and return what it holds (usually a dict of tensors/dicts).

    ``.safetensors`` -> dict[str, Tensor]; any torch file -> ``torch.load(path, weights_only=True,
    map_location=map_location)``. Raises VidinvertError (one line naming the file) for a missing
    path, a directory, an empty/truncated file, an HTML page, a git-lfs pointer, an NVIDIA ``.pkl``
    (never unpickled) and objects that a weights-only load refuses.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise VidinvertError(f"model file {path} not found")
    if path.is_dir():
        raise VidinvertError(f"{path} is a directory, not a model file")
    size = path.stat().st_size
    if size == 0:
        raise VidinvertError(f"{path} is empty (0 bytes): the download failed; download it again")
    with path.open("rb") as f:
        head = f.read(_HEAD_BYTES)

    if head.startswith(_LFS_MAGIC):
        raise VidinvertError(
            f"{path} is a git-lfs pointer ({size} bytes), not the model: run `git lfs pull` in its "
            "repository or download the real file"
        )
    if _is_html(head):
        raise VidinvertError(f"{path} is an HTML page, not a checkpoint ({_html_hint(head)})")
    if path.suffix.lower() == ".pkl" or _looks_like_nvidia_pickle(head):
        raise VidinvertError(
            f"{path} looks like an NVIDIA pickle (.pkl), which vidinvert never unpickles (it can run "
            f"arbitrary code); {PKL_HINT}"
        )
    if _is_safetensors(path, head):
        return _read_safetensors(path, map_location)

    is_zip = head.startswith(_ZIP_MAGIC)
    if is_zip and not zipfile.is_zipfile(path):
        raise VidinvertError(
            f"{path} is truncated or corrupt ({size} bytes, its zip directory is missing): download it again"
        )
    if not is_zip and head[:1] == b"\x80" and not head.startswith(_LEGACY_TORCH_MAGIC):
        raise VidinvertError(
            f"{path} is a plain Python pickle, not a PyTorch checkpoint; vidinvert never unpickles it"
            " (it can run arbitrary code): re-save the model with torch.save(state_dict, path)"
        )
    if not is_zip and not head.startswith(_LEGACY_TORCH_MAGIC):
        raise VidinvertError(
            f"{path} is not a PyTorch checkpoint (unrecognised content starting with {head[:16]!r})"
        )

    try:
        return _torch_load(path, map_location, mmap=is_zip)
    except pickle.UnpicklingError as exc:
        name = _unsupported_global(str(exc))
        if name and any(m.decode() in name for m in _NVIDIA_MARKERS):
            raise VidinvertError(
                f"{path} is an NVIDIA pickle that vidinvert will not unpickle; {PKL_HINT}"
            ) from exc
        refused = refused_objects_error(path, exc)
        if refused is not None:
            raise refused from exc
        raise VidinvertError(f"{path} is truncated or corrupt ({size} bytes): download it again") from exc
    except (EOFError, RuntimeError, ValueError, OSError, zipfile.BadZipFile) as exc:
        detail = " ".join(str(exc).split())[:160]
        raise VidinvertError(
            f"{path} is truncated or corrupt ({size} bytes; {type(exc).__name__}: {detail}): download it again"
        ) from exc


def _read_safetensors(path: Path, map_location: Any) -> dict:
    plain = map_location is None or callable(map_location) or isinstance(map_location, dict)
    device = "cpu" if plain else str(map_location)
    try:
        return dict(load_file(str(path), device=device))
    except Exception as exc:  # safetensors raises its own error types
        detail = " ".join(str(exc).split())[:160]
        raise VidinvertError(f"{path} is not a valid safetensors file ({detail})") from exc
