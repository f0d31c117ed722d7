"""Video I/O: stream a clip as upright RGB frames with timestamps, write one back with all it carried.

* :func:`probe` -> :class:`VideoInfo` (container, stored / displayed size and pixel aspect,
  rotation, colour, timing, audio, subtitles and other streams, chapters, timecode, tags).
* :func:`open_video` -> :class:`VideoReader`: iterate :class:`Frame` s (numpy uint8 HxWx3 RGB,
  index, pts, time) or ``.batches(n)`` of :class:`FrameBatch` (torch uint8 [B, 3, H, W]).
* :class:`RandomAccessVideo`: ``len``, ``get(i)``, ``get_batch(indices)`` for datasets.
* :class:`VideoWriter`: context manager writing frames with the source's pts, pixel aspect and
  colour tags, and its audio, subtitles, chapters, timecode, tags, covers and attachments
  (:mod:`vidinvert.video.carry`), to a temp file renamed on success.
* Damaged clips: ``open_video(..., on_damage="conceal")`` finishes them; the damaged frames are
  ``reader.damaged`` (:class:`DamagedFrame`).

All user-caused failures raise :class:`vidinvert.errors.VidinvertError` with one line.
"""

from __future__ import annotations

from vidinvert.video.colour import ColourSpec
from vidinvert.video.orientation import Orientation
from vidinvert.video.probe import AudioInfo, VideoInfo, probe
from vidinvert.video.random_access import RandomAccessVideo
from vidinvert.video.reader import DamagedFrame, Frame, FrameBatch, VideoReader, from_unit, open_video, to_unit
from vidinvert.video.writer import CODECS, VideoWriter, choose_pix_fmt

__all__ = [
    "AudioInfo",
    "CODECS",
    "ColourSpec",
    "DamagedFrame",
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
