"""The studio's files: the media it offers, uploads kept under the output folder (so the shown command
line names real files), lossless PNGs of what the page shows, and the folders it may serve."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from collections import deque
from pathlib import Path

import numpy as np
from PIL import Image

from vidinvert.errors import VidinvertError
from vidinvert.mediatypes import IMAGE_SUFFIXES, VIDEO_SUFFIXES

__all__ = ["ShownImages", "is_under", "media_in", "save_upload"]

#: Files listed from one folder at most.
LISTED = 500
#: What each upload kind may be (by suffix).
UPLOAD_SUFFIXES = {"direction": frozenset({".npy"}), "style": frozenset(IMAGE_SUFFIXES),
                   "input": frozenset(VIDEO_SUFFIXES | IMAGE_SUFFIXES)}


def is_under(path: Path, roots: list[Path]) -> bool:
    """Whether ``path`` (symlinks resolved) lies inside one of ``roots``."""
    try:
        p = Path(path).resolve()
    except (OSError, RuntimeError):
        return False
    return any(p == r or r in p.parents for r in (Path(x).resolve() for x in roots))


def media_in(folder: Path) -> list[Path]:
    """The clips and photos directly in ``folder`` (hidden files left out), sorted by name."""
    if not folder.is_dir():
        return []
    suffixes = VIDEO_SUFFIXES | IMAGE_SUFFIXES
    found = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes)
    return found[:LISTED]


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_upload(src: str | Path, kind: str, folder: Path, *, name: str | None = None, limit: int | None = None) -> Path:
    """Copy an uploaded file into ``folder`` (``uploads`` under the output folder) under its own name
    (``name``: the name the browser gave), or ``NAME-2.ext`` ... when another file holds that name; the
    same bytes uploaded again reuse the first copy. One line when its suffix does not fit ``kind`` or it
    is over ``limit`` bytes."""
    src = Path(src)
    stem, suffix = Path(name or src.name).stem, Path(name or src.name).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES[kind]:
        want = " ".join(sorted(UPLOAD_SUFFIXES[kind]))
        raise VidinvertError(f"{name or src.name}: not a {kind} file (give one of {want})")
    if limit is not None and src.stat().st_size > limit:
        raise VidinvertError(f"{name or src.name}: {src.stat().st_size / 1e6:.1f} MB is over the upload limit "
                             f"({limit / 1e6:g} MB)")
    folder.mkdir(parents=True, exist_ok=True)
    digest = _digest(src)
    for n in range(1, 1000):
        dest = folder / (f"{stem}{suffix}" if n == 1 else f"{stem}-{n}{suffix}")
        if not dest.exists():
            tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
            shutil.copyfile(src, tmp)
            tmp.replace(dest)
            return dest
        if dest.stat().st_size == src.stat().st_size and _digest(dest) == digest:
            return dest
    raise VidinvertError(f"{folder}: too many uploads named {stem}{suffix}")


class ShownImages:
    """PNG files of what the page shows, in the studio's temporary folder: lossless (so the image the
    browser decodes is the render, bit for bit) and fast to write (zlib level 1). The last ``keep``
    files are kept; older ones are removed."""

    def __init__(self, folder: Path, keep: int = 64) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self._written: deque[Path] = deque()
        self.keep = keep

    def write(self, rgb: np.ndarray, name: str = "image") -> Path:
        """uint8 RGB ``[H,W,3]`` (or grey ``[H,W]``) -> a new PNG file."""
        a = np.ascontiguousarray(rgb)
        if a.dtype != np.uint8:
            raise TypeError(f"ShownImages.write: uint8 expected, got {a.dtype}")
        path = self.folder / f"{name}-{uuid.uuid4().hex[:12]}.png"
        Image.fromarray(a).save(path, format="PNG", compress_level=1)
        self._written.append(path)
        while len(self._written) > self.keep:
            self._written.popleft().unlink(missing_ok=True)
        return path
