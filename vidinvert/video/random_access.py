"""Random access to a clip's frames for datasets (``train``, ``eval``).

Same frame semantics as the streaming reader (:mod:`vidinvert.video.reader`): frame ``i`` is
the ``i``-th presented frame, ``pts`` in the stream's time base, ``time`` seconds since the
first frame, ``rgb`` upright HxWx3 uint8 with the stream's colour range/matrix honoured.

Backends:

* ``pyav`` (default): indexes the packets once (demux, no decoding), then for ``get(i)``
  seeks to the keyframe at or before frame ``i`` and decodes forward; consecutive requests
  continue decoding without seeking.
* ``decord`` (optional, ``pip install decord``): faster batched reads, converted by decord's
  own FFmpeg. Measured with decord 0.6: it honours colour tags that are present, but converts
  **untagged** HD clips as BT.601 (vidinvert assumes BT.709 there) and 10-bit clips with its own
  rounding (differences of tens of levels), and it **cannot read rotated clips** (wrong shapes,
  then a crash). Rotated clips, and clips where its frame count disagrees with the packet
  index, fall back to PyAV with a notice; the colour cases get a notice. Indices, pts and
  times always come from the packet index.

Objects are picklable (open files are dropped and reopened lazily), so they can be handed to
DataLoader workers.
"""

from __future__ import annotations

import logging
import os

import av
import numpy as np

from vidinvert.errors import VidinvertError
from vidinvert.video.hdr_frames import converter_for
from vidinvert.video.index import PtsIndex, build_pts_index
from vidinvert.video.planes import Planes
from vidinvert.video.probe import VideoInfo, ffmpeg_message, open_input, probe, video_stream
from vidinvert.video.reader import Frame, FrameBatch, VideoReader

log = logging.getLogger(__name__)

_FORWARD_LIMIT = 16  # decode forward instead of seeking when the target is this close


