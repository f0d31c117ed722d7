"""Encoder: upright RGB frames + the source's timestamps and other streams -> a new clip, atomically.

``VideoWriter(dest, like=info, ...)`` is a context manager. Frames are written with their
source pts (``info.time_base`` units): the output keeps the time base (where the container
can: MP4/MOV yes, Matroska rounds to milliseconds), per-frame timestamps (VFR stays VFR), the
frame size (frames are upright; no rotation tag is written) and the pixel aspect (in the codec
and the container: MP4/MOV ``pasp``, Matroska display size, see :mod:`vidinvert.video.matroska`),
so players show the source's displayed size; the colour range and matrix (as tags, and used for
the RGB->YUV conversion); and, from ``carry_from``, every audio and subtitle stream, data
streams, covers, attachments, chapters, timecode and tags (:mod:`vidinvert.video.carry`).

Safety: the clip is written to ``.<name>.partial-XXXX<ext>`` next to ``dest`` and renamed
over it only when complete; on any exception the partial file is removed. ``dest`` may not be
an input (``like.path`` or ``carry_from``), and an existing ``dest`` needs ``overwrite=True``.
Inputs are only ever opened for reading.

Pixel format (``pix_fmt=None``): libx264/libx265 keep the source's chroma layout (4:2:0,
4:2:2, 4:4:4) and bit depth (10-bit -> ``yuv4xxp10le``; 12-bit -> ``yuv4xxp12le`` with
libx265, 10-bit with libx264); odd sizes cannot be 4:2:0/4:2:2, so
they get 4:4:4 with a notice. With ``planes=True`` (the video job: frames written as the source's
:class:`~vidinvert.video.planes.Planes`) FFV1 writes the source's own pixel format when it is a
planar YUV or RGB format, so every sample is kept (outside the faces the output decodes to the
source's decoded samples exactly). Otherwise FFV1 writes ``bgr0`` (``gbrp10le`` for >8-bit
sources): exact RGB, so decoding gives back the written RGB frames bit for bit.

HDR sources (PQ, HLG; :mod:`vidinvert.video.hdrmeta`): the transfer, primaries and matrix are
tagged as the source's; libx265 also writes the source's mastering-display and content-light-level
metadata (``x265-params``); other encoders drop them with one notice naming what was dropped.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from vidinvert.choices import Codec, Preset
from vidinvert.errors import VidinvertError
from vidinvert.fileio import publish
from vidinvert.timespec import TimeRange
from vidinvert.video.carry import StreamCarrier, tag_output
from vidinvert.video.colour import ColourSpec, chroma_layout, sws_args
from vidinvert.video.hdr_frames import frame_maker_for
from vidinvert.video.hdrmeta import notice_dropped, x265_hdr_params
from vidinvert.video.matroska import set_display_size
from vidinvert.video.planes import Planes, planar_format
from vidinvert.video.probe import VideoInfo, check_input_path

log = logging.getLogger(__name__)

CODECS = Codec.values()
PRESETS = Preset.values()
_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def choose_pix_fmt(codec: str, like: VideoInfo, requested: str | None = None, planes: bool = False) -> str:
    """The output pixel format for ``codec`` given the source (see the module doc); ``planes``: the
    frames come as the source's :class:`~vidinvert.video.planes.Planes` (FFV1 then keeps its format)."""
    supported = [f.name for f in (av.Codec(codec, "w").video_formats or ())]
    w, h = like.width, like.height
    if requested:
        if supported and requested not in supported:
            raise VidinvertError(f"--pix-fmt {requested} is not supported by {codec}: use one of {', '.join(supported)}")
        chroma = chroma_layout(requested)
        if (chroma in ("420", "422", "411") and w % 2) or (chroma in ("420", "440") and h % 2):
            raise VidinvertError(f"--pix-fmt {requested} cannot hold the odd size {w}x{h}: use yuv444p")
        return requested
    deep = like.bit_depth > 8
    if codec == "ffv1":
        if planes and like.pix_fmt in supported and _holds(like.pix_fmt, w, h):
            return like.pix_fmt  # the source's own samples, kept exactly
        return "gbrp10le" if deep and "gbrp10le" in supported else "bgr0"
    chroma = like.chroma if like.chroma in ("420", "422", "444") else ("444" if like.chroma == "rgb" else "420")
    odd = (chroma in ("420", "422") and w % 2) or (chroma == "420" and h % 2)
    if odd:
        log.warning("odd size %dx%d cannot be stored as 4:%s:%s; writing yuv444p%s (less widely playable)",
                    w, h, chroma[1], chroma[2], "10le" if deep else "")
        chroma = "444"
    fmt = f"yuv{chroma}p"
    if deep:
        depths = [d for d in ("12", "10") if int(d) <= max(10, like.bit_depth) and f"{fmt}{d}le" in supported]
        if depths:
            if int(depths[0]) < like.bit_depth:
                log.warning("%s cannot write %d-bit video; writing %s-bit", codec, like.bit_depth, depths[0])
            return f"{fmt}{depths[0]}le"
        log.warning("%s in this FFmpeg build cannot write %d-bit video; writing 8-bit %s", codec, like.bit_depth, fmt)
    return fmt


