"""Clips with real faces for pipeline tests: the astronaut's face (skimage) on a plain background.

Written with PyAV directly (frames + a sine audio track), so they are an independent input.
"""

from __future__ import annotations

import struct
import zlib
from fractions import Fraction
from pathlib import Path
from typing import Callable, Sequence

import av
import numpy as np
from PIL import Image

from tests.video_fixtures import _add_audio_stream, _write_audio


def face_patch(size: int) -> np.ndarray:
    """The astronaut's head and shoulders, square, ``size`` px (uint8 RGB)."""
    from skimage import data

    img = data.astronaut()[0:260, 110:370]
    return np.asarray(Image.fromarray(img).resize((size, size), Image.BICUBIC))


def write_png16_grey_alpha(path: Path, ga: np.ndarray) -> Path:
    """uint16 ``[H,W,2]`` (grey, alpha) as a 16-bit grey+alpha PNG written by hand (colour type 4, no row
    filter): neither OpenCV nor Pillow writes one."""
    h, w = ga.shape[:2]
    raw = b"".join(b"\x00" + ga[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 4, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return Path(path)


def face_frame(i: int, size=(176, 144), face_px: int = 96, faces: Sequence[tuple[int, int]] = ((40, 20),),
               drift: float = 0.5) -> np.ndarray:
    """A frame with one astronaut face per (x, y) offset, drifting by ``drift`` px per frame."""
    w, h = size
    frame = np.full((h, w, 3), (90, 110, 130), np.uint8)
    patch = face_patch(face_px)
    for x, y in faces:
        x = int(round(x + drift * i))
        y = int(round(y + 0.5 * drift * i))
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(w, x + face_px), min(h, y + face_px)
        frame[y0:y1, x0:x1] = patch[y0 - y : y1 - y, x0 - x : x1 - x]
    return frame


def make_face_clip(path: str | Path, *, n_frames: int = 8, size=(176, 144), fps: int = 25,
                   frame_fn: Callable[[int], np.ndarray] | None = None, pts: Sequence[int] | None = None,
                   time_base: Fraction | None = None, rotation: int = 0, audio: bool = True,
                   codec: str = "libx264", crf: int = 10) -> Path:
    """Encode ``frame_fn(i)`` (default :func:`face_frame`) with a sine audio track."""
    path = Path(path)
    frame_fn = frame_fn or (lambda i: face_frame(i, size))
    fps_f = Fraction(fps)
    tb = time_base or (Fraction(1, 1000) if pts is not None else 1 / fps_f)
    pts = list(pts) if pts is not None else [round(i / fps_f / tb) for i in range(n_frames)]
    k = (rotation // 90) % 4
    w, h = size
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps_f)
        s.width, s.height = (h, w) if k % 2 else (w, h)
        s.pix_fmt = "yuv420p" if codec != "ffv1" else "bgr0"
        s.time_base = tb
        s.codec_context.time_base = tb
        if codec == "libx264":
            s.codec_context.options = {"crf": str(crf)}
        if rotation:
            s.set_display_rotation(-float(rotation))
        a = _add_audio_stream(c, "aac", 48000, 2) if audio else None
        for i, t in enumerate(pts):
            img = np.ascontiguousarray(np.rot90(frame_fn(i), k))
            f = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format=s.pix_fmt)
            f.pts, f.time_base = t, tb
            for pk in s.encode(f):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
        if audio:
            dur = float((pts[-1] - pts[0] + (pts[-1] - pts[-2] if len(pts) > 1 else round(1 / fps_f / tb))) * tb)
            _write_audio(c, a, dur)
    return path
