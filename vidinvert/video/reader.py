"""Streaming reader: upright RGB frames with their index and timestamp, in bounded memory.

``open_video(path, time_range=...)`` probes the clip and returns a :class:`VideoReader`.
Iterating it decodes lazily (one frame at a time, nothing is materialised) and yields
:class:`Frame` s; :meth:`VideoReader.batches` groups them into :class:`FrameBatch` tensors.

Frame semantics (shared with :class:`~vidinvert.video.random_access.RandomAccessVideo`):

* ``index``: 0-based position of the frame among the stream's presented frames, counted from
  the stream's first frame, **also when a trim starts later**: a seconds- or frame-based
  start seeks to the keyframe before it and recovers true indices from the packet index
  (:mod:`vidinvert.video.index`; demuxing, no decoding). When the packets cannot be indexed
  (no timestamps), the reader decodes from the start instead (slower, same result).
* ``pts``: the frame's presentation timestamp in the stream's time base (``info.time_base``),
  as stored; pass it to :class:`~vidinvert.video.writer.VideoWriter` unchanged.
* ``time``: seconds since the first frame, ``(pts - info.start_pts) * time_base``. Trims
  (``TimeRange``) compare seconds with ``time`` and frame bounds with ``index``; ``end`` is
  exclusive.

Damage (``on_damage``): with ``stop`` (the default) a decoder error or a stream that ends before
its header says (truncated file) raises a one-line VidinvertError naming the file, the frame
index and time. With ``conceal`` a decoder error does not stop the pass: decoding goes on with
the next packet (the decoder conceals what it can), and a frame that does not decode at all is
replaced by the last good frame (the next one, before the first) with its own index and pts, so
the pass has the stream's frame count. ``conceal`` decodes on one thread, so which frames are
damaged is the same on every run (frame threads flag frames nondeterministically), and builds
the packet index first (demuxing, no decoding) to know every frame. A truncated file is an
error in both modes. Damage the decoder *conceals* (H.264/HEVC error concealment) is read from
each decoded frame's own error flags, not from FFmpeg's log (routing that log into Python while
decoder threads run can deadlock): the frames are kept. Both kinds are listed in
:attr:`VideoReader.damaged` (:class:`DamagedFrame`: index, time, ``concealed`` | ``repeated``)
and one warning names how many and the first. FFmpeg flags only what its error resilience
repaired; damage it decodes without noticing (a few flipped bits in a slice) cannot be seen by
any reader.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import av
import numpy as np

from vidinvert.errors import VidinvertError
from vidinvert.threads import prefetch as prefetch_items
from vidinvert.timespec import TimeRange
from vidinvert.video.damage import DamagedFrame, StandIns, check_on_damage, damage_message
from vidinvert.video.hdr_frames import converter_for
from vidinvert.video.index import PtsIndex, build_pts_index
from vidinvert.video.planes import Planes
from vidinvert.video.probe import (
    VideoInfo,
    check_complete,
    check_input_path,
    ffmpeg_message,
    open_input,
    probe,
    video_stream,
)

log = logging.getLogger(__name__)

@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded frame: ``rgb`` is HxWx3 uint8 RGB (full range), upright, displayed size.

    ``duration`` is in time-base ticks when the container says (else None). ``planes``: the
    decoded samples at their own depth and layout, upright (:class:`~vidinvert.video.planes.Planes`),
    when the reader was opened with ``planes=True`` and the format is supported (else None).
    """

    index: int
    pts: int
    time: float
    rgb: np.ndarray = field(repr=False)
    duration: int | None = None
    planes: Planes | None = field(default=None, repr=False)


