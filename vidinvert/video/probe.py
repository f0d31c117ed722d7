"""What a clip is: :class:`VideoInfo` (container, stream, sizes, pixel aspect, rotation, colour,
timing, audio, and the other streams, chapters, timecode and tags).

:func:`probe` opens a clip read-only, decodes its first frame (rotation, pixel format and
colour tags are read from the frame, as the decoder reports them; the pixel aspect from the
container, else the codec, as players take it) and, with
``count_frames=True``, demuxes every video packet to count frames exactly and to tell a
variable frame rate from a constant one. Every way a user's file can be unusable becomes a
one-line :class:`~vidinvert.errors.VidinvertError` naming the file.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidinvert.errors import VidinvertError
from vidinvert.video.colour import ColourSpec, bit_depth, chroma_layout, resolve_colour
from vidinvert.video.hdrmeta import HdrInfo, read_hdr
from vidinvert.video.index import PtsIndex, build_pts_index
from vidinvert.video.orientation import Orientation
from vidinvert.video.streams import ChapterInfo, StreamInfo, describe, dispositions, tag

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AudioInfo:
    """One audio stream. ``index`` is the stream's index in the container."""

    index: int
    codec: str
    sample_rate: int
    channels: int
    layout: str
    time_base: Fraction | None
    duration: float | None  # seconds, when the container says
    bit_rate: int | None
    language: str | None
    title: str | None = None
    disposition: tuple[str, ...] = ()


@dataclass(frozen=True)
class VideoInfo:
    """A clip's video stream (and what else it carries), as the reader will deliver it.

    Sizes: ``coded_width``/``coded_height`` are the size as **stored** in the stream;
    ``width``/``height`` the frame size, upright (turned by the rotation), in stored pixels:
    what frames and outputs have. ``sample_aspect_ratio`` is the stored pixels' shape (width /
    height of one pixel; None when square or unknown) and :attr:`pixel_aspect` that of the
    upright frame's pixels; :attr:`display_width` x :attr:`display_height` is the size players
    **display** (the width scaled by the pixel aspect). Times: ``time_base`` is the
    stream's (pts unit); ``start_pts`` is the first frame's pts and ``start_time`` that in
    seconds; ``duration`` (seconds) runs from the first frame's start to the last one's end.
    ``frame_count`` is exact when ``frame_count_exact`` (packets counted), otherwise the
    container's figure or an estimate (None when unknown). ``variable_frame_rate`` is None
    when the packets were not scanned.
    """

    path: Path
    container: str
    container_long: str
    stream_index: int
    codec: str
    coded_width: int
    coded_height: int
    width: int
    height: int
    rotation: int
    mirrored: bool
    orientation: Orientation
    pix_fmt: str
    bit_depth: int
    chroma: str
    colour: ColourSpec
    time_base: Fraction
    start_pts: int
    start_time: float
    duration: float | None
    frame_count: int | None
    frame_count_exact: bool
    avg_frame_rate: Fraction | None
    variable_frame_rate: bool | None
    sample_aspect_ratio: Fraction | None
    audio: tuple[AudioInfo, ...] = ()
    metadata: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    streams: tuple[StreamInfo, ...] = ()  # subtitles, data, covers, attachments, timecode / chapter tracks
    chapters: tuple[ChapterInfo, ...] = ()
    timecode: str | None = None  # the start timecode (HH:MM:SS:FF; ';' = drop-frame)
    video_metadata: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # the video stream's tags
    hdr: HdrInfo = HdrInfo()  # PQ / HLG transfer, mastering display and light level (first frame)

    @property
    def is_hdr(self) -> bool:
        """PQ (SMPTE ST 2084) or HLG (ARIB STD-B67) transfer."""
        return self.hdr.is_hdr

    @property
    def pixel_aspect(self) -> Fraction:
        """Width / height of one pixel of the upright frame, as displayed (1 for square pixels)."""
        sar = self.sample_aspect_ratio or Fraction(1)
        return 1 / sar if self.orientation.transpose else sar

    @property
    def display_width(self) -> int:
        """The displayed width: the frame's width scaled by the pixel aspect."""
        return max(1, round(self.width * self.pixel_aspect))

    @property
    def display_height(self) -> int:
        return self.height

    @property
    def nominal_frame_ticks(self) -> int:
        """One frame at the average rate, in time-base ticks (at least 1)."""
        if self.avg_frame_rate:
            return max(1, round(1 / (self.avg_frame_rate * self.time_base)))
        return max(1, round(Fraction(1, 25) / self.time_base))

    def to_dict(self) -> dict:
        """JSON-friendly dict (fractions as strings, path as str)."""
        d = asdict(self)
        d["path"] = str(self.path)
        d["time_base"] = str(self.time_base)
        d["avg_frame_rate"] = str(self.avg_frame_rate) if self.avg_frame_rate else None
        d["avg_fps"] = float(self.avg_frame_rate) if self.avg_frame_rate else None
        d["sample_aspect_ratio"] = str(self.sample_aspect_ratio) if self.sample_aspect_ratio else None
        d["pixel_aspect"] = str(self.pixel_aspect)
        d["display_width"], d["display_height"] = self.display_width, self.display_height
        d["metadata"] = dict(self.metadata)
        d["video_metadata"] = dict(self.video_metadata)
        d["is_hdr"] = self.is_hdr
        for a in d["audio"]:
            a["time_base"] = str(a["time_base"]) if a["time_base"] else None
        return d


