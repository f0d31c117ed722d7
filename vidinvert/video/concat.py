"""Join encoded segments of one clip into the final file, with the source's other streams, without re-encoding.

Used by resumable runs: each chunk of frames is encoded into its own segment (same codec and
settings, B-frames included, source timestamps kept), and the segments' packets are remuxed in
order into the destination, with what the source carries besides its frames (audio, subtitles,
chapters, tags, ...: :class:`~vidinvert.video.carry.StreamCarrier`, as
:class:`~vidinvert.video.VideoWriter` does). The result has the same frames and presentation
timestamps as a single continuous encode of the same frames.

Decode timestamps at a join: an encoder with B-frames starts each segment's decode timestamps
before its first frame, by its reorder delay measured on that segment's own frame gaps. With a
variable frame rate (dense frames before a join, wide gaps after it) they can fall at or before
the previous segment's last ones, which no muxer accepts. Such a packet's decode timestamp is
raised to one tick after the previous packet's: it only orders the samples in the file (the
decoder reorders by presentation timestamp), and it stays at or below the packet's presentation
timestamp because the previous segment's decode timestamps all precede this segment's first frame.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import av

from vidinvert.errors import VidinvertError
from vidinvert.video.carry import StreamCarrier, tag_output
from vidinvert.video.probe import VideoInfo, check_input_path
from vidinvert.video.writer import _FORMATS, finish_file

log = logging.getLogger(__name__)


def concat_segments(segments: Sequence[Path], dest: Path, *, like: VideoInfo, carry_from: Path | None,
                    trimmed: bool, metadata: Mapping[str, str] | None = None, overwrite: bool = False) -> Path:
    """Remux ``segments`` (in order) into ``dest`` (temp file renamed at the end).

    ``carry_from``: the clip whose other streams, chapters and tags are carried (None: none);
    ``trimmed``: shift timestamps so the output starts at 0 and cut the carried streams to the
    video's span (as :class:`~vidinvert.video.VideoWriter` does for a trimmed run).
    """
    dest = Path(dest)
    if not segments:
        raise VidinvertError(f"no frames were rendered for {dest}")
    if dest.exists() and not overwrite:
        raise VidinvertError(f"{dest} already exists: pass --overwrite to replace it")
    fmt = _FORMATS.get(dest.suffix.lower())
    if fmt is None:
        raise VidinvertError(f"{dest}: unsupported output type '{dest.suffix}': use .mp4, .mov or .mkv")
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.stem}.partial-", suffix=dest.suffix, dir=dest.parent)
    os.close(fd)
    partial = Path(tmp)
    out = None
    carrier = None
    try:
        out = av.open(str(partial), "w", format=fmt)
        ov = _video_stream_like(out, segments[0], like)
        if carry_from is not None:
            carrier = StreamCarrier(check_input_path(carry_from), out, fmt, video=ov, trimmed=trimmed,
                                    tags=metadata, rate=like.avg_frame_rate, start_time=like.start_time)
        else:
            tag_output(out, ov, dict(like.metadata), {}, metadata)
        last_end = _mux_segments(segments, out, ov, carrier, trimmed=trimmed)
        if carrier is not None:
            carrier.finish(last_end)
            carrier.close()
            carrier = None
        out.close()
        out = None
        finish_file(partial, fmt, like)
        os.replace(partial, dest)
        return dest
    finally:
        if carrier is not None:
            try:
                carrier.close()
            except Exception:
                pass
        if out is not None:
            try:
                out.close()
            except Exception:
                pass
        partial.unlink(missing_ok=True)


def _video_stream_like(out, segment: Path, like: VideoInfo):
    """The output's video stream, a template of ``segment``'s (codec, settings, time base) at the
    source's frame rate."""
    with av.open(str(segment)) as first:
        template = first.streams.video[0]
        ov = out.add_stream_from_template(template)
        ov.time_base = template.time_base
        rate = like.avg_frame_rate or template.average_rate
        if rate:  # the stream's frame rate (a template's codec rate is its time base's; MOV timecode reads it)
            ov.codec_context.framerate = rate
    return ov


def _mux_segments(segments: Sequence[Path], out, ov, carrier: StreamCarrier | None, *, trimmed: bool) -> float | None:
    """Copy every segment's video packets into ``ov`` in order (the carried streams pumped up to
    each packet's time; decode timestamps raised at a join as the module says). Returns the end of
    the last frame in seconds (None without packets)."""
    first_pts = None
    last_end = None
    last_dts = None
    for seg in segments:
        with av.open(str(seg)) as c:
            s = c.streams.video[0]
            tb = s.time_base
            for pk in c.demux(s):
                if pk.size == 0 or pk.pts is None:
                    continue
                if first_pts is None:
                    first_pts = pk.pts
                    if carrier is not None:
                        carrier.start(float(pk.pts * tb))
                if carrier is not None:
                    carrier.pump(float(pk.pts * tb))
                end = pk.pts + (pk.duration or 0)
                last_end = float(end * tb) if last_end is None else max(last_end, float(end * tb))
                if trimmed:
                    pk.pts -= first_pts
                    if pk.dts is not None:
                        pk.dts -= first_pts
                if pk.dts is not None:
                    if last_dts is not None and pk.dts <= last_dts:
                        if last_dts + 1 > pk.pts:
                            raise VidinvertError(
                                f"cannot join {seg.name}: its decode timestamps overlap the previous"
                                " segment's at this time base; run again without --resume"
                            )
                        pk.dts = last_dts + 1
                    last_dts = pk.dts
                pk.stream = ov
                out.mux(pk)
    return last_end
