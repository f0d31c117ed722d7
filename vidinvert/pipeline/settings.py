"""A request resolved once into the values the jobs use (torch-free).

:meth:`JobSettings.resolve` checks the request and computes, once, what every job and the editing
session read: the strength, feature-keep and style-strength schedules, the time range (a preview's
2 s included), the crop sigmas, the per-kind requests of a mixed run and the batch-size rule. The job
configurations (:class:`~vidinvert.pipeline.video_config.VideoConfig`, the photo and image jobs'
settings) are made from it and have no defaults of their own for what the request sets.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from vidinvert.pipeline.request import ALIGNED, PHOTO, VIDEO, EditRequest, InvertRequest, unit_schedule
from vidinvert.timespec import Keyframes, TimeRange, parse_time

#: Faces per network batch on the CPU when ``--batch-size`` is not given, per input kind.
CPU_BATCH = {VIDEO: 2, ALIGNED: 4}
#: The most faces per batch chosen from free GPU memory.
MAX_AUTO_BATCH = 32
#: GPU memory one 1024 px face's activations need (generous; scaled by the generator's area).
BYTES_PER_1024_FACE = 0.6 * 2**30


def preview_range(start: str | None, end: str | None, preview: bool) -> TimeRange:
    """``--start``/``--end``; a preview without ``end`` renders 2 s (or 60 frames) from the start."""
    if preview and end is None:
        s0 = parse_time(start) if start else None
        if s0 is None or s0.seconds is not None:
            end = f"{(s0.seconds if s0 else 0.0) + 2.0}s"
        else:
            end = f"{s0.frame + 60}f"
    return TimeRange.parse(start, end)


@dataclass(frozen=True)
class JobSettings:
    """The request and what is derived from it, once (see the module docstring).

    ``strength``/``feature_keep``/``style_strength``: a float or :class:`Keyframes` (0 / 1 / 1 for
    ``invert``); ``time_range``: the frames a clip job renders; ``crop_sigmas``: (centre, axes) in
    frames.
    """

    request: InvertRequest
    strength: float | Keyframes
    feature_keep: float | Keyframes
    style_strength: float | Keyframes
    time_range: TimeRange
    crop_sigmas: tuple[float, float]

    @classmethod
    def resolve(cls, request: InvertRequest, *, check: bool = True) -> JobSettings:
        """Check ``request`` (unless already checked) and resolve it."""
        if check:
            request.check()
        edit = request if isinstance(request, EditRequest) else None
        return cls(
            request=request,
            strength=edit.parsed_strength() if edit is not None else 0.0,
            feature_keep=unit_schedule("feature_keep", edit.feature_keep) if edit is not None else 1.0,
            style_strength=unit_schedule("style_strength", edit.style_strength) if edit is not None else 1.0,
            time_range=preview_range(request.start, request.end, request.preview),
            crop_sigmas=request.crop_sigmas(),
        )

    @property
    def edit(self) -> EditRequest | None:
        """The request when it is an edit (None for ``invert``)."""
        return self.request if isinstance(self.request, EditRequest) else None

    @property
    def kind(self) -> str:
        return self.request.kind

    def for_kind(self, kind: str) -> JobSettings:
        """These settings for the inputs of ``kind`` in a mixed run (the options given for other
        kinds reset: :meth:`InvertRequest.for_kind`)."""
        req = self.request.for_kind(kind)
        return self if req is self.request else JobSettings.resolve(req, check=False)

    def replace(self, **fields) -> JobSettings:
        """The settings of a request with ``fields`` changed (per-input paths of a corpus run)."""
        return JobSettings.resolve(dataclasses.replace(self.request, **fields), check=False)

    def batch_size(self, kind: str, compute, image_size: int) -> int:
        """Faces per network batch: ``--batch-size``; else on CUDA as many as 60% of the free memory
        holds (at most :data:`MAX_AUTO_BATCH`); else :data:`CPU_BATCH`. Photos go in one batch."""
        if kind == PHOTO:
            raise ValueError("a photo's faces go through the networks as one batch")
        if self.request.batch_size is not None:
            return int(self.request.batch_size)
        if compute.device.type != "cuda":
            return CPU_BATCH[kind]
        from vidinvert.device import free_memory

        per_face = BYTES_PER_1024_FACE * (image_size / 1024) ** 2
        return int(max(1, min(MAX_AUTO_BATCH, free_memory(compute.device) * 0.6 // per_face)))
