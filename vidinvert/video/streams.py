"""What a clip holds besides its video frames: the other streams, chapters, timecode and tags.

:func:`classify` names what each stream of a container is, in the words the writer and ``info``
use: ``video`` (the clip's picture), ``audio``, ``subtitle``, ``cover`` (a cover picture: a video
stream with the ``attached_pic`` disposition, as MP4 ``covr`` and Matroska image attachments
are read), ``attachment`` (a Matroska attached file, e.g. a font), ``timecode`` (a QuickTime
``tmcd`` track; its start timecode is the tag ``timecode``), ``chapters`` (the QuickTime text
track that holds an MP4/MOV file's chapter titles; the chapters themselves are read from the
container) and ``data`` (anything else).

:func:`describe` lists them as :class:`StreamInfo` s, with the :class:`ChapterInfo` s and the
start timecode. Tag helpers: :func:`carried_tags` (a stream's or container's tags minus what a
muxer writes itself) and :func:`shift_timecode` (a ``HH:MM:SS:FF`` timecode some frames later).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

import av

DISPOSITIONS = ("default", "forced", "original", "comment", "hearing_impaired", "visual_impaired", "captions",
                "descriptions", "dub", "lyrics", "karaoke", "clean_effects")
_ATTACHED_PIC = int(av.stream.Disposition.attached_pic)
_DISCARD_ALL = 48  # AVDISCARD_ALL: the MOV demuxer's mark of a chapter text track
# Tags muxers write themselves (statistics, brands, encoders, handlers) or that vidinvert sets.
_NOT_CARRIED = {"encoder", "major_brand", "minor_version", "compatible_brands", "rotate", "duration", "bps",
                "number_of_frames", "number_of_bytes", "vendor_id", "timecode"}


@dataclass(frozen=True)
class StreamInfo:
    """One non-picture stream (audio has :class:`~vidinvert.video.probe.AudioInfo` instead).

    ``kind``: subtitle | cover | attachment | timecode | chapters | data (see the module doc).
    ``codec``: the codec's name (``none`` when FFmpeg has no codec for it). ``disposition``:
    the flags set (default, forced, ...). ``detail``: a file name and MIME type for attachments
    and covers, the start timecode for a timecode track, the handler name for data streams.
    """

    index: int
    kind: str
    codec: str
    language: str | None = None
    title: str | None = None
    disposition: tuple[str, ...] = ()
    detail: str = ""


@dataclass(frozen=True)
class ChapterInfo:
    """A chapter: ``start``/``end`` in seconds, and its title."""

    start: float
    end: float
    title: str = ""


def tag(tags, key: str) -> str | None:
    """A tag's value whatever the case of its key (Matroska readers upper-case some), or None."""
    for k, v in (tags or {}).items():
        if str(k).lower() == key:
            return str(v)
    return None


def carried_tags(tags) -> dict[str, str]:
    """A container's or stream's tags as an output keeps them: without the ones muxers write
    themselves or vidinvert sets (encoder, brands, statistics, durations, timecode), a MOV track
    ``name`` as ``title``, the Matroska ``_STATISTICS_*`` tags dropped."""
    out: dict[str, str] = {}
    for k, v in (tags or {}).items():
        low = str(k).lower()
        if low in _NOT_CARRIED or low.startswith("_statistics") or low.startswith("duration-"):
            continue
        out["title" if low == "name" else (low if low in ("title", "language", "comment") else str(k))] = str(v)
    return out


def dispositions(stream) -> tuple[str, ...]:
    """The disposition flags of ``stream`` that say how to present it (default, forced, ...)."""
    flags = int(stream.disposition)
    return tuple(d for d in DISPOSITIONS if flags & int(getattr(av.stream.Disposition, d)))


