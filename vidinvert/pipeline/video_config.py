"""The video job's settings: one output clip, the job's configuration and the whole job.

:class:`VideoConfig` has no defaults of its own for what the request sets: its defaults are the
request's (:class:`~vidinvert.pipeline.request.InvertRequest`), and a job makes it from the resolved
settings with :meth:`VideoConfig.from_settings` (its values were checked there). The face stage's
:class:`~vidinvert.face.stage.FaceConfig` comes from :func:`face_config`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vidinvert.edit.directions import EditSpec
from vidinvert.face.smooth import SmoothConfig
from vidinvert.face.stage import FaceConfig
from vidinvert.face.track import TrackConfig
from vidinvert.face.types import parse_face_select
from vidinvert.pipeline.request import CHUNK_FRAMES, VIDEO, EditRequest
from vidinvert.pipeline.settings import JobSettings
from vidinvert.timespec import Keyframes, TimeRange

SIDE_BY_SIDE = "side-by-side"
_D = EditRequest.defaults()


@dataclass(frozen=True)
class OutputSpec:
    """One output clip: ``edit`` None renders the inversion (``vidinvert invert``)."""

    name: str
    path: Path
    edit: EditSpec | None = None


@dataclass(frozen=True, kw_only=True)
class VideoConfig:
    """Settings of the video job (see ``vidinvert edit --help`` for each option). ``batch_size`` has
    no default: the rule is :meth:`JobSettings.batch_size`. Choices are plain strings here (the values
    of :mod:`vidinvert.choices`; PyAV takes no ``str`` subclass)."""

    batch_size: int
    strength: float | Keyframes = float(_D["strength"])
    chunk_frames: int = CHUNK_FRAMES
    paste_mode: str = str(_D["paste"])
    color_match: bool = _D["color_match"]
    latent_sigma: float = _D["smooth_latents"]
    fine_mean: bool = _D["fine_mean"]
    fine_start: int = 9
    codec: str = str(_D["codec"])
    crf: float = _D["crf"]
    preset: str = str(_D["preset"])
    mask_size: int = 256
    overwrite: bool = _D["overwrite"]
    resume: bool = _D["resume"]
    report_identity: bool = _D["identity"]
    side_by_side: bool = _D["side_by_side"]
    frames_dir: Path | None = _D["frames_dir"]
    on_damage: str = str(_D["on_damage"])

    @classmethod
    def from_settings(cls, s: JobSettings, *, batch_size: int, frames_dir: Path | None) -> VideoConfig:
        """The configuration of one clip of a request (``frames_dir``: this clip's folder)."""
        r = s.request
        return cls(strength=s.strength, batch_size=batch_size, paste_mode=str(r.paste), color_match=r.color_match,
                   latent_sigma=float(r.smooth_latents), fine_mean=r.fine_mean, codec=str(r.codec), crf=float(r.crf),
                   preset=str(r.preset), overwrite=r.overwrite, resume=r.resume, side_by_side=r.side_by_side,
                   report_identity=r.identity, frames_dir=frames_dir, on_damage=str(r.on_damage))


def face_config(s: JobSettings, device: str) -> FaceConfig:
    """The face stage of a clip job: detector, which faces, tracking, crop smoothing and gaps."""
    r = s.request
    centre, axes = s.crop_sigmas
    return FaceConfig(detector=str(r.detector), weights_dir=str(r.weights_dir) if r.weights_dir else None,
                      device=device, track=TrackConfig(select=parse_face_select(r.face), flow_refine=r.flow_refine),
                      smooth=SmoothConfig(sigma_center=centre, sigma_axes=axes, max_gap=float(r.max_gap)))


@dataclass(frozen=True)
class VideoJob:
    source: Path
    outputs: tuple[OutputSpec, ...]
    config: VideoConfig
    face: FaceConfig = field(default_factory=FaceConfig)
    time_range: TimeRange = field(default_factory=TimeRange)
    save_latents: Path | None = None
    metadata: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_settings(cls, s: JobSettings, source: Path, outputs: tuple[OutputSpec, ...], *, compute, image_size: int,
                      frames_dir: Path | None, save_latents: Path | None) -> VideoJob:
        """One clip's job from the resolved settings (``compute``: where the networks run)."""
        cfg = VideoConfig.from_settings(s, batch_size=s.batch_size(VIDEO, compute, image_size), frames_dir=frames_dir)
        return cls(source=source, outputs=outputs, config=cfg, face=face_config(s, str(compute.device)),
                   time_range=s.time_range, save_latents=save_latents)
