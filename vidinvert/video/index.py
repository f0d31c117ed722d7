"""A frame index from the container's packets (demuxed, not decoded).

Frame ``i`` of a clip is the ``i``-th presented frame (0-based, in presentation order) of its
video stream, counted from the stream's start. Sorting the video packets' presentation
timestamps gives every frame's index and pts without decoding a pixel, so trims and random
access can seek near a frame and still know the true index of what they decode.

The index is only trusted when every packet has a pts and no two share one; otherwise
:func:`build_pts_index` returns ``None`` and callers fall back to decoding from the start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np


@dataclass(frozen=True, eq=False)
class PtsIndex:
    """Presentation timestamps of a video stream's frames, sorted.

    ``pts``: int64 [N] ascending, in ``time_base`` units; ``keyframe``: bool [N] (the packet is
    a keyframe, i.e. decoding can start there); ``durations``: int64 [N] packet durations (0 when
    the container does not say). ``complete`` is False when the scan stopped early (then only
    the first ``len(pts)`` frames are known exactly).
    """

    time_base: Fraction
    pts: np.ndarray = field(repr=False)
    keyframe: np.ndarray = field(repr=False)
    durations: np.ndarray = field(repr=False)
    complete: bool = True
    n_packets: int = -1  # packets scanned, edit-list discards included (-1: unknown)

    def __len__(self) -> int:
        return int(self.pts.shape[0])

    def position(self, pts: int) -> int | None:
        """Index of the frame with exactly this pts, or None."""
        i = int(np.searchsorted(self.pts, pts))
        return i if i < len(self) and int(self.pts[i]) == pts else None

    def first_at_or_after(self, pts: int) -> int:
        """Index of the first frame whose pts is >= ``pts`` (``len`` when none)."""
        return int(np.searchsorted(self.pts, pts, side="left"))

    def keyframe_at_or_before(self, i: int) -> int:
        """Index of the last keyframe at or before frame ``i`` (0 when none is marked)."""
        keys = np.flatnonzero(self.keyframe[: i + 1])
        return int(keys[-1]) if keys.size else 0

    def keyframe_before(self, i: int) -> int | None:
        """Index of the last keyframe strictly before frame ``i``, or None."""
        keys = np.flatnonzero(self.keyframe[:i])
        return int(keys[-1]) if keys.size else None


def build_pts_index(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    *,
    stop_at_pts: int | None = None,
    stop_at_count: int | None = None,
) -> PtsIndex | None:
    """Demux (without decoding) the video packets of ``stream`` and index them.

    The scan may stop early: packets come in decode order and a frame's dts is never after its
    pts, so once a packet's dts is at or past ``stop_at_pts`` every frame presented before
    ``stop_at_pts`` has been seen; ``stop_at_count`` stops once the first ``stop_at_count + 1``
    frames are settled the same way. The container is rewound to the start afterwards.
    Returns None when the packets lack timestamps or repeat them.
    """
    pts_list: list[int] = []
    keys: list[bool] = []
    durs: list[int] = []
    complete = True
    n_packets = 0
    try:
        for packet in container.demux(stream):
            if packet.size == 0 and packet.pts is None and packet.dts is None:
                continue  # the demuxer's flush packet
            n_packets += 1
            if packet.is_discard:
                continue  # dropped by the decoder (edit lists)
            if packet.pts is None:
                return None
            pts_list.append(int(packet.pts))
            keys.append(bool(packet.is_keyframe))
            durs.append(int(packet.duration or 0))
            dts = packet.dts
            if dts is not None and (stop_at_pts is not None or stop_at_count is not None):
                if stop_at_pts is not None and dts >= stop_at_pts:
                    complete = False
                    break
                if stop_at_count is not None and len(pts_list) > stop_at_count + 1 and len(pts_list) % 16 == 0:
                    settled = int(np.count_nonzero(np.asarray(pts_list, dtype=np.int64) < dts))
                    if settled > stop_at_count:
                        complete = False
                        break
    finally:
        try:
            container.seek(0, backward=True, any_frame=False)
        except av.FFmpegError:  # pragma: no cover - unseekable input; callers reopen
            pass
    if not pts_list:
        return PtsIndex(stream.time_base, np.zeros(0, np.int64), np.zeros(0, bool), np.zeros(0, np.int64), True,
                        n_packets)
    order = np.argsort(np.asarray(pts_list, dtype=np.int64), kind="stable")
    pts = np.asarray(pts_list, dtype=np.int64)[order]
    if np.any(np.diff(pts) <= 0):
        return None
    keyframe = np.asarray(keys, dtype=bool)[order]
    durations = np.asarray(durs, dtype=np.int64)[order]
    if not complete:
        # Only frames presented before the stopping dts are settled; later ones may still be missing.
        last_dts = dts
        keep = pts < last_dts
        pts, keyframe, durations = pts[keep], keyframe[keep], durations[keep]
    return PtsIndex(stream.time_base, pts, keyframe, durations, complete, n_packets)
