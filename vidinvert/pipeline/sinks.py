"""Where rendered frames go: straight into the output clip, or into resumable chunk segments."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vidinvert import __version__


def output_metadata(run) -> dict[str, str]:
    """Container tags saying the clip was edited by vidinvert (disclosure of edited media)."""
    names = ", ".join(o.name for o in run.job.outputs)
    tags = {"comment": f"Face edited by vidinvert {__version__} ({names}); synthetic content",
            "vidinvert": __version__}
    tags.update(dict(run.job.metadata))
    return tags


class DirectSink:
    """Frames -> one :class:`~vidinvert.video.VideoWriter` (temp file renamed at the end)."""

    def __init__(self, path: Path, info, run) -> None:
        from vidinvert.video import VideoWriter

        cfg = run.cfg
        self.writer = VideoWriter(
            path, like=info, codec=cfg.codec, crf=cfg.crf, preset=cfg.preset, overwrite=cfg.overwrite,
            audio_from=run.job.source, time_range=run.job.time_range, metadata=output_metadata(run),
        )

    def write_chunk(self, number: int, frames: list[np.ndarray], pts: list[int], durations: list) -> None:
        for rgb, p, d in zip(frames, pts, durations):
            self.writer.write(rgb, p, d)

    def close(self) -> Path:
        return self.writer.close()

    def abort(self) -> None:
        self.writer.abort()