# ------------------------------------------------------------------------------------------
# Opening, with every user-caused failure turned into one line
# ------------------------------------------------------------------------------------------
def ffmpeg_message(exc: BaseException) -> str:
    """A short text for an FFmpeg error (without the file name PyAV appends)."""
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).strip().rstrip(".")


def check_input_path(path: str | os.PathLike) -> Path:
    """The path as a Path, or a VidinvertError for a missing file, a folder, an unreadable file."""
    p = Path(path).expanduser()
    if not p.exists():
        raise VidinvertError(f"{p}: no such file")
    if p.is_dir():
        raise VidinvertError(f"{p} is a folder, not a video file")
    if not os.access(p, os.R_OK):
        raise VidinvertError(f"{p}: permission denied (cannot read it)")
    if p.stat().st_size == 0:
        raise VidinvertError(f"{p} is empty (0 bytes), not a video")
    return p


def open_input(path: Path) -> av.container.InputContainer:
    """Open a clip read-only (``av.open(..., 'r')``)."""
    try:
        return av.open(str(path), mode="r")
    except av.error.InvalidDataError:
        raise VidinvertError(
            f"{path} is not a video FFmpeg can read (unknown format, or the file is truncated before its header)"
        ) from None
    except (av.FFmpegError, OSError) as exc:
        raise VidinvertError(f"cannot open {path}: {ffmpeg_message(exc)}") from None


def video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    """The clip's first real video stream (cover art is not video), or a VidinvertError."""
    fmt = container.format.name
    if fmt == "image2" or fmt.endswith("_pipe"):
        raise VidinvertError(f"{path} is a still image ({fmt}), not a video")
    streams = [
        s for s in container.streams.video if not (int(s.disposition) & int(av.stream.Disposition.attached_pic))
    ]
    if not streams:
        kinds = sorted({s.type for s in container.streams})
        what = "only audio" if kinds == ["audio"] else ("no streams" if not kinds else "no video stream")
        raise VidinvertError(f"{path} has {what}: it needs a video stream")
    stream = streams[0]
    if stream.codec_context is None:
        raise VidinvertError(
            f"{path}: its video codec is not supported by this FFmpeg build (no decoder); "
            "convert it to H.264 first"
        )
    return stream


def _stream_duration_seconds(container, stream) -> float | None:
    if stream.duration:
        return float(stream.duration * stream.time_base)
    tag = (stream.metadata or {}).get("DURATION")  # Matroska writes one per track
    m = re.fullmatch(r"(\d+):(\d+):(\d+(?:\.\d+)?)", tag or "")
    if m:
        return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    return None


