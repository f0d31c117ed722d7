"""Everything of the source but its frames, carried into an output clip.

:class:`StreamCarrier` adds to an output being set up, beside its (re-encoded) video stream:

* every **audio** stream (copied, or AAC; :mod:`vidinvert.video.audio`) and every **subtitle**
  stream (copied, or converted between text formats; :mod:`vidinvert.video.subtitles`), with
  their language, title and disposition;
* **data** streams the container can hold (copied); the QuickTime **timecode** track is written
  again by the muxer from the video stream's ``timecode`` tag (the source's start timecode,
  moved on by the trim's first frame), which Matroska keeps as a tag;
* **cover pictures** (MP4 ``covr``; Matroska image attachments) and Matroska **attachments**
  (fonts), where the container holds them;
* the **chapters** (shifted and clipped to the span of a trimmed output);
* the **tags** of the container and of the video stream, except those muxers write themselves;
  the caller's tags are added (``encoder`` goes on the video stream: container-level encoder
  tags are FFmpeg's own).

What the output cannot hold is named in one notice per output. Packets are muxed in step with
the video (:meth:`StreamCarrier.pump`), so the file is interleaved and memory stays bounded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path

import av

from vidinvert.video.audio import audio_track
from vidinvert.video.packets import CopyTrack, Span, can_copy, keep_identity, seconds
from vidinvert.video.probe import open_input, video_stream
from vidinvert.video.streams import carried_tags, classify, codec_name, shift_timecode, start_timecode, tag
from vidinvert.video.subtitles import subtitle_track

log = logging.getLogger(__name__)

_FORMAT_NAMES = {"mp4": "MP4", "mov": "MOV", "matroska": "Matroska"}
_COVER_MIME = {"mjpeg": "image/jpeg", "png": "image/png", "bmp": "image/bmp", "webp": "image/webp"}


def tag_output(output, video, source_tags: Mapping[str, str], video_tags: Mapping[str, str],
               extra: Mapping[str, str] | None) -> None:
    """The output's container tags (the source's that are carried, then ``extra``) and its video
    stream's (the source video stream's, and ``extra['encoder']``)."""
    extra = dict(extra or {})
    encoder = extra.pop("encoder", None)
    output.metadata.update({**carried_tags(source_tags), **extra})
    video.metadata.update(carried_tags(video_tags))
    if encoder:
        video.metadata["encoder"] = encoder


class StreamCarrier:
    """Carries the streams, chapters and tags of ``source`` into ``output`` (an OutputContainer
    being set up, whose video stream ``video`` is already added; ``out_format`` its format name).

    Construct before the first packet is muxed (it adds the output streams); then :meth:`start`
    at the first video frame, :meth:`pump` as video advances and :meth:`finish` before closing
    (then :meth:`close`). Times are source seconds (``pts * time_base``, not shifted). ``rate``:
    the video's frame rate (to move the timecode on by a trim's first frame); ``tags``: extra
    container tags.
    """

    def __init__(self, source: Path, output, out_format: str, *, video, trimmed: bool,
                 tags: Mapping[str, str] | None = None, rate: Fraction | None = None,
                 start_time: float = 0.0) -> None:
        self.source, self.output, self.format, self.video = Path(source), output, out_format, video
        self.rate, self.start_time = rate, start_time
        self.span = Span(trimmed=trimmed)
        self._in = open_input(self.source)
        self._tracks: dict[int, CopyTrack] = {}
        self._covers: list[tuple[av.Packet, object]] = []
        self._left_out: list[str] = []
        self._packets = None
        self._pending = None
        self._done = False
        try:
            picture = video_stream(self._in, self.source)
            tag_output(output, video, self._in.metadata, picture.metadata, tags)
            for s in self._in.streams:
                if s.index != picture.index:
                    self._carry(s, classify(s, self._in))
        except BaseException:
            self._in.close()
            raise
        if self._left_out:
            where = _FORMAT_NAMES.get(out_format, out_format)
            log.warning("%s: not carried into the %s output (the container cannot hold them): %s",
                        self.source.name, where, "; ".join(self._left_out))

    # ---------------------------------------------------------------------------- setup
    def _carry(self, s, kind: str) -> None:
        name = self.source.name
        if kind == "audio":
            track = audio_track(s, self.output, self.format, name)
            if track is not None:
                self._tracks[s.index] = track
        elif kind == "subtitle":
            track, loses = subtitle_track(s, self.output, self.format)
            if track is None:
                self._left_out.append(f"subtitle stream #{s.index} ({codec_name(s)})")
                return
            self._tracks[s.index] = track
            if loses is not None:
                log.warning("%s: subtitle stream #%d (%s) %s for this container; this loses %s",
                            name, s.index, codec_name(s), track.mode, loses)
        elif kind == "data":
            if can_copy(s, self.format):
                out = self.output.add_stream_from_template(s)
                keep_identity(s, out)
                self._tracks[s.index] = CopyTrack(s, out)
            else:
                handler = tag(s.metadata, "handler_name")
                self._left_out.append(f"data stream #{s.index} ({codec_name(s)}{', ' + handler if handler else ''})")
        elif kind == "cover":
            self._cover(s)
        elif kind == "attachment":
            self._attachment(s)
        elif kind == "video":
            self._left_out.append(f"video stream #{s.index} (only the first video stream is edited)")
        # "timecode" and "chapters" tracks are written again from the tag and the chapters

    def _cover(self, s) -> None:
        fname = tag(s.metadata, "filename")
        what = f"cover picture #{s.index}" + (f" ({fname})" if fname else "")
        if self.format not in ("mp4", "matroska"):
            self._left_out.append(what)
            return
        with open_input(self.source) as c:  # attached pictures are read first: no seeking here
            pk = next((p for p in c.demux(c.streams[s.index]) if p.size), None)
            data = bytes(pk) if pk is not None else None
        if data is None:
            return
        if self.format == "matroska":
            mime = tag(s.metadata, "mimetype") or _COVER_MIME.get(codec_name(s))
            if mime is None:
                self._left_out.append(what)
                return
            self.output.add_attachment(fname or f"cover.{mime.split('/')[-1]}", mime, data)
            return
        out = self.output.add_stream_from_template(s)
        keep_identity(s, out)
        out.disposition = int(av.stream.Disposition.attached_pic)
        self._covers.append((data, out))

    def _attachment(self, s) -> None:
        fname = tag(s.metadata, "filename") or f"attachment{s.index}"
        if self.format != "matroska":
            self._left_out.append(f"attachment #{s.index} ({fname})")
            return
        mime = tag(s.metadata, "mimetype") or s.mimetype or "application/octet-stream"
        self.output.add_attachment(fname, mime, bytes(s.data))

    # ---------------------------------------------------------------------------- muxing
    @property
    def modes(self) -> dict[int, str]:
        """Source stream index -> ``copy`` | ``aac`` | ``converted to <codec>``."""
        return {i: t.mode for i, t in self._tracks.items()}

    def start(self, t0: float) -> None:
        """The first video frame is at source time ``t0`` seconds (trims: everything starts there)."""
        trimmed = self.span.trimmed
        self.span = Span(t0=t0, shift=t0 if trimmed and t0 else 0.0, trimmed=trimmed)
        timecode = start_timecode(self._in)
        if timecode:
            frames = round((t0 - self.start_time) * float(self.rate)) if trimmed and self.rate else 0
            self.video.metadata["timecode"] = shift_timecode(timecode, frames, self.rate)
        for data, out in self._covers:
            pk = av.Packet(data)
            pk.stream, pk.time_base, pk.pts, pk.dts, pk.is_keyframe = out, Fraction(1, 90000), 0, 0, True
            self.output.mux(pk)
        if not self._tracks:
            return
        if trimmed and t0 > 0:
            try:  # subtitle events may start well before the cut and still show after it
                back = 10.0 if any(t.src.type == "subtitle" for t in self._tracks.values()) else 1.0
                self._in.seek(int(max(0.0, t0 - back) * 1_000_000), backward=True)
            except av.FFmpegError:  # pragma: no cover - unseekable: demux from the start
                pass
        self._packets = self._in.demux(*[t.src for t in self._tracks.values()])

    def pump(self, until: float) -> None:
        """Mux source packets that start before ``until`` (source seconds)."""
        if self._packets is None or self._done:
            return
        while True:
            pk, self._pending = self._pending, None
            if pk is None:
                try:
                    pk = next(self._packets)
                except StopIteration:
                    self._done = True
                    return
            ts = pk.pts if pk.pts is not None else pk.dts
            if ts is None and pk.size == 0:
                continue
            ts_s = seconds(ts, pk.time_base)
            if ts_s is not None and ts_s >= until:
                self._pending = pk
                for track in self._tracks.values():
                    track.release(until, self.span)
                return
            if self.span.t1 is not None and ts_s is not None and ts_s > self.span.t1 + 1.0:
                self._done = True  # trimmed: nothing later is needed (1 s covers interleaving)
                return
            track = self._tracks.get(pk.stream.index)
            if track is not None and track.wants(pk, self.span):
                track.mux(pk, self.span)

    def finish(self, t1: float | None) -> None:
        """Mux the rest (up to ``t1``, the end of the last video frame, when trimmed) and set the
        chapters (shifted and clipped to the output's span)."""
        if self.span.trimmed:
            self.span = Span(self.span.t0, t1, self.span.shift, True)
        self.pump(float("inf"))
        for track in self._tracks.values():
            track.flush(self.span)
        self._set_chapters(t1)

    def _set_chapters(self, t1: float | None) -> None:
        chapters = []
        end_limit = (t1 - self.span.shift) if (self.span.trimmed and t1 is not None) else None
        for ch in self._in.chapters():
            tb = ch["time_base"] or Fraction(1, 1_000_000)
            shift = round(self.span.shift / tb) if self.span.shift else 0
            start, end = ch["start"] - shift, ch["end"] - shift
            if self.span.trimmed:
                if end <= 0 or (end_limit is not None and start >= round(end_limit / tb)):
                    continue
                start = max(0, start)
                end = end if end_limit is None else min(end, round(end_limit / tb))
            chapters.append({"id": ch["id"] or len(chapters) + 1, "start": start, "end": end, "time_base": tb,
                             "metadata": dict(ch["metadata"])})
        if chapters:
            self.output.set_chapters(chapters)

    def close(self) -> None:
        self._in.close()