def classify(stream, container) -> str:
    """What ``stream`` of ``container`` is (see the module doc)."""
    if stream.type == "video":
        return "cover" if int(stream.disposition) & _ATTACHED_PIC else "video"
    if stream.type in ("audio", "subtitle", "attachment"):
        return stream.type
    if stream.type == "data":
        if tag(stream.metadata, "timecode") is not None or tag(stream.metadata, "handler_name") == "TimeCodeHandler":
            return "timecode"
        if container.format.name.startswith("mov") and int(stream.discard) == _DISCARD_ALL and container.chapters():
            return "chapters"
    return "data"


def codec_name(stream) -> str:
    """The stream's codec name (``tmcd`` for timecode tracks, ``file`` for attachments)."""
    cc = stream.codec_context
    if cc is not None:
        return cc.name
    if stream.type == "attachment":
        return "file"
    if tag(stream.metadata, "timecode") is not None:
        return "tmcd"
    return getattr(stream, "name", None) or "none"


def describe(container) -> tuple[tuple[StreamInfo, ...], tuple[ChapterInfo, ...], str | None]:
    """The streams other than the picture and audio, the chapters, and the start timecode."""
    streams = []
    for s in container.streams:
        kind = classify(s, container)
        if kind in ("video", "audio"):
            continue
        detail = ""
        if kind in ("attachment", "cover"):
            name, mime = tag(s.metadata, "filename"), tag(s.metadata, "mimetype") or getattr(s, "mimetype", None)
            detail = ", ".join(x for x in (name, mime) if x)
        elif kind == "timecode":
            detail = tag(s.metadata, "timecode") or ""
        elif kind == "data":
            detail = tag(s.metadata, "handler_name") or ""
        streams.append(StreamInfo(s.index, kind, codec_name(s), s.language if s.language not in (None, "und") else None,
                                  tag(s.metadata, "title") or tag(s.metadata, "name"), dispositions(s), detail))
    return tuple(streams), read_chapters(container), start_timecode(container)


def read_chapters(container) -> tuple[ChapterInfo, ...]:
    out = []
    for ch in container.chapters():
        tb = ch["time_base"] or Fraction(1, 1_000_000)
        out.append(ChapterInfo(float(ch["start"] * tb), float(ch["end"] * tb), tag(ch["metadata"], "title") or ""))
    return tuple(out)


def start_timecode(container) -> str | None:
    """The clip's start timecode: the video stream's tag, a timecode track's, or the container's."""
    for s in container.streams.video:
        if not int(s.disposition) & _ATTACHED_PIC and (tc := tag(s.metadata, "timecode")):
            return tc
    for s in container.streams.data:
        if tc := tag(s.metadata, "timecode"):
            return tc
    return tag(container.metadata, "timecode")


_TIMECODE = re.compile(r"(\d{1,2}):(\d{2}):(\d{2})([:;.,])(\d{2,3})")


def shift_timecode(timecode: str, frames: int, rate: Fraction | float | None) -> str:
    """``timecode`` (``HH:MM:SS:FF``; ``;`` before the frames = drop-frame) ``frames`` frames later
    at ``rate`` frames per second (rounded to the timecode's whole rate, e.g. 30 for 29.97).
    Drop-frame timecode skips frame numbers 0 and 1 of every minute except each tenth (SMPTE 12M).
    Unparsable timecodes are returned unchanged."""
    m = _TIMECODE.fullmatch(timecode.strip())
    if m is None or not rate or frames == 0:
        return timecode
    fps = max(1, round(float(rate)))
    h, mi, s, sep, f = int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4), int(m.group(5))
    drop = sep in ";," and fps % 30 == 0
    d = 2 * (fps // 30) if drop else 0  # frame numbers dropped per minute
    minutes = 60 * h + mi
    n = (minutes * 60 + s) * fps + f - d * (minutes - minutes // 10) + frames
    if drop:  # frame count -> frame number with the dropped ones skipped
        per_10min = 10 * 60 * fps - 9 * d
        tens, rest = divmod(n, per_10min)
        n += 9 * d * tens + (d * ((rest - d) // (60 * fps - d)) if rest > d else 0)
    n %= 24 * 3600 * fps
    f, s = n % fps, n // fps
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}{sep}{f:0{len(m.group(5))}d}"