@dataclass(frozen=True, eq=False)
class FrameBatch:
    """Consecutive frames as one tensor.

    ``images``: torch.uint8 [B, 3, H, W], RGB, values 0..255, on the requested device.
    Use :meth:`to_unit` for the pipeline's float [-1, 1] convention.
    """

    indices: tuple[int, ...]
    pts: tuple[int, ...]
    times: tuple[float, ...]
    durations: tuple[int | None, ...]
    images: torch.Tensor = field(repr=False)  # noqa: F821

    def __len__(self) -> int:
        return len(self.indices)

    def to_unit(self, dtype=None) -> torch.Tensor:  # noqa: F821
        """images as float [B, 3, H, W] in [-1, 1] (``dtype`` default float32)."""
        return to_unit(self.images, dtype)

    @classmethod
    def from_frames(cls, frames: list[Frame], device=None) -> FrameBatch:
        import torch

        arr = np.stack([f.rgb for f in frames])  # [B, H, W, 3]
        images = torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
        if device is not None:
            from vidinvert.device import to_device

            images = to_device(images, device)
        return cls(
            tuple(f.index for f in frames),
            tuple(f.pts for f in frames),
            tuple(f.time for f in frames),
            tuple(f.duration for f in frames),
            images,
        )


def to_unit(images, dtype=None):
    """uint8 [..., 3, H, W] 0..255 -> float [-1, 1] (same device); see :mod:`vidinvert.convert`."""
    from vidinvert.convert import unit_from_uint8

    return unit_from_uint8(images, dtype)


def from_unit(x):
    """float [..., 3, H, W] in [-1, 1] -> uint8 0..255 (same device); see :mod:`vidinvert.convert`."""
    from vidinvert.convert import uint8_from_unit

    return uint8_from_unit(x)


def _configure_decoder(stream, threads: int) -> None:
    cc = stream.codec_context
    cc.thread_type = "AUTO"
    cc.thread_count = threads


