"""HDR test clips written with PyAV and libx265 directly (no vidinvert code): 10-bit PQ with
mastering-display and content-light-level SEI, 10-bit HLG without, 12-bit PQ.

The metadata are given in x265's own units (chromaticity 0.00002, luminance 0.0001 cd/m²), so
:data:`MASTER_DISPLAY` and :data:`MAX_CLL` are the values a reader must report.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

# P3-D65 primaries mastered on a 1000 cd/m² display with a 0.005 cd/m² black (a typical HDR10 grade).
MASTER_DISPLAY = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50)"
MASTER_VALUES = {"green": (0.265, 0.69), "blue": (0.15, 0.06), "red": (0.68, 0.32), "white_point": (0.3127, 0.329),
                 "max_luminance": 1000.0, "min_luminance": 0.005}
MAX_CLL = (1000, 400)
TRC = {"pq": 16, "hlg": 18}


def hdr_planes(i: int, w: int, h: int, depth: int, sub: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame ``i``'s limited-range Y, U, V planes (chroma subsampled by ``sub`` both ways: 2 = 4:2:0,
    1 = 4:4:4) at ``depth`` bits: a luma ramp over the whole range (black to peak), mild chroma
    gradients (skin-like, inside BT.709), moving."""
    scale = 1 << (depth - 8)
    y = np.linspace(16 * scale, 235 * scale, w)[None, :] + np.zeros((h, 1))
    y = np.roll(y, 2 * i, axis=1)
    cw, ch = w // sub, h // sub
    u = 128 * scale - 2 * scale + 1 * scale * np.linspace(0, 1, ch)[:, None] + np.zeros((1, cw))
    v = 128 * scale + 2 * scale + 2 * scale * np.linspace(0, 1, cw)[None, :] + np.zeros((ch, 1))
    return tuple(np.round(p).astype(np.uint16) for p in (y, u, v))


def make_hdr_clip(path: str | Path, *, transfer: str = "pq", depth: int = 10, metadata: bool = True,
                  size: tuple[int, int] = (64, 48), n_frames: int = 3, chroma: str = "420") -> Path:
    """A libx265 clip tagged BT.2020 / ``transfer`` / BT.2020 NCL, limited range, ``chroma`` (420 | 444) ``depth``-bit;
    with ``metadata`` the PQ mastering display and MaxCLL SEI (:data:`MASTER_DISPLAY`, :data:`MAX_CLL`)."""
    path = Path(path)
    w, h = size
    pix_fmt = f"yuv{chroma}p{depth}le"
    sub = 2 if chroma == "420" else 1
    params = ["log-level=error", "repeat-headers=1"]
    if metadata:
        params += ["hdr10=1", f"master-display={MASTER_DISPLAY}", f"max-cll={MAX_CLL[0]},{MAX_CLL[1]}"]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx265", rate=25)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        cc = s.codec_context
        cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = 9, TRC[transfer], 9, 1
        cc.options = {"crf": "12", "preset": "ultrafast", "x265-params": ":".join(params)}
        for i in range(n_frames):
            f = av.VideoFrame(w, h, pix_fmt)
            for plane, arr in zip(f.planes, hdr_planes(i, w, h, depth, sub)):
                buf = np.frombuffer(plane, dtype=np.uint16).reshape(plane.height, -1)
                buf[:, : arr.shape[1]] = arr
            f.color_primaries, f.color_trc, f.colorspace, f.color_range = 9, TRC[transfer], 9, 1
            f.pts = i
            for pk in s.encode(f):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    return path


def decoded_signal(path: str | Path) -> np.ndarray:
    """The first frame as R'G'B' signal, float64 HxWx3 in [0, 1] (FFmpeg's BT.2020 YUV -> RGB,
    limited range, at 16 bits): what the networks' rendering R is applied to."""
    from av.video.reformatter import ColorRange, Colorspace

    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
        rgb = frame.reformat(format="rgb48le", src_colorspace=Colorspace.BT2020, src_color_range=ColorRange.MPEG,
                             dst_color_range=ColorRange.JPEG).to_ndarray()
    return rgb.astype(np.float64) / 65535.0


def make_hdr_face_clip(path: str | Path, n_frames: int = 4, size: tuple[int, int] = (176, 144)) -> Path:
    """:func:`~tests.face_clips.face_frame` pictures stored as 10-bit PQ BT.2020 (libx265, with the
    mastering metadata): the 8-bit RGB values are taken as the PQ signal, so the frames look like
    the SDR face to the detector (enough for the plumbing; not a real grade)."""
    from av.video.reformatter import ColorRange, Colorspace

    from tests.face_clips import face_frame

    path = Path(path)
    w, h = size
    params = ["log-level=error", "repeat-headers=1", "hdr10=1", f"master-display={MASTER_DISPLAY}",
              f"max-cll={MAX_CLL[0]},{MAX_CLL[1]}"]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx265", rate=25)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p10le"
        cc = s.codec_context
        cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = 9, TRC["pq"], 9, 1
        cc.options = {"crf": "10", "preset": "ultrafast", "x265-params": ":".join(params)}
        for i in range(n_frames):
            src = av.VideoFrame.from_ndarray(face_frame(i, size), format="rgb24")
            f = src.reformat(format="yuv420p10le", src_color_range=ColorRange.JPEG, dst_colorspace=Colorspace.BT2020,
                             dst_color_range=ColorRange.MPEG)
            f.color_primaries, f.color_trc, f.colorspace, f.color_range = 9, TRC["pq"], 9, 1
            f.pts = i
            for pk in s.encode(f):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    return path
