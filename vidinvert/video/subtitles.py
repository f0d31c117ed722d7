"""Subtitle streams of the source, carried into an output: copied, or converted between text formats.

A subtitle stream is copied when the output container holds its codec. Otherwise a text stream
is converted: to ``mov_text`` (3GPP timed text) for MP4/MOV, to SubRip (``srt``) for Matroska,
by decoding each event to FFmpeg's ASS form and encoding it again; a notice says what the
conversion loses (:data:`LOSSES`). Bitmap subtitles (DVD, PGS, DVB) that the container cannot
hold are left out (named in the carrier's notice). Either way an event keeps its start and
duration, and the stream its language, title and disposition (default, forced).

Trims keep the events that show during the video's span, clipped to it, and shift them like the
video.
"""

from __future__ import annotations

from fractions import Fraction

import av

from vidinvert.video.packets import CopyTrack, Span, can_copy, keep_identity, seconds

TEXT_CODECS = ("subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text")
_TARGET = {"mp4": "mov_text", "mov": "mov_text", "matroska": "srt"}
HOLD_SECONDS = 5.0  # the longest a trimmed output holds an event back (longer ones keep their end)
# What each conversion loses (source codec -> target codec), for the notice.
LOSSES = {
    "ass": "ASS styling (fonts, colours, positions, effects)",
    "ssa": "SSA styling (fonts, colours, positions, effects)",
    "webvtt": "WebVTT cue positions and styles",
    "mov_text": "timed-text box styles and positions (bold, italic, underline and colours stay as SRT tags)",
    "subrip": "nothing of note (basic bold/italic/underline tags stay)",
    "srt": "nothing of note (basic bold/italic/underline tags stay)",
    "text": "nothing of note",
}


def _clip(pk: av.Packet, span: Span) -> None:
    """Shorten an event to the span and move its start into it (trimmed outputs)."""
    if not span.trimmed or pk.pts is None or pk.time_base is None:
        return
    start, end = seconds(pk.pts, pk.time_base), seconds(pk.pts + (pk.duration or 0), pk.time_base)
    new_start = max(start, span.t0)
    new_end = end if span.t1 is None else min(end, span.t1)
    if new_start != start or new_end != end:
        pk.pts = round(new_start / pk.time_base)
        pk.dts = pk.pts
        pk.duration = max(1, round((new_end - new_start) / pk.time_base))


class SubtitleCopyTrack(CopyTrack):
    """Copies subtitle packets: an event that shows during a trimmed span is kept, clipped to it.

    In a trimmed output an event is held until the video has passed its end (or for at most
    :data:`HOLD_SECONDS`), since where the span ends is only known at the end."""

    def __init__(self, src, out) -> None:
        super().__init__(src, out)
        self.held: list[av.Packet] = []

    def wants(self, pk: av.Packet, span: Span) -> bool:
        start = seconds(pk.pts, pk.time_base)
        return span.overlaps(start, seconds((pk.pts or 0) + (pk.duration or 0), pk.time_base))

    def mux(self, pk: av.Packet, span: Span) -> None:
        if span.trimmed and pk.pts is not None:
            self.held.append(pk)
        else:
            self._write(pk, span)

    def release(self, until: float, span: Span) -> None:
        while self.held:
            pk = self.held[0]
            start = float(pk.pts * pk.time_base)
            if start + float((pk.duration or 0) * pk.time_base) > until and until - start < HOLD_SECONDS:
                return
            self._write(self.held.pop(0), span)

    def flush(self, span: Span) -> None:
        for pk in self.held:
            if span.overlaps(seconds(pk.pts, pk.time_base), seconds(pk.pts + (pk.duration or 0), pk.time_base)):
                self._write(pk, span)
        self.held = []

    def _write(self, pk: av.Packet, span: Span) -> None:
        _clip(pk, span)
        CopyTrack.mux(self, pk, span)


class SubtitleConvertTrack(SubtitleCopyTrack):
    """Decodes each text event and encodes it with the output's text codec (same times)."""

    def __init__(self, src, out, target: str) -> None:
        super().__init__(src, out)
        self.mode = f"converted to {target}"

    def _write(self, pk: av.Packet, span: Span) -> None:
        if pk.pts is None or not pk.size:
            return
        rects = [r for r in self.src.decode(pk) if getattr(r, "type", b"") in (b"ass", b"text")]
        if not rects:
            return  # an empty event (MP4 writes them to end the previous one)
        _clip(pk, span)
        duration = pk.duration or 0
        event = av.subtitles.subtitle.SubtitleSet.create(_dialogue(rects), 0, duration, 0)
        out = self.out.codec_context.encode_subtitle(event)
        out.stream, out.time_base = self.out, pk.time_base
        out.pts = out.dts = pk.pts - (round(span.shift / pk.time_base) if span.shift else 0)
        out.duration = duration
        self.out.container.mux(out)


def _dialogue(rects) -> bytes:
    """One ASS dialogue line (``ReadOrder,Layer,Style,Name,MarginL,MarginR,MarginV,Effect,Text``)
    for the event's rectangles: the first line's fields, the texts joined by ASS line breaks."""
    first = bytes(rects[0].ass)
    texts = [bytes(r.ass).split(b",", 8)[-1] for r in rects[1:]]
    return b"\\N".join([first, *texts])


def subtitle_track(src, output, out_format: str) -> tuple[CopyTrack | None, str | None]:
    """The track carrying subtitle stream ``src`` into ``output``, and what a conversion loses
    (None when copied); ``(None, None)`` when it cannot be carried."""
    name = src.codec_context.name if src.codec_context is not None else None
    if can_copy(src, out_format):
        track: CopyTrack = SubtitleCopyTrack(src, output.add_stream_from_template(src))
        keep_identity(src, track.out)
        return track, None
    target = _TARGET.get(out_format)
    if name not in TEXT_CODECS or target is None:
        return None, None
    decoder = src.codec_context
    decoder.open(strict=False)
    out = output.add_stream(target)
    out.codec_context.subtitle_header = decoder.subtitle_header
    out.codec_context.time_base = src.time_base or Fraction(1, 1000)
    keep_identity(src, out)
    return SubtitleConvertTrack(src, out, target), LOSSES.get(name, "formatting")