def _holds(pix_fmt: str, w: int, h: int) -> bool:
    """A frame of ``w`` x ``h`` fits ``pix_fmt``'s chroma blocks (no odd size in a subsampled direction)."""
    fmt = planar_format(pix_fmt)
    return fmt is not None and w % fmt[1][0] == 0 and h % fmt[1][1] == 0


def check_encoder_available(codec: str) -> None:
    """The FFmpeg build PyAV carries has the ``codec`` encoder (VidinvertError otherwise)."""
    try:
        av.Codec(str(codec), "w")
    except Exception:
        raise VidinvertError(f"this FFmpeg build has no {codec} encoder; choose another --codec") from None


def check_encoder_settings(codec: str, crf: float, preset: str) -> None:
    """``--codec``/``--crf``/``--preset`` valid and the encoder present (VidinvertError otherwise); a
    request checks the same values with the same rules (:meth:`~vidinvert.pipeline.request.InvertRequest.check`)."""
    Codec.parse(codec, "--codec")
    check_encoder_available(codec)
    if codec in (Codec.LIBX264, Codec.LIBX265):
        Preset.parse(preset, "--preset")
        if not 0 <= crf <= 51:
            raise VidinvertError(f"--crf {crf:g} is out of range: use 0 (lossless) .. 51 (worst); 18 is the default")