class VideoReader:
    """A clip opened for streaming. Iterate for :class:`Frame` s; each pass re-opens the file.

    ``info`` describes the clip; ``time_range`` limits the frames (``None`` = all);
    ``on_damage``: ``stop`` | ``conceal`` (see the module doc).
    """

    def __init__(self, path: str | os.PathLike, *, time_range: TimeRange | None = None, threads: int = 0,
                 info: VideoInfo | None = None, on_damage: str = "stop", planes: bool = False) -> None:
        self.planes = planes
        self.info = info if info is not None else probe(path, count_frames=False)
        self.path = self.info.path
        self.time_range = time_range if time_range and (time_range.start or time_range.end) else None
        self.threads = threads
        self.on_damage = check_on_damage(on_damage)
        self._count: int | None = None
        # The damaged frames of the last pass (concealed by the decoder, or repeated), in order.
        self.damaged: list[DamagedFrame] = []

    # -- public -----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Frame]:
        return self._frames()

    def frames(self, *, prefetch: int = 0) -> Iterator[Frame]:
        """The frames in range; ``prefetch > 0`` decodes ahead in a thread (bounded queue)."""
        return prefetch_items(self._frames, prefetch, name="vidinvert-decode") if prefetch > 0 else self._frames()

    def batches(self, size: int, *, device=None, prefetch: int = 0) -> Iterator[FrameBatch]:
        """Frames in range grouped by ``size`` (the last batch may be smaller).

        ``prefetch > 0`` decodes and stacks up to that many batches ahead in a thread.
        """
        if size < 1:
            raise ValueError("batch size must be >= 1")

        def gen() -> Iterator[FrameBatch]:
            buf: list[Frame] = []
            for frame in self._frames():
                buf.append(frame)
                if len(buf) == size:
                    yield FrameBatch.from_frames(buf, device)
                    buf = []
            if buf:
                yield FrameBatch.from_frames(buf, device)

        return prefetch_items(gen, prefetch, name="vidinvert-decode") if prefetch > 0 else gen()

    def count(self) -> int | None:
        """Exact number of frames in range (demuxes packets, no decoding); None if unknown."""
        if self._count is None:
            with open_input(self.path) as container:
                stream = video_stream(container, self.path)
                index = build_pts_index(container, stream)
            if index is None:
                return None
            tb = float(self.info.time_base)
            times = (index.pts - self.info.start_pts) * tb
            if self.time_range is None:
                self._count = len(index)
            else:
                self._count = sum(self.time_range.contains(i, float(t)) for i, t in enumerate(times))
        return self._count

    def close(self) -> None:
        """Nothing stays open between passes; kept for symmetry with the writer."""

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- decoding ---------------------------------------------------------------------------
    def _frames(self) -> Iterator[Frame]:
        info, tr, path = self.info, self.time_range, self.path
        tb = info.time_base
        convert = converter_for(info)
        orient = info.orientation
        conceal = self.on_damage == "conceal"
        with open_input(path) as container:
            stream = video_stream(container, path)
            _configure_decoder(stream, 1 if conceal else self.threads)
            full = self._full_index() if conceal else None
            try:
                index, start_idx = self._seek_to_start(container, stream, full)
            except av.FFmpegError as exc:
                raise VidinvertError(f"{path}: cannot seek to --start {tr.start}: {ffmpeg_message(exc)}") from None
            index = index if index is not None else full
            yielded = 0
            idx = -1  # index of the last decoded frame
            last_time, last_dur = 0.0, 0.0
            reached_end_of_range = False
            packets_seen = [0]
            self.damaged = damaged = []
            errors: list[str] | None = [] if conceal else None
            fill = StandIns(index, info.start_pts, tb, start_idx, damaged) if conceal and index is not None else None
            decoded = _decode_counting(container, stream, packets_seen, errors)
            while True:
                try:
                    frame = next(decoded)
                except StopIteration:
                    break
                except av.FFmpegError as exc:
                    nxt = idx + 1 if idx >= 0 else max(start_idx, 0)
                    raise VidinvertError(
                        f"{path}: corrupt or truncated video data at frame {nxt} "
                        f"({last_time + last_dur:.3f} s): {ffmpeg_message(exc)}"
                    ) from None
                pts = int(frame.pts) if frame.pts is not None else (
                    info.start_pts + round((idx + 1) * info.nominal_frame_ticks)
                )
                known = index.position(pts) if index is not None else None
                if fill is not None and (known is None or known < fill.next):
                    continue  # no such frame in the index, or one already stood in for
                idx = known if known is not None else idx + 1
                time = float((pts - info.start_pts) * tb)
                last_time = time
                last_dur = float(frame.duration * tb) if frame.duration else float(info.nominal_frame_ticks * tb)
                if idx < start_idx:
                    continue
                if tr is not None:
                    if tr.is_past_end(idx, time):
                        reached_end_of_range = True
                        break
                    if not tr.contains(idx, time):
                        continue
                if frame.is_corrupt:
                    damaged.append(DamagedFrame(idx, time, "concealed"))
                rgb = orient.apply(convert(frame))
                planes = Planes.from_frame(frame, info.colour) if self.planes else None
                planes = planes.oriented(orient) if planes is not None else None
                for stand_in in fill.before(idx, rgb, tr) if fill is not None else ():
                    yielded += 1
                    yield Frame(*stand_in)
                yielded += 1
                yield Frame(idx, pts, time, rgb, int(frame.duration) if frame.duration else None, planes)
            if fill is not None:  # the frames due up to the end (of the range) that never decoded
                for i, pts, time, rgb, dur in fill.before(idx if reached_end_of_range else len(index), None, tr):
                    yielded += 1
                    if not reached_end_of_range:
                        idx, last_time, last_dur = i, time, float((dur or info.nominal_frame_ticks) * tb)
                    yield Frame(i, pts, time, rgb, dur)
            if not reached_end_of_range:
                check_complete(container, stream, path, idx + 1, last_time + last_dur,
                               float(info.nominal_frame_ticks * tb), packets_seen[0] if index is None else None)
            if errors:
                log.info("%s: %d decoder error(s) (--on-damage conceal), the first: %s", path.name, len(errors), errors[0])
            if damaged:
                damaged.sort(key=lambda d: d.index)
                log.warning(damage_message(path, damaged))
        if yielded == 0:
            what = f" in {_range_text(tr)}" if tr is not None else ""
            raise VidinvertError(f"{path}: no video frames{what}")

    def _full_index(self) -> PtsIndex | None:
        """Every frame's pts (a separate handle: the scan moves the demuxer)."""
        with open_input(self.path) as scan:
            return build_pts_index(scan, video_stream(scan, self.path))

    def _seek_to_start(self, container, stream, full: PtsIndex | None = None) -> tuple[PtsIndex | None, int]:
        """Seek near the range start; returns (packet index or None, index of the first frame wanted).
        ``full``: the whole clip's index when it is already built."""
        tr, info = self.time_range, self.info
        start = tr.start if tr is not None else None
        if start is None or (start.frame == 0) or (start.seconds is not None and start.seconds <= 1e-6):
            return None, 0
        tb = info.time_base
        if full is not None:
            index = full
        else:
            with open_input(self.path) as scan:  # a separate handle: the index scan moves the demuxer
                scan_stream = video_stream(scan, self.path)
                if start.frame is not None:
                    index = build_pts_index(scan, scan_stream, stop_at_count=start.frame)
                else:
                    stop = info.start_pts + math.ceil(start.seconds / tb) + 1
                    index = build_pts_index(scan, scan_stream, stop_at_pts=stop)
        if index is None:
            # Decode from the start; frames before ``start`` are skipped by the range test.
            log.info("%s: packets have no usable timestamps; decoding from the start", self.path.name)
            return None, 0
        if start.frame is not None:
            start_idx = start.frame
        else:
            times = (index.pts - info.start_pts) * float(tb)
            ok = np.flatnonzero(start.seconds <= times + 1e-6)
            start_idx = int(ok[0]) if ok.size else len(index)
        if start_idx >= len(index) and index.complete:
            dur = f", {info.duration:.3f} s" if info.duration else ""
            raise VidinvertError(
                f"--start {start} is at or after the end of {self.path} ({len(index)} frames{dur})"
            )
        key = index.keyframe_at_or_before(min(start_idx, len(index) - 1))
        self._seek(container, stream, index, key, start_idx)
        return index, start_idx

    @staticmethod
    def _seek(container, stream, index: PtsIndex, key: int, target: int) -> None:
        """Seek so that decoding starts at or before frame ``target`` (at keyframe ``key``)."""
        target_pts = int(index.pts[min(target, len(index) - 1)])
        for _ in range(4):
            container.seek(int(index.pts[key]), stream=stream, backward=True, any_frame=False)
            # Check where the demuxer landed: the first decoded frame must not be after the target.
            first = None
            for first in container.decode(stream):  # noqa: B007 - the first frame is what is kept
                break
            if first is None or first.pts is None or first.pts <= target_pts:
                break
            prev = index.keyframe_before(key)
            if prev is None:
                key = 0
                break
            key = prev
        container.seek(int(index.pts[key]), stream=stream, backward=True, any_frame=False)
        stream.codec_context.flush_buffers()


