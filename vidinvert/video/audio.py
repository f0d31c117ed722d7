"""Audio of the source, carried into an output: copied packet by packet, or transcoded to AAC.

Every audio stream of the source is copied without re-encoding when the output container can
hold its codec (checked by writing a trial header in memory), otherwise transcoded to AAC (with
a notice). Packets are muxed in step with the video (:meth:`AudioCarrier.pump`), so the file
is interleaved and memory stays bounded.

Trimmed runs keep the audio packets (or decoded frames) that **start** inside the video's span
``[t0, t1)`` and shift them by ``t0`` like the video: the cut is packet-precise, i.e. within
one audio packet (1024 samples for AAC: 21 ms at 48 kHz) of the video's range at each end.
"""

from __future__ import annotations

import io
import logging
from fractions import Fraction
from pathlib import Path

import av

from vidinvert.video.probe import open_input

log = logging.getLogger(__name__)


def _can_copy(template, fmt: str) -> bool:
    try:
        with av.open(io.BytesIO(), "w", format=fmt) as trial:
            trial.add_stream_from_template(template)
            trial.start_encoding()
        return True
    except (av.FFmpegError, ValueError, TypeError):
        return False


class _Track:
    def __init__(self, src, out, mode: str) -> None:
        self.src, self.out, self.mode = src, out, mode
        self.shift = 0  # in src.time_base ticks (copy) / seconds handled per frame (transcode)


class AudioCarrier:
    """Carries the audio streams of ``source`` into ``output`` (an OutputContainer being set up).

    Construct before the first packet is muxed (it adds the output streams); then
    :meth:`start` at the first video frame, :meth:`pump` as video advances and :meth:`finish`
    before closing. Times are source seconds (``pts * time_base``, not shifted).
    """

    def __init__(self, source: Path, output: av.container.OutputContainer, out_format: str, *, trimmed: bool) -> None:
        self.source = source
        self.trimmed = trimmed
        self._in = open_input(source)
        self._tracks: dict[int, _Track] = {}
        self._t0: float | None = None
        self._t1: float | None = None
        self._packets = None
        self._done = False
        for s in self._in.streams.audio:
            cc = s.codec_context
            if cc is None:
                log.warning("%s: audio stream #%d has a codec this FFmpeg build cannot read; it is left out",
                            source.name, s.index)
                continue
            if _can_copy(s, out_format):
                out = output.add_stream_from_template(s)
                self._tracks[s.index] = _Track(s, out, "copy")
            else:
                layout = cc.layout.name if cc.layout is not None else "stereo"
                out = output.add_stream("aac", rate=cc.sample_rate, layout=layout)
                self._tracks[s.index] = _Track(s, out, "aac")
                log.warning("%s: audio stream #%d (%s) cannot be stored in this container as is; "
                            "transcoding it to AAC", source.name, s.index, cc.name)
        if not self._tracks:
            self._in.close()

    @property
    def modes(self) -> dict[int, str]:
        """Source stream index -> ``copy`` | ``aac``."""
        return {i: t.mode for i, t in self._tracks.items()}

    def start(self, t0: float) -> None:
        """The first video frame is at source time ``t0`` seconds (trims: audio starts there too)."""
        if not self._tracks:
            return
        self._t0 = t0
        if self.trimmed and t0 > 0:
            try:
                self._in.seek(int(max(0.0, t0 - 1.0) * 1_000_000), backward=True)
            except av.FFmpegError:  # pragma: no cover - unseekable: demux from the start
                pass
        self._packets = self._in.demux(*[t.src for t in self._tracks.values()])
        self._pending = None

    def pump(self, until: float) -> None:
        """Mux source audio packets that start before ``until`` (source seconds)."""
        if not self._tracks or self._packets is None or self._done:
            return
        while True:
            pk = self._pending
            self._pending = None
            if pk is None:
                try:
                    pk = next(self._packets)
                except StopIteration:
                    self._done = True
                    return
            ts = pk.pts if pk.pts is not None else pk.dts
            if ts is None:
                if pk.size == 0:
                    continue
                ts_s = None
            else:
                ts_s = float(ts * pk.time_base)
            if ts_s is not None and ts_s >= until:
                self._pending = pk
                return
            if self._t1 is not None and ts_s is not None and ts_s > self._t1 + 1.0:
                self._done = True  # trimmed: nothing later is needed (1 s covers interleaving)
                return
            self._mux(pk, ts_s)

    def finish(self, t1: float | None) -> None:
        """Mux the rest: up to ``t1`` (the end of the last video frame) when trimmed, else all."""
        if not self._tracks:
            return
        self._t1 = t1 if self.trimmed else None
        self.pump(float("inf"))
        for track in self._tracks.values():
            if track.mode == "aac":
                for out_pk in track.out.encode(None):
                    track.out.container.mux(out_pk)

    def close(self) -> None:
        if self._tracks:
            self._in.close()

    # ---------------------------------------------------------------------------------------
    def _in_range(self, ts_s: float | None) -> bool:
        if not self.trimmed or ts_s is None:
            return True
        if self._t0 is not None and ts_s < self._t0 - 1e-6:
            return False
        return self._t1 is None or ts_s < self._t1 - 1e-6

    def _mux(self, pk: av.Packet, ts_s: float | None) -> None:
        track = self._tracks.get(pk.stream.index)
        if track is None or not self._in_range(ts_s):
            return
        shift_s = self._t0 if (self.trimmed and self._t0) else 0.0
        if track.mode == "copy":
            if pk.dts is None and pk.pts is None:
                return
            shift = round(shift_s / pk.time_base) if shift_s else 0
            if shift:
                if pk.pts is not None:
                    pk.pts -= shift
                if pk.dts is not None:
                    pk.dts -= shift
            pk.stream = track.out
            track.out.container.mux(pk)
            return
        for frame in track.src.decode(pk):
            if frame.pts is not None and frame.time_base is not None:
                t = float(frame.pts * frame.time_base) - shift_s
                rate = frame.sample_rate
                frame.pts = round(t * rate)
                frame.time_base = Fraction(1, rate)
            for out_pk in track.out.encode(frame):
                track.out.container.mux(out_pk)
