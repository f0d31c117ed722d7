"""Audio of the source, carried into an output: copied packet by packet, or transcoded to AAC.

Every audio stream of the source is copied without re-encoding when the output container can
hold its codec (checked by writing a trial header in memory), otherwise transcoded to AAC (with
a notice); either way it keeps its language, title and disposition. The streams are carried by
:class:`~vidinvert.video.carry.StreamCarrier`, in step with the video, so the file is interleaved
and memory stays bounded.

Trimmed runs keep the audio packets (or decoded frames) that **start** inside the video's span
``[t0, t1)`` and shift them by ``t0`` like the video: the cut is packet-precise, i.e. within
one audio packet (1024 samples for AAC: 21 ms at 48 kHz) of the video's range at each end.
"""

from __future__ import annotations

import logging
from fractions import Fraction

import av

from vidinvert.video.packets import CopyTrack, Span, can_copy, keep_identity

log = logging.getLogger(__name__)


class AacTrack(CopyTrack):
    """Decodes a source audio stream and encodes it to AAC (for codecs the container cannot hold)."""

    mode = "aac"

    def wants(self, pk: av.Packet, span: Span) -> bool:
        return True  # decoded frames are tested one by one

    def mux(self, pk: av.Packet, span: Span) -> None:
        for frame in self.src.decode(pk):
            if frame.pts is None or frame.time_base is None:
                continue
            t = float(frame.pts * frame.time_base)
            if not span.starts_inside(t):
                continue
            rate = frame.sample_rate
            frame.pts = round((t - span.shift) * rate)
            frame.time_base = Fraction(1, rate)
            for out_pk in self.out.encode(frame):
                self.out.container.mux(out_pk)

    def flush(self, span: Span) -> None:
        for out_pk in self.out.encode(None):
            self.out.container.mux(out_pk)


def audio_track(src, output, out_format: str, source_name: str) -> CopyTrack | None:
    """The track carrying audio stream ``src`` into ``output`` (copied, else AAC), or None with a
    notice when this FFmpeg build cannot decode it."""
    cc = src.codec_context
    if cc is None:
        log.warning("%s: audio stream #%d has a codec this FFmpeg build cannot read; it is left out",
                    source_name, src.index)
        return None
    if can_copy(src, out_format):
        track: CopyTrack = CopyTrack(src, output.add_stream_from_template(src))
    else:
        layout = cc.layout.name if cc.layout is not None else "stereo"
        track = AacTrack(src, output.add_stream("aac", rate=cc.sample_rate, layout=layout))
        log.warning("%s: audio stream #%d (%s) cannot be stored in this container as is; transcoding it to AAC",
                    source_name, src.index, cc.name)
    keep_identity(src, track.out)
    return track
