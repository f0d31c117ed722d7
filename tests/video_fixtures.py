"""Test clips generated with PyAV (small, deterministic): reused by every video/pipeline test.

Everything here writes with PyAV directly (no vidinvert code), so the clips are an independent
reference for the reader and writer:

* :func:`pattern` is the **displayed** (upright) content of frame ``i``;
* :func:`make_clip` encodes those frames (any codec / pixel format / range / matrix / rotation /
  timestamps) plus a sine audio track and returns a :class:`Clip` with what was written;
* :func:`make_yuv_clip` stores exact Y, U, V sample planes (lossless), for colour checks;
* bad inputs: :func:`make_audio_only`, :func:`make_zero_frames`, :func:`make_not_a_video`,
  :func:`make_still_image`, :func:`make_truncated`, :func:`make_corrupted`,
  :func:`make_unsupported_codec`.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace

_AVCOL_SPC = {"bt601": 6, "bt709": 1}
_SWS_CS = {"bt601": Colorspace.ITU601, "bt709": Colorspace.ITU709}
_RANGE = {"limited": ColorRange.MPEG, "full": ColorRange.JPEG}


@dataclass(frozen=True)
class Clip:
    """What :func:`make_clip` wrote. Sizes are displayed (upright); ``times`` in seconds."""

    path: Path
    width: int
    height: int
    times: tuple[float, ...]
    fps: Fraction | None
    rotation: int
    audio_seconds: float | None
    sample_rate: int | None
    pattern: str

    @property
    def n_frames(self) -> int:
        return len(self.times)

    def frame(self, i: int) -> np.ndarray:
        """The upright RGB content of frame ``i`` (what a correct reader returns, before coding loss)."""
        return pattern(i, self.width, self.height, self.pattern)


def pattern(i: int, width: int, height: int, kind: str = "moving") -> np.ndarray:
    """Frame ``i`` as displayed: HxWx3 uint8 RGB.

    ``moving``: smooth colour gradients + a bright square that moves (compresses well, so CRF
    round trips reach a high PSNR) + a red marker in the top-left corner (orientation checks).
    ``noise``: seeded uniform noise (hard to compress). ``flat``: one colour per frame.
    """
    if kind == "noise":
        return np.random.default_rng(i).integers(0, 256, (height, width, 3), dtype=np.uint8)
    if kind == "flat":
        return np.full((height, width, 3), ((i * 37) % 200 + 20, (i * 71) % 200 + 20, (i * 13) % 200 + 20), np.uint8)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.empty((height, width, 3), np.float32)
    img[..., 0] = 60 + 120 * x / max(1, width - 1)
    img[..., 1] = 60 + 120 * y / max(1, height - 1)
    img[..., 2] = 120 + 60 * np.sin((x + y) / 9.0 + i * 0.3)
    s = max(4, min(width, height) // 4)
    cx = (i * 3) % max(1, width - s)
    cy = (i * 2) % max(1, height - s)
    img[cy : cy + s, cx : cx + s] = (230, 230, 200)
    m = max(2, min(width, height) // 8)
    img[:m, :m] = (230, 20, 20)  # top-left marker
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def tone(n: int, sample_rate: int, channels: int, hz: float = 440.0) -> np.ndarray:
    """A sine (amplitude 0.3): float32 [channels, n] (channel c at ``hz * (c + 1)``)."""
    t = np.arange(n, dtype=np.float64) / sample_rate
    return np.stack([0.3 * np.sin(2 * np.pi * hz * (c + 1) * t) for c in range(channels)]).astype(np.float32)


def _add_audio_stream(container, codec: str, sample_rate: int, channels: int):
    layout = {1: "mono", 2: "stereo"}[channels]
    return container.add_stream(codec, rate=sample_rate, layout=layout)


def _write_audio(container, a, seconds: float) -> None:
    sample_rate, channels = a.codec_context.sample_rate, a.codec_context.channels
    layout = {1: "mono", 2: "stereo"}[channels]
    fmt = a.codec_context.codec.audio_formats[0].name
    n_total = int(round(seconds * sample_rate))
    chunk = a.codec_context.frame_size or 1024
    samples = tone(n_total, sample_rate, channels)
    dtype, scale = {"flt": (np.float32, 1.0), "dbl": (np.float64, 1.0), "s16": (np.int16, 32767.0),
                    "s32": (np.int32, 2147483647.0)}[fmt.rstrip("p")]
    for start in range(0, n_total, chunk):
        block = samples[:, start : start + chunk] * scale
        arr = block if fmt.endswith("p") else block.T.reshape(1, -1)  # planar or packed
        arr = arr.astype(dtype)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format=fmt, layout=layout)
        frame.sample_rate = sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, sample_rate)
        for pk in a.encode(frame):
            container.mux(pk)
    for pk in a.encode():
        container.mux(pk)


def make_clip(
    path: str | Path,
    *,
    size: tuple[int, int] = (64, 48),
    n_frames: int = 12,
    fps: int | Fraction = 25,
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
    crf: int | None = 12,
    rotation: int = 0,
    hflip: bool = False,
    color_range: str | None = None,
    colorspace: str | None = None,
    audio: bool = True,
    audio_codec: str = "aac",
    sample_rate: int = 48000,
    channels: int = 2,
    audio_seconds: float | None = None,
    kind: str = "moving",
    container_options: dict[str, str] | None = None,
) -> Clip:
    """Write a clip whose displayed frames are ``pattern(i, *size, kind)``.

    ``size`` is the displayed (width, height); with ``rotation`` (clockwise degrees, 90/180/270)
    the stored frames are turned the other way and a display matrix is written, as phones do.
    ``pts`` (in ``time_base``, default ``1/fps``) gives per-frame timestamps (VFR); otherwise
    frame i is at ``i / fps``. ``color_range`` ('limited'|'full') / ``colorspace``
    ('bt601'|'bt709') are used for the RGB->YUV conversion **and** tagged; None leaves the
    stream untagged (converted as BT.601 limited). Audio: a sine of ``audio_seconds`` (default:
    the video's duration).
    """
    path = Path(path)
    width, height = size
    fps = Fraction(fps)
    tb = time_base or (Fraction(1, 1000) if pts is not None else 1 / fps)
    if pts is None:
        pts = [round(i / fps / tb) for i in range(n_frames)]
    pts = list(pts)
    k = (rotation // 90) % 4
    with av.open(str(path), "w", options=container_options or {}) as c:
        s = c.add_stream(codec, rate=fps)
        stored_w, stored_h = (height, width) if k % 2 else (width, height)
        s.width, s.height, s.pix_fmt = stored_w, stored_h, pix_fmt
        s.time_base = tb
        s.codec_context.time_base = tb
        opts = dict(options or {})
        if crf is not None and codec in ("libx264", "libx265"):
            opts.setdefault("crf", str(crf))
        if codec == "libx265":
            opts.setdefault("x265-params", "log-level=error")
        s.codec_context.options = opts
        if colorspace:
            s.codec_context.colorspace = _AVCOL_SPC[colorspace]
        if color_range:
            s.codec_context.color_range = int(_RANGE[color_range])
        if rotation or hflip:
            s.set_display_rotation(-float(rotation), hflip=hflip)
        a = _add_audio_stream(c, audio_codec, sample_rate, channels) if audio else None
        for i, t in enumerate(pts):
            img = pattern(i, width, height, kind)
            if hflip:
                img = img[:, ::-1]
            stored = np.ascontiguousarray(np.rot90(img, k))  # display turns it back clockwise
            f = av.VideoFrame.from_ndarray(stored, format="rgb24")
            f = f.reformat(
                format=pix_fmt,
                src_color_range=ColorRange.JPEG,
                dst_colorspace=_SWS_CS.get(colorspace or "bt601"),
                dst_color_range=_RANGE[color_range or "limited"],
            )
            f.pts = t
            f.time_base = tb
            for pk in s.encode(f):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
        dur = float((pts[-1] - pts[0]) * tb + (tb * (pts[-1] - pts[-2]) if len(pts) > 1 else 1 / fps))
        a_sec = None
        if audio:
            a_sec = audio_seconds if audio_seconds is not None else dur
            _write_audio(c, a, a_sec)
    return Clip(
        path=path,
        width=width,
        height=height,
        times=tuple(float((p - pts[0]) * tb) for p in pts),
        fps=fps,
        rotation=rotation,
        audio_seconds=a_sec,
        sample_rate=sample_rate if audio else None,
        pattern=kind,
    )


def make_yuv_clip(
    path: str | Path,
    planes: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    *,
    pix_fmt: str = "yuv444p",
    colorspace: str | None = "bt709",
    color_range: str | None = "limited",
    fps: int = 25,
) -> Path:
    """Store exact Y, U, V samples losslessly (FFV1 in Matroska), tagged as given.

    ``planes``: per frame (y, u, v) arrays [H, W] of uint8 (8-bit formats) or uint16 holding
    10-bit values (``yuv444p10le``). Tags: None leaves that tag unspecified.
    """
    path = Path(path)
    h, w = planes[0][0].shape
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        if colorspace:
            s.codec_context.colorspace = _AVCOL_SPC[colorspace]
        if color_range:
            s.codec_context.color_range = int(_RANGE[color_range])
        for i, (y, u, v) in enumerate(planes):
            f = av.VideoFrame(w, h, pix_fmt)
            dtype = np.uint16 if "10" in pix_fmt else np.uint8
            for plane, arr in zip(f.planes, (y, u, v)):
                buf = np.frombuffer(plane, dtype=dtype).reshape(plane.height, -1)
                buf[:, :w] = arr
            if colorspace:
                f.colorspace = _AVCOL_SPC[colorspace]
            if color_range:
                f.color_range = int(_RANGE[color_range])
            f.pts = i
            for pk in s.encode(f):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    return path


# ------------------------------------------------------------------------------------------
# Bad inputs
# ------------------------------------------------------------------------------------------
def make_audio_only(path: str | Path, seconds: float = 0.3) -> Path:
    path = Path(path)
    with av.open(str(path), "w") as c:
        _write_audio(c, _add_audio_stream(c, "aac", 48000, 2), seconds)
    return path


def make_zero_frames(path: str | Path) -> Path:
    """A Matroska file with a video stream (H.264) but no frames, and a short audio track."""
    path = Path(path).with_suffix(".mkv")
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        _write_audio(c, _add_audio_stream(c, "aac", 48000, 2), 0.1)
    return path


def make_not_a_video(path: str | Path) -> Path:
    path = Path(path)
    path.write_text("this is not a video\n" * 50)
    return path


def make_still_image(path: str | Path) -> Path:
    path = Path(path).with_suffix(".png")
    with av.open(str(path), "w", format="image2") as c:
        s = c.add_stream("png", rate=1)
        s.width, s.height, s.pix_fmt = 16, 16, "rgb24"
        f = av.VideoFrame.from_ndarray(pattern(0, 16, 16))
        f.pts = 0
        for pk in s.encode(f):
            c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    return path


def make_truncated(src: str | Path, dest: str | Path, fraction: float = 0.6) -> Path:
    """The first ``fraction`` of ``src``'s bytes (use a faststart MP4 or an MKV as ``src``)."""
    data = Path(src).read_bytes()
    Path(dest).write_bytes(data[: int(len(data) * fraction)])
    return Path(dest)


def make_corrupted(src: str | Path, dest: str | Path, at: float = 0.5, n_bytes: int = 2000, seed: int = 1) -> Path:
    """``src`` with ``n_bytes`` of seeded random bytes written over the middle."""
    data = bytearray(Path(src).read_bytes())
    pos = int(len(data) * at)
    data[pos : pos + n_bytes] = np.random.default_rng(seed).integers(0, 256, n_bytes, dtype=np.uint8).tobytes()
    Path(dest).write_bytes(bytes(data))
    return Path(dest)


def make_concealed_damage(src: str | Path, dest: str | Path, packet: int = 20, n_bytes: int = 40,
                          seed: int = 0) -> Path:
    """``src`` with seeded random bytes over the slice data of video packet ``packet`` (decode order).

    The file stays decodable: FFmpeg's H.264 error resilience conceals the broken macroblocks
    and flags the frames it repaired.
    """
    with av.open(str(src)) as c:
        pk = [(p.pos, p.size) for p in c.demux(c.streams.video[0]) if p.size]
    pos, size = pk[packet]
    n = min(n_bytes, size - 20)
    data = bytearray(Path(src).read_bytes())
    at = pos + 10 + (size - n - 20) // 2
    data[at : at + n] = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    Path(dest).write_bytes(bytes(data))
    return Path(dest)


def find_concealed_damage(src: str | Path, dest: str | Path, packets: Sequence[int]) -> tuple[Path, list[int]]:
    """The first of ``packets`` whose damage (:func:`make_concealed_damage`) FFmpeg conceals: the
    file decodes to the end and some frames carry the decoder's error flag. Returns the damaged
    file and the pts of the flagged frames, read with plain PyAV (the reference for the reader) on
    one decoder thread: with frame threads, which frames FFmpeg flags varies from run to run, so
    tests compare single-threaded decodes (:func:`single_threaded_decoding`).
    Which packets qualify depends on the encoder's bitstream, hence the search."""
    for k in packets:
        make_concealed_damage(src, dest, packet=k)
        try:
            with av.open(str(dest)) as c:
                s = c.streams.video[0]
                s.codec_context.thread_count = 1
                flagged = [f.pts for f in c.decode(s) if f.is_corrupt]
        except av.FFmpegError:
            continue
        if flagged:
            return Path(dest), flagged
    raise AssertionError(f"no damage FFmpeg conceals found in packets {list(packets)} of {src}")


def single_threaded_decoding(monkeypatch) -> None:
    """Make vidinvert's reader decode on one thread (deterministic error flags; see above)."""
    import vidinvert.video.reader as reader

    configure = reader._configure_decoder
    monkeypatch.setattr(reader, "_configure_decoder", lambda stream, threads: configure(stream, 1))


def make_unsupported_codec(path: str | Path) -> Path:
    """A Matroska file whose video stream is AVS3, which this FFmpeg build cannot decode."""
    path = Path(path).with_suffix(".mkv")
    with av.open(str(path), "w") as c:
        s = c.add_mux_stream("avs3", rate=25, width=64, height=48)
        s.time_base = Fraction(1, 25)
        for i in range(3):
            pk = av.Packet(b"\x00\x00\x01" + bytes(100))
            pk.stream, pk.pts, pk.dts, pk.time_base = s, i, i, Fraction(1, 25)
            pk.is_keyframe = i == 0
            c.mux(pk)
    return path


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (inf when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


class LogCapture:
    """Collects log records of a logger tree (the CLI turns off propagation of ``vidinvert``,
    so pytest's caplog may miss them once a CLI test has run in the same process).

    ``with LogCapture("vidinvert.video") as logs: ...; logs.messages(logging.WARNING)``
    """

    def __init__(self, name: str = "vidinvert") -> None:
        import logging

        self._logger = logging.getLogger(name)
        self.records: list = []
        outer = self

        class _H(logging.Handler):
            def emit(self, record):  # noqa: D102
                outer.records.append(record)

        self._handler = _H(level=logging.DEBUG)

    def __enter__(self) -> LogCapture:
        import logging

        self._old_level = self._logger.level
        self._logger.addHandler(self._handler)
        if self._logger.getEffectiveLevel() > logging.INFO:
            self._logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc) -> None:
        self._logger.removeHandler(self._handler)
        self._logger.setLevel(self._old_level)

    def messages(self, level: int = 30) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= level]
