"""Video I/O: stream a clip as upright RGB frames with timestamps, write one back with its audio.

* :func:`probe` -> :class:`VideoInfo` (container, size, rotation, colour, timing, audio).
* :func:`open_video` -> :class:`VideoReader`: iterate :class:`Frame` s (numpy uint8 HxWx3 RGB,
  index, pts, time) or ``.batches(n)`` of :class:`FrameBatch` (torch uint8 [B, 3, H, W]).
* :class:`RandomAccessVideo`: ``len``, ``get(i)``, ``get_batch(indices)`` for datasets.
* :class:`VideoWriter`: context manager writing frames with the source's pts, colour tags and
  audio to a temp file renamed on success.

All user-caused failures raise :class:`vidinvert.errors.VidinvertError` with one line.
"""

from __future__ import annotations

from vidinvert.video.colour import ColourSpec
from vidinvert.video.orientation import Orientation
from vidinvert.video.probe import AudioInfo, VideoInfo, probe
from vidinvert.video.random_access import RandomAccessVideo
from vidinvert.video.reader import Frame, FrameBatch, VideoReader, from_unit, open_video, to_unit
from vidinvert.video.writer import CODECS, VideoWriter, choose_pix_fmt

__all__ = [
    "AudioInfo",
    "CODECS",
    "ColourSpec",
    "Frame",
    "FrameBatch",
    "Orientation",
    "RandomAccessVideo",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "choose_pix_fmt",
    "from_unit",
    "open_video",
    "probe",
    "to_unit",
]