def _audio_infos(container) -> tuple[AudioInfo, ...]:
    out = []
    for s in container.streams.audio:
        cc = s.codec_context
        out.append(
            AudioInfo(
                index=s.index,
                codec=cc.name if cc is not None else "unsupported",
                sample_rate=int(cc.sample_rate or 0) if cc is not None else 0,
                channels=int(cc.channels or 0) if cc is not None else 0,
                layout=cc.layout.name if cc is not None and cc.layout is not None else "",
                time_base=s.time_base,
                duration=_stream_duration_seconds(container, s),
                bit_rate=(cc.bit_rate or None) if cc is not None else None,
                language=s.language,
                title=tag(s.metadata, "title") or tag(s.metadata, "name"),
                disposition=dispositions(s),
            )
        )
    return tuple(out)


def decode_first_frame(container, stream, path: Path) -> av.VideoFrame:
    """Decode the stream's first good frame (then rewind), or a VidinvertError.

    Packets the decoder rejects are passed over (the frame's rotation, format and colour tags
    are all that is read here): a clip whose first frames are damaged is still described, and
    the damage is met, and reported or concealed (``--on-damage``), when the frames are read.
    Only a stream in which nothing decodes is refused here."""
    first_error: av.FFmpegError | None = None
    frame = None
    try:
        for packet in container.demux(stream):
            try:
                frames = stream.decode(packet)
            except av.error.DecoderNotFoundError:
                raise
            except av.FFmpegError as exc:
                first_error = first_error or exc
                continue
            if frames:
                frame = frames[0]
                break
    except av.error.DecoderNotFoundError:
        raise VidinvertError(f"{path}: its video codec is not supported by this FFmpeg build (no decoder)") from None
    if frame is None:
        if first_error is not None:
            raise VidinvertError(f"{path}: corrupt video data at frame 0 (0.000 s): {ffmpeg_message(first_error)}")
        raise VidinvertError(f"{path} has a video stream but no frames")
    try:
        container.seek(0, backward=True)
        stream.codec_context.flush_buffers()
    except av.FFmpegError:  # pragma: no cover
        pass
    return frame


def _vfr(pts: np.ndarray) -> bool | None:
    if pts.size < 3:
        return None if pts.size < 2 else False
    d = np.diff(pts)
    med = float(np.median(d))
    return bool(d.max() - d.min() > max(2.0, 0.01 * med))


def check_complete(
    container, stream, path: Path, n_frames: int, end_time: float, frame_seconds: float,
    n_packets: int | None = None,
) -> None:
    """VidinvertError when a stream ended before what its header promises.

    ``n_frames`` frames were seen, the last ending ``end_time`` seconds after the first frame.
    ``n_packets`` (all packets from the start, edit-list discards included) is compared with
    the header's sample count (MP4/MOV); ``end_time`` with the stream's duration (MP4 edit-list
    duration, Matroska track DURATION tag), with two frames plus 50 ms of slack.
    """
    expected = int(stream.frames or 0)
    if n_packets is not None and expected and n_packets < expected:
        raise VidinvertError(
            f"{path}: truncated or corrupt: the video ends at frame {n_frames} ({end_time:.3f} s) "
            f"but the file says {expected} frames"
        )
    promised = _stream_duration_seconds(container, stream)
    if promised and end_time < promised - (2 * frame_seconds + 0.05):
        raise VidinvertError(
            f"{path}: truncated or corrupt: the video ends at frame {n_frames} ({end_time:.3f} s) "
            f"but the file says it lasts {promised:.3f} s"
        )