class VideoWriter:
    """Writes upright RGB frames to ``dest`` (see the module doc for what is kept).

    Arguments: ``like`` the source's :class:`VideoInfo` (size, time base, rate, colour,
    bit depth, pixel aspect); ``codec`` libx264 | libx265 | ffv1; ``crf``/``preset`` for
    x264/x265; ``pix_fmt`` None = automatic; ``carry_from`` a clip whose audio, subtitles and
    other streams, chapters and tags are carried over (usually the source; None = none, the
    container tags then come from ``like``); ``time_range`` the trim the frames come from: when
    set, the output starts at 0 and the carried streams and chapters are cut to the span of the
    written frames; ``metadata`` tags added to the source's (``encoder`` on the video stream);
    ``planes``: the frames are (mostly) written as the source's Planes, so FFV1 takes the source's own
    pixel format (else RGB, which keeps RGB frames exact).
    """

    def __init__(
        self,
        dest: str | os.PathLike,
        *,
        like: VideoInfo,
        codec: str = "libx264",
        crf: float = 18,
        preset: str = "medium",
        pix_fmt: str | None = None,
        overwrite: bool = False,
        carry_from: str | os.PathLike | None = None,
        time_range: TimeRange | None = None,
        metadata: Mapping[str, str] | None = None,
        threads: int = 0,
        codec_options: Mapping[str, str] | None = None,
        planes: bool = False,
    ) -> None:
        self.dest = Path(dest).expanduser()
        self.like = like
        self.codec = codec
        self.trimmed = bool(time_range and (time_range.start or time_range.end))
        self._check_dest(overwrite, carry_from)
        check_encoder_settings(codec, crf, preset)
        self.pix_fmt = choose_pix_fmt(codec, like, pix_fmt, planes)
        fmt = _FORMATS[self.dest.suffix.lower()]
        fd, tmp = tempfile.mkstemp(prefix=f".{self.dest.stem}.partial-", suffix=self.dest.suffix, dir=self.dest.parent)
        os.close(fd)
        self.partial = Path(tmp)
        self._out = None
        self._carrier: StreamCarrier | None = None
        self.format = fmt
        self._held: tuple[np.ndarray, int, int | None] | None = None
        self._durations: dict[int, int] = {}
        self._first_pts: int | None = None
        self._last_pts: int | None = None
        self._last_delta: int | None = None
        self.frames_written = 0
        self._closed = False
        try:
            self._out = av.open(str(self.partial), "w", format=fmt)
            self._setup_video(fmt, crf, preset, threads, dict(codec_options or {}))
            if carry_from is not None:
                self._carrier = StreamCarrier(check_input_path(carry_from), self._out, fmt, video=self._stream,
                                              trimmed=self.trimmed, tags=metadata, rate=like.avg_frame_rate,
                                              start_time=like.start_time)
            else:
                tag_output(self._out, self._stream, dict(like.metadata), {}, metadata)
        except BaseException:
            self.abort()
            raise

    # -- setup ------------------------------------------------------------------------------
    def _check_dest(self, overwrite: bool, carry_from) -> None:
        d = self.dest
        if d.suffix.lower() not in _FORMATS:
            raise VidinvertError(f"{d}: unsupported output type '{d.suffix}': use .mp4, .mov or .mkv")
        inputs = [self.like.path] + ([Path(carry_from)] if carry_from is not None else [])
        for src in inputs:
            if _same_file(d, src) or d.resolve() == Path(src).expanduser().resolve():
                raise VidinvertError(f"refusing to write over the input {src}: choose another output path")
        if d.is_dir():
            raise VidinvertError(f"{d} is a folder: give an output file name")
        if not d.parent.is_dir():
            raise VidinvertError(f"output folder {d.parent} does not exist")
        if d.exists() and not overwrite:
            raise VidinvertError(f"{d} already exists: pass --overwrite to replace it")

    def _setup_video(self, fmt: str, crf: float, preset: str, threads: int, extra: dict[str, str]) -> None:
        like = self.like
        rate = like.avg_frame_rate or Fraction(25)
        s = self._out.add_stream(self.codec, rate=rate)
        s.width, s.height, s.pix_fmt = like.width, like.height, self.pix_fmt
        s.time_base = like.time_base
        cc = s.codec_context
        cc.time_base = like.time_base
        cc.framerate = rate
        cc.thread_count = threads
        colour = like.colour
        if colour.matrix == "rgb":  # RGB source into a YUV format: tag what we convert with
            colour = ColourSpec("bt709" if like.height >= 720 else "bt601", "limited", True, True,
                                colour.primaries, colour.trc)
        self._maker = frame_maker_for(self.pix_fmt, colour, like)  # R⁻¹ first for HDR (video.hdr_frames)
        self._sws = VideoReformatter()
        spec = self._maker.spec
        cc.colorspace = spec.avcol_matrix
        cc.color_range = spec.avcol_range
        cc.color_primaries = spec.primaries
        cc.color_trc = spec.trc
        if like.pixel_aspect != 1:
            cc.sample_aspect_ratio = like.pixel_aspect
        if self.codec in ("libx264", "libx265"):
            opts = {"crf": f"{crf:g}", "preset": preset}
            if self.codec == "libx265":
                opts["x265-params"] = ":".join(["log-level=error", *x265_hdr_params(like.hdr)])
                if fmt in ("mp4", "mov"):
                    cc.codec_tag = "hvc1"
        else:
            opts = {"level": "3", "slicecrc": "1", "slices": "4", "g": "1"}
        if self.codec != "libx265":
            notice_dropped(self.codec, like.hdr, like.path)
        opts.update(extra)  # e.g. {"bf": "0"} for segments that are joined later
        cc.options = opts
        self._stream = s

    # -- writing ----------------------------------------------------------------------------
    def write(self, image, pts: int, duration: int | None = None) -> None:
        """Write one frame: ``image`` numpy uint8 HxWx3 RGB, torch uint8 [3, H, W] RGB (any device), or
        the source's :class:`~vidinvert.video.planes.Planes` (written as they are when the output's pixel
        format is theirs, else converted by swscale with the matrix and range of both).

        ``pts`` in ``like.time_base`` ticks, strictly increasing; ``duration`` ticks or None
        (then the gap to the next frame, and for the last frame the previous gap).
        """
        if self._closed:
            raise RuntimeError("VideoWriter is closed")
        rgb = image if isinstance(image, Planes) else _as_hwc_uint8(image)
        hw = (image.height, image.width) if isinstance(image, Planes) else rgb.shape[:2]
        if hw != (self.like.height, self.like.width):
            raise ValueError(f"frame is {hw[1]}x{hw[0]}, the output is {self.like.width}x{self.like.height}")
        pts = int(pts)
        if self._last_pts is not None and pts <= self._last_pts:
            raise ValueError(f"pts must increase: {pts} after {self._last_pts}")
        if self._first_pts is None:
            self._first_pts = pts
            if self._carrier is not None:
                self._carrier.start(float(pts * self.like.time_base))
        if self._last_pts is not None:
            self._last_delta = pts - self._last_pts
        self._last_pts = pts
        if self._held is not None:
            h_rgb, h_pts, h_dur = self._held
            self._encode(h_rgb, h_pts, h_dur if h_dur else pts - h_pts)
        self._held = (rgb, pts, duration)
        if self._carrier is not None:
            self._carrier.pump(float(pts * self.like.time_base))

    def write_frame(self, frame) -> None:
        """Write a :class:`~vidinvert.video.reader.Frame` (its rgb, pts and duration)."""
        self.write(frame.rgb, frame.pts, frame.duration)

    def write_batch(self, images, pts: Sequence[int], durations: Sequence[int | None] | None = None) -> None:
        """``images``: torch uint8 [B, 3, H, W] RGB (any device) or numpy uint8 [B, H, W, 3]."""
        if hasattr(images, "detach"):
            images = images.detach().to("cpu").permute(0, 2, 3, 1).contiguous().numpy()
        durations = durations or [None] * len(pts)
        if len(images) != len(pts) or len(durations) != len(pts):
            raise ValueError("images, pts and durations must have the same length")
        for img, p, d in zip(images, pts, durations):
            self.write(img, p, d)

    def _encode(self, rgb: np.ndarray, pts: int, duration: int | None) -> None:
        out_pts = pts - self._first_pts if self.trimmed else pts
        frame = self._planes_frame(rgb) if isinstance(rgb, Planes) else self._maker(rgb)
        frame.pts = out_pts
        frame.time_base = self.like.time_base
        if duration:
            frame.duration = duration
            self._durations[out_pts] = duration
        self._mux(self._encode_checked(frame))
        self.frames_written += 1

    def _planes_frame(self, planes: Planes) -> av.VideoFrame:
        """An encoder frame from the source's samples: as they are, or converted to the output's format."""
        spec = self._maker.spec
        frame = planes.to_frame()
        if planes.pix_fmt != self.pix_fmt or planes.spec.matrix != spec.matrix or planes.spec.range != spec.range:
            frame = self._sws.reformat(frame, format=self.pix_fmt, **sws_args(planes.spec, spec))
        frame.colorspace = spec.avcol_matrix
        frame.color_range = spec.avcol_range
        frame.color_primaries = spec.primaries
        frame.color_trc = spec.trc
        return frame

    def _encode_checked(self, frame):
        try:
            return self._stream.encode(frame)
        except av.FFmpegError as exc:
            raise VidinvertError(
                f"{self.codec} cannot encode {self.dest.name} ({self.like.width}x{self.like.height} {self.pix_fmt}): "
                f"{getattr(exc, 'strerror', None) or exc}"
            ) from None

    def _mux(self, packets) -> None:
        for pk in packets:
            d = self._durations.pop(pk.pts, None) if pk.pts is not None else None
            if d:
                pk.duration = d
            self._out.mux(pk)

    # -- finishing --------------------------------------------------------------------------
    def close(self) -> Path:
        """Flush, finish the carried streams, and rename the partial file to ``dest``. Returns ``dest``."""
        if self._closed:
            return self.dest
        try:
            if self._held is not None:
                h_rgb, h_pts, h_dur = self._held
                dur = h_dur or self._last_delta or self.like.nominal_frame_ticks
                self._encode(h_rgb, h_pts, dur)
                self._held = None
                end = float((h_pts + dur) * self.like.time_base)
            else:
                end = None
            if self.frames_written == 0:
                raise VidinvertError(f"no frames were written to {self.dest}")
            self._mux(self._encode_checked(None))
            if self._carrier is not None:
                self._carrier.finish(end)
                self._carrier.close()
            self._out.close()
            self._out = None
            finish_file(self.partial, self.format, self.like)
            publish(self.partial, self.dest)
            self._closed = True
            log.info("wrote %s (%d frames, %s %s)", self.dest, self.frames_written, self.codec, self.pix_fmt)
            return self.dest
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Stop and remove the partial file (nothing is left at ``dest``)."""
        self._closed = True
        for closer in (getattr(self._carrier, "close", None), getattr(self._out, "close", None)):
            if closer is not None:
                try:
                    closer()
                except Exception:  # the file is going away anyway
                    pass
        self._out = None
        try:
            self.partial.unlink(missing_ok=True)
        except (OSError, AttributeError):
            pass

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def finish_file(path: Path, fmt: str, like: VideoInfo) -> None:
    """After the muxer closed ``path``: a Matroska file gets the display size in its header."""
    if fmt == "matroska" and like.pixel_aspect != 1:
        set_display_size(path, like.display_width, like.display_height)


def _as_hwc_uint8(image) -> np.ndarray:
    if hasattr(image, "detach"):  # torch tensor [3, H, W]
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"expected a torch tensor [3, H, W], got {tuple(image.shape)}")
        image = image.detach().to("cpu").permute(1, 2, 0).contiguous().numpy()
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected uint8 HxWx3 RGB, got {arr.dtype} {arr.shape}")
    return arr
