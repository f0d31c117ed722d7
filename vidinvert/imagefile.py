"""Still images at the edges: read as uint8 RGB HxWx3 (EXIF orientation applied), write atomically.

Two levels:

- :func:`read_image` / :func:`write_image`: plain uint8 RGB arrays (aligned faces, datasets).
- :func:`read_photo` / :func:`write_photo`: a photo edited in place and written back *in kind*.
  :class:`Photo` keeps what the RGB array loses: the alpha channel, greyscale, 16-bit samples,
  the ICC profile (copied, pixels never converted), the EXIF block (orientation applied on read
  and dropped, so the output is stored upright) and whether the source was lossless.

Formats: JPEG, PNG (8/16-bit, grey, RGB, alpha, palette -> RGB/RGBA), WebP (lossy/lossless,
alpha), TIFF (8-bit any of those, 16-bit greyscale), BMP. Refused with one line naming the format:
CMYK, YCbCr, Lab, float and 32-bit integer images, 1-bit images, 16-bit colour TIFF.
"""

from __future__ import annotations

import logging
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidinvert.errors import VidinvertError
from vidinvert.fileio import atomic_path
from vidinvert.mediatypes import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

#: suffix -> Pillow format name
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".webp": "WEBP",
           ".tif": "TIFF", ".tiff": "TIFF"}
_LOSSLESS_FORMATS = {"PNG", "TIFF", "BMP"}
JPEG_QUALITY = 95
WEBP_QUALITY = 95


def is_image_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def _check_input(p: Path) -> None:
    if not p.exists():
        raise VidinvertError(f"input not found: {p}")
    if p.is_dir():
        raise VidinvertError(f"input is a directory, expected an image file: {p}")


def read_image(path: str | Path) -> np.ndarray:
    """An image file -> uint8 RGB ``[H,W,3]`` (alpha dropped, greyscale expanded, EXIF-rotated)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(path)
    _check_input(p)
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


# ------------------------------------------------------------------------------------------ photos
@dataclass(eq=False)
class Photo:
    """A photo as read, upright.

    rgb: uint8 ``[H,W,3]`` RGB, possibly read-only (greyscale expanded to three equal channels; 16-bit samples
    rounded to 8 bits, ``round(v / 257)``). alpha: ``[H,W]`` uint8 or uint16 (the source's
    depth), or None. grey: the source had one colour channel. high: the 16-bit source samples,
    uint16 ``[H,W,3]`` (colour) or ``[H,W]`` (grey), or None for 8-bit sources. icc: the ICC
    profile bytes or None. exif: the EXIF block without its orientation tag, or None.
    format: Pillow's name (JPEG, PNG, WEBP, TIFF, BMP). lossless: the source was stored lossless.
    """

    path: Path
    rgb: np.ndarray
    format: str
    grey: bool = False
    alpha: np.ndarray | None = None
    high: np.ndarray | None = None
    icc: bytes | None = None
    exif: bytes | None = None
    lossless: bool = True

    @property
    def bits(self) -> int:
        return 16 if self.high is not None else 8

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])

    def describe(self) -> str:
        kind = ("greyscale" if self.grey else "RGB") + (" + alpha" if self.alpha is not None else "")
        return f"{self.format} {self.size[0]}x{self.size[1]} {kind}, {self.bits}-bit"


_REFUSED = {
    "CMYK": "CMYK", "YCbCr": "YCbCr", "LAB": "Lab", "HSV": "HSV", "F": "32-bit float",
    "I": "32-bit integer", "1": "1-bit (black and white)",
}


def _to8(a: np.ndarray) -> np.ndarray:
    """uint16 -> uint8, ``round(v / 257)``."""
    return ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _png_header(p: Path) -> tuple[int, int] | None:
    """(bit depth, colour type) of a PNG file, or None for another format."""
    with open(p, "rb") as fh:
        head = fh.read(26)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def _webp_lossless(p: Path) -> bool:
    """True when the WebP file's image chunk is VP8L (lossless)."""
    with open(p, "rb") as fh:
        head = fh.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WEBP":
            return False
        while True:
            chunk = fh.read(8)
            if len(chunk) < 8:
                return False
            fourcc, n = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if fourcc in (b"VP8 ", b"VP8L"):
                return fourcc == b"VP8L"
            fh.seek(n + (n & 1), 1)


def orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF ``orientation`` (1..8) to an ``[H,W,...]`` array (Pillow's ``exif_transpose``)."""
    ops = {
        2: lambda x: x[:, ::-1], 3: lambda x: x[::-1, ::-1], 4: lambda x: x[::-1],
        5: lambda x: x.swapaxes(0, 1), 6: lambda x: np.rot90(x, -1),
        7: lambda x: x[::-1, ::-1].swapaxes(0, 1), 8: lambda x: np.rot90(x, 1),
    }
    op = ops.get(int(orientation))
    return a if op is None else np.ascontiguousarray(op(a))


def read_photo(path: str | Path) -> Photo:
    """Read a photo upright with everything :func:`write_photo` needs to write it back in kind."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(path)
    _check_input(p)
    try:
        with Image.open(p) as im:
            fmt = im.format or FORMATS.get(p.suffix.lower(), "PNG")
            if im.mode in _REFUSED:
                raise VidinvertError(f"{p}: {_REFUSED[im.mode]} {fmt} images are not supported: "
                                     "save it as 8-bit RGB or greyscale")
            icc = im.info.get("icc_profile") or None
            exif = im.getexif()
            orientation = int(exif.get(0x0112, 1) or 1)
            png = _png_header(p) if fmt == "PNG" else None
            if png is not None and png[0] == 16 and png[1] != 0:  # 16-bit colour/grey+alpha: Pillow truncates
                photo = _read_png16(p, orientation, grey_alpha=png[1] == 4)
            else:
                if fmt == "TIFF" and im.mode not in ("I;16", "I;16B", "I;16L"):
                    bits = im.tag_v2.get(258, (8,))
                    if max(bits if isinstance(bits, tuple) else (bits,)) > 8:
                        raise VidinvertError(f"{p}: 16-bit colour TIFF is not supported: save it as a 16-bit PNG")
                im = ImageOps.exif_transpose(im)
                photo = _from_pil(p, im, fmt)
            if 0x0112 in exif:
                del exif[0x0112]
            photo.icc = icc
            photo.exif = exif.tobytes() if len(exif) else None
            photo.lossless = fmt in _LOSSLESS_FORMATS or (fmt == "WEBP" and _webp_lossless(p))
            return photo
    except UnidentifiedImageError:
        raise VidinvertError(f"not an image file (or an unsupported format): {p}") from None
    except OSError as exc:
        raise VidinvertError(f"cannot read image {p}: {exc}") from None


def _from_pil(p: Path, im, fmt: str) -> Photo:
    mode = im.mode
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else "RGB")
        mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L"):
        high = np.asarray(im).astype(np.uint16)
        g8 = _to8(high)
        return Photo(p, np.repeat(g8[..., None], 3, -1), fmt, grey=True, high=high)
    if mode in ("L", "LA"):
        a = np.asarray(im)
        g = a if mode == "L" else a[..., 0]
        return Photo(p, np.repeat(g[..., None], 3, -1), fmt, grey=True,
                     alpha=None if mode == "L" else a[..., 1].copy())
    if mode == "RGBA":
        a = np.asarray(im)
        return Photo(p, np.ascontiguousarray(a[..., :3]), fmt, alpha=a[..., 3].copy())
    if mode not in ("RGB", "RGBX"):
        raise VidinvertError(f"{p}: {fmt} images in mode {mode} are not supported: save it as 8-bit RGB")
    # one copy: the decoded image's bytes become the (read-only) array
    return Photo(p, np.asarray(im if mode == "RGB" else im.convert("RGB")), fmt)


def _read_png16(p: Path, orientation: int, *, grey_alpha: bool = False) -> Photo:
    """16-bit colour or grey+alpha PNG through OpenCV (Pillow keeps only 8 bits of these). OpenCV
    decodes grey+alpha (PNG colour type 4, ``grey_alpha``) as BGRA with the grey in all three."""
    import cv2

    a = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if a is None or a.dtype != np.uint16:
        raise VidinvertError(f"{p}: cannot read this 16-bit PNG")
    a = orient(a, orientation)
    if a.ndim == 2:
        return Photo(p, np.repeat(_to8(a)[..., None], 3, -1), "PNG", grey=True, high=a)
    ch = a.shape[2]
    if grey_alpha or ch == 2:
        return Photo(p, np.repeat(_to8(a[..., 0])[..., None], 3, -1), "PNG", grey=True,
                     high=np.ascontiguousarray(a[..., 0]), alpha=np.ascontiguousarray(a[..., ch - 1]))
    high = np.ascontiguousarray(a[..., 2::-1])  # BGR(A) -> RGB
    return Photo(p, _to8(high), "PNG", high=high, alpha=np.ascontiguousarray(a[..., 3]) if ch == 4 else None)


#: Rec. 601 luma weights in 1/65536 (Pillow's ``L``): R, G, B; they sum to 65536
LUMA_WEIGHTS = (19595, 38470, 7471)


def _luma(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB -> uint8 grey with Rec. 601 weights (Pillow's ``L``); equal channels map to themselves."""
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    kr, kg, kb = LUMA_WEIGHTS
    return ((kr * r + kg * g + kb * b + 32768) >> 16).astype(np.uint8)


def _apply_to_high(high: np.ndarray, orig8: np.ndarray, new8: np.ndarray, rows: int = 512) -> np.ndarray:
    """16-bit samples moved by the 8-bit change: ``high + 257 * (new8 - orig8)`` clipped; exact
    where the 8-bit pixel is unchanged. Row blocks keep the temporaries small."""
    out = np.empty_like(high)
    for y in range(0, high.shape[0], rows):
        sl = slice(y, y + rows)
        d = new8[sl].astype(np.int32) - orig8[sl].astype(np.int32)
        out[sl] = np.clip(high[sl].astype(np.int32) + 257 * d, 0, 65535).astype(np.uint16)
    return out


def check_photo_output(photo: Photo, path: str | Path) -> str:
    """The Pillow format for writing ``photo`` to ``path``; refuses what would lose data silently."""
    p = Path(path)
    fmt = FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise VidinvertError(f"{p}: unsupported image suffix {p.suffix!r}: use one of "
                             f"{', '.join(sorted(IMAGE_SUFFIXES))}")
    if photo.alpha is not None and fmt in ("JPEG", "BMP"):
        raise VidinvertError(f"{p}: {fmt} has no alpha channel and {photo.path.name} has one: "
                             "write .png, .webp or .tiff")
    return fmt


def write_photo(path: str | Path, photo: Photo, rgb: np.ndarray, *, overwrite: bool,
                high: np.ndarray | None = None) -> Path:
    """Write the edited uint8 RGB ``[H,W,3]`` of ``photo`` to ``path`` in the source's kind.

    ``high``: the edited 16-bit samples, the shape of ``photo.high`` (uint16 ``[H,W,3]`` colour, ``[H,W]``
    grey: the faces composited at 16 bits, :func:`vidinvert.pipeline.composite.composite_field` and
    :func:`~vidinvert.pipeline.composite.composite_grey_field`); written where 16 bits are. Without it
    the 8-bit change is moved onto the source's 16-bit samples (``high + 257 * change``).

    Format from the suffix. Greyscale sources are written greyscale, 16-bit ones 16-bit (PNG,
    and greyscale TIFF; other formats take 8 bits) with every sample outside the edit keeping
    its exact 16-bit value; alpha is written untouched; the ICC profile and the
    EXIF block (without orientation) are copied. JPEG: quality 95, 4:4:4; PNG/TIFF/BMP lossless;
    WebP lossless when the source was lossless, else quality 95. Temp file + rename.
    """
    from PIL import Image

    p = Path(path)
    fmt = check_photo_output(photo, p)
    if rgb.shape != photo.rgb.shape or rgb.dtype != np.uint8:
        raise ValueError(f"write_photo: expected uint8 {photo.rgb.shape}, got {rgb.dtype} {rgb.shape}")
    if high is not None and (photo.high is None or high.shape != photo.high.shape or high.dtype != np.uint16):
        raise ValueError(f"write_photo: high must be uint16 like the source's 16-bit samples, got {high.dtype} "
                         f"{high.shape}")
    sixteen = photo.high is not None and (fmt == "PNG" or (fmt == "TIFF" and photo.grey and photo.alpha is None))
    if photo.high is not None and not sixteen:
        log.info(f"{p.name}: {fmt} takes 8-bit samples; the 16-bit source is written with 8 bits")
    if sixteen and fmt == "PNG" and not (photo.grey and photo.alpha is None):
        with atomic_path(p, overwrite=overwrite) as tmp:
            tmp.write_bytes(_png16_bytes(photo, rgb, high))
        return p
    if photo.grey:
        g = _luma(rgb)
        if sixteen:
            im = Image.fromarray(_grey16(photo, g, high))  # uint16 -> I;16
        else:
            im = Image.fromarray(g, "L")
            if photo.alpha is not None:
                im = Image.merge("LA", (im, Image.fromarray(_alpha8(photo.alpha), "L")))
    else:
        im = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
        if photo.alpha is not None:
            im = Image.merge("RGBA", (*im.split(), Image.fromarray(_alpha8(photo.alpha), "L")))
    opts: dict = {}
    if photo.icc:
        opts["icc_profile"] = photo.icc
    if photo.exif and fmt in ("JPEG", "PNG", "WEBP"):
        opts["exif"] = photo.exif
    if fmt == "JPEG":
        opts.update(quality=JPEG_QUALITY, subsampling=0)
    elif fmt == "WEBP":
        opts.update(lossless=True, exact=True) if photo.lossless else opts.update(quality=WEBP_QUALITY, method=6)
    elif fmt == "TIFF":
        opts["compression"] = "tiff_lzw"
    elif fmt == "BMP":
        opts.pop("icc_profile", None)
    with atomic_path(p, overwrite=overwrite) as tmp:
        im.save(tmp, format=fmt, **opts)
    return p


def _alpha8(alpha: np.ndarray) -> np.ndarray:
    return alpha if alpha.dtype == np.uint8 else _to8(alpha)


def _grey16(photo: Photo, g8: np.ndarray, high: np.ndarray | None) -> np.ndarray:
    """A 16-bit grey source's written samples uint16 ``[H,W]``: ``high`` (composited at 16 bits) or,
    without it, the source's samples moved by the 8-bit change to ``g8``."""
    return high if high is not None else _apply_to_high(photo.high, photo.rgb[..., 0], g8)


def photo_samples(photo: Photo, rgb: np.ndarray, high: np.ndarray | None = None) -> np.ndarray:
    """The samples a lossless (PNG) output of ``photo`` edited to uint8 RGB ``rgb`` holds, as the photo
    job writes them: uint16 for 16-bit sources, one channel for greyscale, the alpha channel appended
    untouched. ``[H,W]``, ``[H,W,2]``, ``[H,W,3]`` or ``[H,W,4]``, in RGB(A) order. ``high``: the
    source's edited 16-bit samples (colour ``[H,W,3]`` or grey ``[H,W]``), when composited at 16 bits
    (see :func:`write_photo`); without it the 8-bit change is moved onto the 16-bit samples."""
    if photo.high is not None:
        if photo.grey:
            planes = [_grey16(photo, _luma(rgb) if high is None else None, high)]
        else:
            high = _apply_to_high(photo.high, photo.rgb, rgb) if high is None else high
            planes = [high[..., 0], high[..., 1], high[..., 2]]
        if photo.alpha is not None:
            a = photo.alpha
            planes.append(a if a.dtype == np.uint16 else a.astype(np.uint16) * 257)
    else:
        planes = [_luma(rgb)] if photo.grey else [rgb[..., 0], rgb[..., 1], rgb[..., 2]]
        if photo.alpha is not None:
            planes.append(_alpha8(photo.alpha))
    return planes[0] if len(planes) == 1 else np.dstack(planes)


def _png16_bytes(photo: Photo, rgb: np.ndarray, high: np.ndarray | None = None) -> bytes:
    """A 16-bit PNG of the edited photo (OpenCV's encoder; grey+alpha, which OpenCV cannot write:
    :func:`_png16_grey_alpha`), with the ICC profile as an iCCP chunk."""
    import cv2

    arr = photo_samples(photo, rgb, high)
    if arr.ndim == 3 and arr.shape[2] == 2:
        data = _png16_grey_alpha(arr)
    else:
        if arr.ndim == 3:  # RGB(A) -> BGR(A)
            arr = np.ascontiguousarray(arr[..., [2, 1, 0, *range(3, arr.shape[2])]])
        ok, buf = cv2.imencode(".png", arr)
        if not ok:  # pragma: no cover - OpenCV failure
            raise VidinvertError(f"cannot encode a 16-bit PNG for {photo.path.name}")
        data = buf.tobytes()
    if photo.icc:
        chunk = _png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(photo.icc))
        data = data[:33] + chunk + data[33:]  # right after the signature and IHDR
    return data


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png16_grey_alpha(arr: np.ndarray, rows: int = 256) -> bytes:
    """uint16 ``[H,W,2]`` (grey, alpha) as a 16-bit grey+alpha PNG (colour type 4; every row with the
    Up filter), compressed in row blocks."""
    h, w = arr.shape[:2]
    comp = zlib.compressobj(6)
    parts = []
    prev = np.zeros(w * 4, np.uint8)
    for y in range(0, h, rows):
        raw = arr[y : y + rows].astype(">u2").view(np.uint8).reshape(-1, w * 4)
        up = np.empty((len(raw), w * 4 + 1), np.uint8)
        up[:, 0] = 2  # Up: each byte minus the byte above (mod 256)
        up[:, 1:] = raw - np.concatenate([prev[None], raw[:-1]])
        prev = raw[-1]
        parts.append(comp.compress(up.tobytes()))
    parts.append(comp.flush())
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 4, 0, 0, 0))
            + _png_chunk(b"IDAT", b"".join(parts)) + _png_chunk(b"IEND", b""))