def probe(path: str | os.PathLike, *, count_frames: bool = True) -> VideoInfo:
    """Describe a clip. ``count_frames`` demuxes all video packets (exact count, VFR check,
    and a truncated file is reported as a VidinvertError)."""
    path = check_input_path(path)
    with open_input(path) as container:
        stream = video_stream(container, path)
        first = decode_first_frame(container, stream, path)
        index = build_pts_index(container, stream) if count_frames else None
        info = _info_from(container, stream, first, index, path)
        if index is not None and len(index) and info.duration is not None:
            check_complete(container, stream, path, len(index), info.duration,
                           float(info.nominal_frame_ticks * info.time_base), index.n_packets)
        return info


def _info_from(container, stream, first: av.VideoFrame, index: PtsIndex | None, path: Path) -> VideoInfo:
    tb = stream.time_base or Fraction(1, 90000)
    orientation = Orientation.from_frame(first)
    pix_fmt = first.format.name
    colour = resolve_colour(
        pix_fmt, first.colorspace, first.color_range, first.height, first.color_primaries, first.color_trc
    )
    width, height = orientation.display_size(first.width, first.height)
    start_pts = int(first.pts) if first.pts is not None else (int(stream.start_time or 0))
    avg = stream.average_rate or stream.guessed_rate or None
    frame_count, exact, vfr = None, False, None
    duration = None
    if index is not None and len(index):
        frame_count, exact = len(index), index.complete
        vfr = _vfr(index.pts)
        diffs = np.diff(index.pts)
        last_dur = int(index.durations[-1]) or (int(np.median(diffs)) if diffs.size else 0)
        duration = float((int(index.pts[-1]) + last_dur - int(index.pts[0])) * tb)
        if duration > 0 and not avg:
            avg = Fraction(frame_count) / Fraction(duration).limit_denominator(1_000_000)
    if duration is None:
        duration = _stream_duration_seconds(container, stream)
        if duration is None and container.duration:
            duration = container.duration / 1_000_000
    if frame_count is None:
        if stream.frames:
            frame_count = int(stream.frames)
        elif duration and avg:
            frame_count = int(round(duration * float(avg)))
    others, chapters, timecode = describe(container)
    return VideoInfo(
        path=path,
        container=container.format.name,
        container_long=container.format.long_name,
        stream_index=stream.index,
        codec=stream.codec_context.name,
        coded_width=first.width,
        coded_height=first.height,
        width=width,
        height=height,
        rotation=orientation.rotation,
        mirrored=orientation.mirrored,
        orientation=orientation,
        pix_fmt=pix_fmt,
        bit_depth=bit_depth(pix_fmt),
        chroma=chroma_layout(pix_fmt),
        colour=colour,
        time_base=tb,
        start_pts=start_pts,
        start_time=float(start_pts * tb),
        duration=duration,
        frame_count=frame_count,
        frame_count_exact=exact,
        avg_frame_rate=Fraction(avg) if avg else None,
        variable_frame_rate=vfr,
        sample_aspect_ratio=sample_aspect(stream, path),
        audio=_audio_infos(container),
        metadata=_tags(container.metadata),
        streams=others,
        chapters=chapters,
        timecode=timecode,
        video_metadata=_tags(stream.metadata),
        hdr=read_hdr(first),
    )


def _tags(tags) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), str(v)) for k, v in (tags or {}).items()))


def sample_aspect(stream, path: Path) -> Fraction | None:
    """The stored pixels' aspect (None when square or unknown): the container's (MP4/MOV ``pasp``,
    Matroska display size) when it gives one, else the codec's (e.g. H.264's VUI, read with the
    first frame), as FFmpeg's ``av_guess_sample_aspect_ratio`` and players choose. Values
    outside 1/10..10 are ignored with a notice."""
    for sar in (stream.sample_aspect_ratio, stream.codec_context.sample_aspect_ratio):
        if sar is None or sar.numerator <= 0 or sar.denominator <= 0:
            continue
        if not Fraction(1, 10) <= sar <= 10:
            log.warning("%s: ignoring the implausible pixel aspect %s (frames are shown with square pixels)",
                        path.name, sar)
            return None
        return None if sar == 1 else Fraction(sar)
    return None
