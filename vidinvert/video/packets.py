"""A source stream's packets carried into an output stream: copied as they are, timestamps shifted.

:class:`CopyTrack` is the common case (audio, data and subtitles the output container can hold);
:mod:`vidinvert.video.audio` and :mod:`vidinvert.video.subtitles` add the tracks that re-encode.
:class:`Span` says which part of the source a (trimmed) output covers and how far it is shifted.
:func:`can_copy` asks the output format whether it holds a stream's codec, by writing a trial
header in memory.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import av

from vidinvert.video.streams import carried_tags


def can_copy(template, fmt: str) -> bool:
    """Whether an output of format ``fmt`` can hold ``template``'s packets unchanged."""
    try:
        with av.open(io.BytesIO(), "w", format=fmt) as trial:
            trial.add_stream_from_template(template)
            trial.start_encoding()
        return True
    except (av.FFmpegError, ValueError, TypeError):
        return False


def keep_identity(src, out) -> None:
    """``out`` keeps ``src``'s tags (language, title, ...) and disposition (default, forced, ...)."""
    out.metadata.update(carried_tags(src.metadata))
    out.disposition = int(src.disposition)


@dataclass(frozen=True)
class Span:
    """The source seconds an output covers: ``[t0, t1)`` (``t1`` None: to the end), shifted by
    ``shift`` seconds (``t0`` for trimmed outputs, which start at 0; else 0)."""

    t0: float = 0.0
    t1: float | None = None
    shift: float = 0.0
    trimmed: bool = False

    def starts_inside(self, start: float | None) -> bool:
        """A packet that starts at ``start`` belongs to a trimmed output (untrimmed: all do)."""
        if not self.trimmed or start is None:
            return True
        return start >= self.t0 - 1e-6 and (self.t1 is None or start < self.t1 - 1e-6)

    def overlaps(self, start: float | None, end: float | None) -> bool:
        """An event ``[start, end)`` shows during a trimmed output (untrimmed: all do)."""
        if not self.trimmed or start is None:
            return True
        end = start if end is None else end
        return end > self.t0 + 1e-6 and (self.t1 is None or start < self.t1 - 1e-6)


def seconds(ticks: int | None, time_base) -> float | None:
    return None if ticks is None or time_base is None else float(ticks * time_base)


class CopyTrack:
    """Copies the packets of source stream ``src`` into output stream ``out`` (the output's
    stream is added by the caller, e.g. ``add_stream_from_template``)."""

    mode = "copy"

    def __init__(self, src, out) -> None:
        self.src, self.out = src, out

    def wants(self, pk: av.Packet, span: Span) -> bool:
        ts = pk.pts if pk.pts is not None else pk.dts
        return span.starts_inside(seconds(ts, pk.time_base))

    def mux(self, pk: av.Packet, span: Span) -> None:
        if pk.dts is None and pk.pts is None:
            return
        shift = round(span.shift / pk.time_base) if span.shift else 0
        if shift:
            if pk.pts is not None:
                pk.pts -= shift
            if pk.dts is not None:
                pk.dts -= shift
        pk.stream = self.out
        self.out.container.mux(pk)

    def release(self, until: float, span: Span) -> None:
        """The video has reached source second ``until`` (tracks that hold packets write them here)."""

    def flush(self, span: Span) -> None:
        """Called before the output closes (held packets are written, encoders drain here)."""
