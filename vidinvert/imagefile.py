"""Still images at the edges: read as uint8 RGB HxWx3 (EXIF orientation applied), write atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vidinvert.errors import VidinvertError
from vidinvert.fileio import atomic_path
from vidinvert.mediatypes import IMAGE_SUFFIXES



def is_image_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def read_image(path: str | Path) -> np.ndarray:
    """An image file -> uint8 RGB ``[H,W,3]`` (alpha dropped, greyscale expanded, EXIF-rotated)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(path)
    if not p.exists():
        raise VidinvertError(f"input not found: {p}")
    if p.is_dir():
        raise VidinvertError(f"input is a directory, expected an image file: {p}")
    try:
        with Image.open(p) as im:
            im = ImageOps.exif_transpose(im)
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except UnidentifiedImageError:
        raise VidinvertError(f"not an image file (or an unsupported format): {p}") from None
    except OSError as exc:
        raise VidinvertError(f"cannot read image {p}: {exc}") from None
    return rgb


def write_image(path: str | Path, rgb: np.ndarray, *, overwrite: bool) -> Path:
    """Write uint8 RGB ``[H,W,3]`` to ``path`` (format from the suffix) via a temp file + rename."""
    from PIL import Image

    p = Path(path)
    if p.suffix.lower() not in IMAGE_SUFFIXES:
        raise VidinvertError(f"unsupported image output suffix {p.suffix!r}: use .png or .jpg")
    with atomic_path(p, overwrite=overwrite) as tmp:
        fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}.get(p.suffix.lower(), None)
        Image.fromarray(np.ascontiguousarray(rgb)).save(tmp, format=fmt or p.suffix[1:].upper(),
                                                         **({"quality": 95} if fmt == "JPEG" else {}))
    return p
