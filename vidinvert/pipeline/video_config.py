"""The video job's settings: one output clip, the job's configuration and the whole job."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidinvert.edit.directions import EditSpec
from vidinvert.errors import VidinvertError
from vidinvert.face.stage import FaceConfig
from vidinvert.face.types import PASTE_MODES
from vidinvert.timespec import Keyframes, TimeRange

SIDE_BY_SIDE = "side-by-side"


@dataclass(frozen=True)
class OutputSpec:
    """One output clip: ``edit`` None renders the inversion (``vidinvert invert``)."""

    name: str
    path: Path
    edit: EditSpec | None = None


@dataclass(frozen=True)
class VideoConfig:
    """Settings of the video job (see ``vidinvert edit --help`` for each option)."""

    strength: float | Keyframes = 3.0
    batch_size: int = 4
    chunk_frames: int = 32
    paste_mode: str = "delta"
    color_match: bool = False
    latent_sigma: float = 0.0
    fine_mean: bool = False
    fine_start: int = 9
    codec: str = "libx264"
    crf: float = 18.0
    preset: str = "medium"
    mask_size: int = 256
    overwrite: bool = False
    resume: bool = False
    report_identity: bool = True
    side_by_side: bool = False
    frames_dir: Path | None = None

    def __post_init__(self) -> None:
        from vidinvert.video.writer import check_encoder_settings

        check_encoder_settings(self.codec, self.crf, self.preset)
        if self.frames_dir is not None and self.frames_dir.exists() and not self.frames_dir.is_dir():
            raise VidinvertError(f"--frames-dir {self.frames_dir} is a file, not a folder")
        if self.paste_mode not in PASTE_MODES:
            raise VidinvertError(f"--paste {self.paste_mode}: choose one of {', '.join(PASTE_MODES)}")
        if self.batch_size < 1 or self.chunk_frames < 1:
            raise VidinvertError("--batch-size and the chunk size must be at least 1")
        radius = int(np.ceil(3 * self.latent_sigma)) if self.latent_sigma > 0 else 0
        if radius > self.chunk_frames:
            raise VidinvertError(
                f"--smooth-latents {self.latent_sigma:g} reaches {radius} frames, more than a chunk "
                f"({self.chunk_frames}); use a smaller sigma"
            )


@dataclass(frozen=True)
class VideoJob:
    source: Path
    outputs: tuple[OutputSpec, ...]
    config: VideoConfig = field(default_factory=VideoConfig)
    face: FaceConfig = field(default_factory=FaceConfig)
    time_range: TimeRange = field(default_factory=TimeRange)
    save_latents: Path | None = None
    metadata: tuple[tuple[str, str], ...] = ()