class RandomAccessVideo:
    """``len(v)``, ``v.get(i) -> Frame``, ``v.get_batch(indices) -> FrameBatch``."""

    def __init__(self, path: str | os.PathLike, backend: str = "pyav", *, threads: int = 0,
                 planes: bool = False) -> None:
        self.planes = planes  # frames carry their decoded samples (pyav backend; Frame.planes)
        if backend not in ("pyav", "decord"):
            raise VidinvertError(f"unknown video backend {backend!r}: use pyav or decord")
        self.info: VideoInfo = probe(path, count_frames=False)
        self.path = self.info.path
        self.threads = threads
        with open_input(self.path) as container:
            index = build_pts_index(container, video_stream(container, self.path))
        if index is None:
            index = self._index_by_decoding()
        if len(index) == 0:
            raise VidinvertError(f"{self.path} has a video stream but no frames")
        self.index: PtsIndex = index
        self._state = None
        self._seekable = True
        self.backend = backend
        if backend == "decord":
            self.backend = self._check_decord()

    # -- public -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.index)

    @property
    def pts(self) -> np.ndarray:
        """int64 [N]: every frame's pts (time-base ticks), ascending."""
        return self.index.pts

    @property
    def times(self) -> np.ndarray:
        """float64 [N]: every frame's time in seconds since the first frame."""
        return (self.index.pts - self.info.start_pts) * float(self.info.time_base)

    def get(self, i: int) -> Frame:
        """Frame ``i`` (negative indices count from the end)."""
        i = self._check_index(i)
        if self.backend == "decord":
            rgb = self._decord().get_batch([i]).asnumpy()[0]
            return self._frame(i, rgb)
        return self._get_pyav(i)

    def get_batch(self, indices, *, device=None) -> FrameBatch:
        """Frames at ``indices`` (any order, repeats allowed) as a :class:`FrameBatch`."""
        idx = [self._check_index(int(i)) for i in indices]
        if self.backend == "decord":
            arr = self._decord().get_batch(idx).asnumpy()
            frames = [self._frame(i, a) for i, a in zip(idx, arr)]
        else:
            got: dict[int, Frame] = {}
            for i in sorted(set(idx)):  # ascending order decodes each GOP once
                got[i] = self._get_pyav(i)
            frames = [got[i] for i in idx]
        return FrameBatch.from_frames(frames, device)

    def close(self) -> None:
        if self._state is not None:
            container = self._state.get("container")
            if container is not None:
                container.close()
        self._state = None

    def __enter__(self) -> RandomAccessVideo:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        d = dict(self.__dict__)
        d["_state"] = None
        return d

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    # -- internals --------------------------------------------------------------------------
    def _check_index(self, i: int) -> int:
        n = len(self.index)
        j = i + n if i < 0 else i
        if not 0 <= j < n:
            raise IndexError(f"frame {i} out of range for {self.path.name} ({n} frames)")
        return j

    def _frame(self, i: int, rgb: np.ndarray, planes=None) -> Frame:
        pts = int(self.index.pts[i])
        dur = int(self.index.durations[i]) or None
        return Frame(i, pts, float((pts - self.info.start_pts) * self.info.time_base), rgb, dur, planes)

    def _open(self) -> dict:
        if self._state is None:
            container = open_input(self.path)
            stream = video_stream(container, self.path)
            stream.codec_context.thread_type = "AUTO"
            stream.codec_context.thread_count = self.threads
            self._state = {"container": container, "stream": stream, "frames": None, "pos": None,
                           "convert": converter_for(self.info), "from_start": True, "decoded": 0}
        return self._state

    def _get_pyav(self, i: int) -> Frame:
        st = self._open()
        index = self.index
        target = int(index.pts[i])
        pos = st["pos"]  # index of the last decoded frame, or None
        key = index.keyframe_at_or_before(i)
        ahead = st["frames"] is not None and pos is not None and pos < i
        forward = ahead and (key <= pos or i - pos <= _FORWARD_LIMIT or not self._seekable)
        if not forward:
            try:
                if not self._seekable:
                    raise av.FFmpegError(1, "unseekable")
                VideoReader._seek(st["container"], st["stream"], index, key, i)
            except av.FFmpegError:
                # Raw streams cannot seek: reopen and decode from the start.
                self._seekable = False
                self.close()
                st = self._open()
            st["frames"] = st["container"].decode(st["stream"])
            st["pos"] = None
            st["from_start"] = not self._seekable
            st["decoded"] = 0
        try:
            for frame in st["frames"]:
                st["decoded"] += 1
                pts = frame.pts
                if pts is None:  # raw streams: decode order from the start gives the pts
                    if not st["from_start"]:
                        continue
                    pts = self.info.start_pts + (st["decoded"] - 1) * self.info.nominal_frame_ticks
                p = index.position(int(pts))
                if p is not None:
                    st["pos"] = p
                if pts == target:
                    rgb = self.info.orientation.apply(st["convert"](frame))
                    planes = Planes.from_frame(frame, self.info.colour) if self.planes else None
                    return self._frame(i, rgb, planes.oriented(self.info.orientation) if planes else None)
                if pts > target:
                    break
        except Exception as exc:
            if isinstance(exc, VidinvertError):
                raise
            st["frames"] = None
            raise VidinvertError(f"{self.path}: cannot decode frame {i} ({self.times[i]:.3f} s): "
                                 f"{ffmpeg_message(exc)}") from None
        st["frames"] = None
        raise VidinvertError(f"{self.path}: frame {i} ({self.times[i]:.3f} s) could not be decoded")

    def _index_by_decoding(self) -> PtsIndex:
        """Fallback when packets lack timestamps: decode once (no conversion) to list the pts."""
        log.info("%s: packets have no usable timestamps; indexing by decoding", self.path.name)
        pts, keys = [], []
        with open_input(self.path) as container:
            stream = video_stream(container, self.path)
            ticks = self.info.nominal_frame_ticks
            for n, frame in enumerate(container.decode(stream)):
                pts.append(int(frame.pts) if frame.pts is not None else self.info.start_pts + n * ticks)
                keys.append(bool(frame.key_frame))
        arr = np.asarray(pts, np.int64)
        return PtsIndex(self.info.time_base, arr, np.asarray(keys, bool), np.zeros_like(arr), True)

    def _check_decord(self) -> str:
        try:
            import decord  # noqa: F401
        except ImportError:
            raise VidinvertError("the decord backend needs the decord package: pip install 'vidinvert[decord]'") from None
        if not self.info.orientation.is_identity:
            log.warning("%s is rotated (%d degrees): decord cannot read rotated clips, using PyAV",
                        self.path.name, self.info.rotation)
            return "pyav"
        n = len(self._decord())
        if n != len(self.index):
            log.warning("%s: decord sees %d frames, the packet index %d; using PyAV", self.path.name, n, len(self.index))
            self._state = None
            return "pyav"
        c = self.info.colour
        if (not c.matrix_tagged and c.matrix != "bt601") or (not c.range_tagged and c.range != "limited") \
                or self.info.bit_depth > 8:
            log.warning("%s (%s, %s range, %d-bit): decord converts it differently from vidinvert's reader "
                        "(untagged HD / 10-bit); colours will differ from the pyav backend",
                        self.path.name, c.matrix, c.range, self.info.bit_depth)
        return "decord"

    def _decord(self):
        if self._state is None or "vr" not in self._state:
            import decord

            self._state = {"vr": decord.VideoReader(str(self.path), ctx=decord.cpu(0), num_threads=self.threads)}
        return self._state["vr"]
