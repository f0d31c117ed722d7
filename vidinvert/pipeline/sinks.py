"""Where rendered frames go: straight into the output clip, or into resumable chunk segments.

Sinks take :class:`EncodeSettings` (what to encode and how), never the run itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from vidinvert.timespec import TimeRange
from vidinvert.version import __version__
from vidinvert.video import VideoWriter


@dataclass(frozen=True)
class EncodeSettings:
    """How an output clip is encoded: codec settings, the clip whose audio, subtitles, chapters
    and other streams are carried over, the trim the frames come from, and the tags."""

    codec: str = "libx264"
    crf: float = 18.0
    preset: str = "medium"
    overwrite: bool = False
    carry_from: Path | None = None
    time_range: TimeRange | None = None
    metadata: tuple[tuple[str, str], ...] = ()
    planes: bool = False  # frames come as the source's Planes (FFV1 keeps the source's pixel format)

    @property
    def trimmed(self) -> bool:
        tr = self.time_range
        return bool(tr and (tr.start or tr.end))


def output_metadata(output_names: Sequence[str], extra: Sequence[tuple[str, str]] = ()) -> tuple[tuple[str, str], ...]:
    """Container tags saying the clip was edited by vidinvert (disclosure of edited media)."""
    names = ", ".join(output_names)
    tags = {"comment": f"Face edited by vidinvert {__version__} ({names}); synthetic content",
            "vidinvert": __version__, "encoder": f"vidinvert {__version__}"}
    tags.update(dict(extra))
    return tuple(tags.items())


class DirectSink:
    """Frames -> one :class:`~vidinvert.video.VideoWriter` (temp file renamed at the end)."""

    def __init__(self, path: Path, info, enc: EncodeSettings) -> None:
        self.writer = VideoWriter(
            path, like=info, codec=enc.codec, crf=enc.crf, preset=enc.preset, overwrite=enc.overwrite,
            carry_from=enc.carry_from, time_range=enc.time_range, metadata=dict(enc.metadata),
            planes=enc.planes,
        )

    def write_chunk(self, number: int, frames: list[np.ndarray], pts: list[int], durations: list,
                    planes: list | None = None) -> None:
        """``frames`` uint8 RGB; ``planes``: the same frames' samples (a frame's Planes is written instead
        of its RGB where given)."""
        for rgb, pl, p, d in zip(frames, planes or [None] * len(frames), pts, durations):
            self.writer.write(rgb if pl is None else pl, p, d)

    def close(self) -> Path:
        return self.writer.close()

    def abort(self) -> None:
        self.writer.abort()
