"""The studio's files: the media it offers, uploads kept under the output folder (so the shown command
line names real files), lossless PNGs of what the page shows, and the folders it may serve."""

from __future__ import annotations

import hashlib
import shutil
import struct
import uuid
import zlib
from collections import deque
from pathlib import Path

import numpy as np

from vidinvert.errors import VidinvertError
from vidinvert.mediatypes import IMAGE_SUFFIXES, VIDEO_SUFFIXES

__all__ = ["ShownImages", "is_under", "media_in", "png_bytes", "save_upload"]

#: Files listed from one folder at most.
LISTED = 500
#: What each upload kind may be (by suffix).
UPLOAD_SUFFIXES = {"direction": frozenset({".npy", ".npz"}), "style": frozenset(IMAGE_SUFFIXES),
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


def png_bytes(rgb: np.ndarray) -> bytes:
    """uint8 RGB ``[H,W,3]`` (or grey ``[H,W]``) as a PNG whose image data is stored uncompressed (no
    row filter, zlib level 0): lossless and written in a few tens of ms for a 1080p frame, where
    Pillow's and OpenCV's encoders take 5-10x as long (they filter every row); about 6 MB at 1080p,
    which the page fetches from the studio's own address."""
    a = np.ascontiguousarray(rgb)
    if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3):
        raise TypeError(f"png_bytes: uint8 [H,W,3] or [H,W] expected, got {a.dtype} {a.shape}")
    h, w = a.shape[:2]
    rows = np.empty((h, 1 + a[0].size), np.uint8)
    rows[:, 0] = 0  # filter type 0 (none) on every row
    rows[:, 1:] = a.reshape(h, -1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    colour = 2 if a.ndim == 3 else 0
    header = struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 0))
            + chunk(b"IEND", b""))


class ShownImages:
    """PNG files of what the page shows (:func:`png_bytes`: lossless, so the image the browser decodes
    is the render bit for bit, and fast to write), in ``folder`` (the server puts it inside Gradio's
    cache folder, so Gradio serves the files as they are, without hashing and copying them). The last
    ``keep`` files are kept; older ones are removed."""

    def __init__(self, folder: Path, keep: int = 64) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self._written: deque[Path] = deque()
        self.keep = keep

    def write(self, rgb: np.ndarray, name: str = "image") -> Path:
        """uint8 RGB ``[H,W,3]`` (or grey ``[H,W]``) -> a new PNG file."""
        path = self.folder / f"{name}-{uuid.uuid4().hex[:12]}.png"
        path.write_bytes(png_bytes(rgb))
        self._written.append(path)
        while len(self._written) > self.keep:
            self._written.popleft().unlink(missing_ok=True)
        return path