def _decode_counting(container, stream, counter: list[int], errors: list[str] | None = None) -> Iterator[av.VideoFrame]:
    """Decode ``stream``, counting its demuxed packets in ``counter[0]`` (for truncation checks).
    With ``errors`` (conceal), a packet the decoder rejects is noted there and decoding goes on."""
    for packet in container.demux(stream):
        if packet.size:
            counter[0] += 1
        if errors is None:
            yield from stream.decode(packet)
            continue
        try:
            frames = stream.decode(packet)
        except av.FFmpegError as exc:
            errors.append(ffmpeg_message(exc))
            continue
        yield from frames


def _range_text(tr: TimeRange) -> str:
    return f"[{tr.start or 'start'}, {tr.end or 'end'})"


def open_video(path: str | os.PathLike, *, time_range: TimeRange | None = None, threads: int = 0,
               on_damage: str = "stop", planes: bool = False) -> VideoReader:
    """Probe ``path`` and return a streaming :class:`VideoReader` (VidinvertError on bad input).

    ``threads``: decoder threads (0 = FFmpeg's choice; ``conceal`` decodes on one);
    ``on_damage``: ``stop`` | ``conceal`` (see the module doc); ``planes``: frames also carry their
    decoded samples (:attr:`Frame.planes`).
    """
    check_input_path(path)
    return VideoReader(path, time_range=time_range, threads=threads, on_damage=on_damage, planes=planes)
