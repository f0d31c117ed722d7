"""The jobs behind ``vidinvert directions discover`` and ``directions preview``: each a typed request
checked before anything loads, then one call that loads what it needs and returns a summary.

``discover`` factorizes the generator alone (float64 on the CPU, seconds) and, with ``preview``, also
draws a contact sheet of the found directions on a face (then the encoder loads too).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from vidinvert import specs
from vidinvert.device import resolve_compute
from vidinvert.edit.channels import locate_channels
from vidinvert.edit.discover import DiscoverRequest, DiscoverResult, plan_discover, run_discover
from vidinvert.edit.layers import parse_layers
from vidinvert.edit.stylespace import load_style_stats
from vidinvert.edit.text import check_beta
from vidinvert.errors import VidinvertError
from vidinvert.face import masks as face_masks
from vidinvert.face.regions import RegionMasker, parse_regions
from vidinvert.pipeline.context import load_inverter
from vidinvert.pipeline.preview import PreviewRequest, check_preview_request, run_preview
from vidinvert.pipeline.request import ModelChoice
from vidinvert.pipeline.style_edits import precheck_layout
from vidinvert.pipeline.text_edits import precheck_text
from vidinvert.weights import generator_file, install_dir, load_generator

# Options of ``discover`` that only shape the --preview sheet.
PREVIEW_ONLY = ("preview_out", "preview_size", "at", "no_align")


@dataclass(frozen=True)
class DiscoverJob:
    """``directions discover``: the factorization (``discover``) and an optional preview sheet of the
    found directions on ``preview`` (a photo, an aligned crop with ``no_align`` or a clip frame ``at``),
    written to ``preview_out`` (default ``OUT/preview.png``) at ``preview_size``. ``explicit``: the
    options given on purpose (an encoder or dtype without a preview is refused)."""

    discover: DiscoverRequest
    models: ModelChoice = field(default_factory=ModelChoice)
    preview: Path | None = None
    preview_out: Path | None = None
    preview_size: int | None = None
    no_align: bool = False
    at: str | None = None
    explicit: frozenset[str] = frozenset()

    def preview_request(self, directions: tuple[Path, ...] = (Path("pending.npy"),)) -> PreviewRequest:
        return PreviewRequest(input=self.preview, output=self.preview_out or Path(self.discover.out_dir) / "preview.png",
                              directions=directions, at=self.at, no_align=self.no_align, preview_size=self.preview_size,
                              weights_dir=self.models.weights_dir, overwrite=self.discover.overwrite)

    def check(self) -> None:
        """What can be checked before the generator loads."""
        self.models.check()
        if self.preview is None:
            if any(getattr(self, n) not in (None, False) for n in PREVIEW_ONLY):
                raise VidinvertError("--preview-out, --preview-size, --at and --no-align need --preview FACE")
            if self.models.encoder is not None or "dtype" in self.explicit or self.models.dtype != "auto":
                raise VidinvertError("--encoder and --dtype are used by --preview only (the factorization needs"
                                     " the generator alone, in float64)")
        elif Path(self.discover.out_dir).is_dir() or self.preview_out is not None:
            check_preview_request(self.preview_request())


def run_discover_job(job: DiscoverJob) -> dict:
    """Factorize (and preview): the summary ``out``, ``index``, ``layers``, ``seconds``,
    ``directions`` (the index entries) and, with a preview, ``preview`` (its summary)."""
    job.check()
    if job.preview is None:
        gen_path = generator_file(job.models.generator, job.models.weights_dir)
        generator, _ = load_generator(gen_path)
        inverter = None
    else:
        inverter = load_inverter(job.models)
        generator, gen_path = inverter.generator, inverter.files["generator"]
    plan_discover(job.discover, generator.n_latent, generator.style_dim)
    result: DiscoverResult = run_discover(generator, job.discover, source=str(gen_path))
    summary = {"out": str(job.discover.out_dir), "index": str(result.index), "layers": result.rows,
               "seconds": result.seconds, "directions": result.entries}
    if inverter is not None:
        summary["preview"] = run_preview(inverter, job.preview_request(tuple(result.files)))
    return summary


def run_preview_job(request: PreviewRequest, models: ModelChoice) -> dict:
    """``directions preview``: check the request, load the networks ``models`` names, draw the sheet
    (the summary of :func:`~vidinvert.pipeline.preview.run_preview`)."""
    models.check()
    request = dataclasses.replace(request, weights_dir=models.weights_dir or request.weights_dir)
    check_preview_request(request)
    precheck_layout(models.generator, request.weights_dir, request.channels, request.directions)
    precheck_text(request.texts, request.text_neutral, request.text_matrix, models.generator, request.weights_dir)
    if request.texts:
        check_beta(request.text_beta)
    return run_preview(load_inverter(models), request)


@dataclass(frozen=True)
class ChannelsRequest:
    """``directions channels``: rank the StyleSpace channels by how much of their effect lies inside
    ``region`` (face parts, :mod:`vidinvert.face.regions`), measured on ``samples`` sampled images
    rendered at ``size`` px (None: 128, or the generator's size when smaller) with ``probes`` random
    probes (:func:`~vidinvert.edit.channels.locate_channels`); ``top`` channels listed; ``layers``:
    only the S layers driven by these w+ rows. ``models``: the generator (no encoder is loaded)."""

    region: tuple[str, ...]
    top: int = 20
    samples: int = 4
    probes: int = 8
    seed: int = 0
    size: int | None = None
    layers: str | None = None
    models: ModelChoice = field(default_factory=ModelChoice)

    def check(self) -> None:
        """What can be checked before the generator loads."""
        self.models.check()
        if self.models.encoder is not None or str(self.models.dtype) != "auto":
            raise VidinvertError("directions channels loads the generator alone, in float32: leave out --encoder "
                                 "and --dtype")
        if not specs.parse_regions(self.region):
            raise VidinvertError("directions channels needs --region (e.g. mouth)")
        for name in ("top", "samples", "probes"):
            if int(getattr(self, name)) < 1:
                raise VidinvertError(f"--{name} must be at least 1")
        if self.seed < 0:
            raise VidinvertError("--seed must not be negative")
        if self.size is not None and (self.size < 4 or self.size & (self.size - 1)):
            raise VidinvertError(f"--size must be a power of two (e.g. 256), got {self.size}")
        if self.layers is not None:
            specs.parse_layers(self.layers, 1 << 20)


def run_channels_job(request: ChannelsRequest) -> dict:
    """Load the generator (and the parsing weights when found), the channels' standard deviations
    (cached in the weights folder), and rank the channels. The summary: ``region``, ``mask_source``,
    ``samples``, ``probes``, ``size``, ``seconds``, ``measured``, ``channels`` (the top ones, best
    first: :meth:`~vidinvert.edit.channels.ChannelScore.as_dict`)."""
    request.check()
    m = request.models
    compute = resolve_compute(m.device, "fp32")
    generator, _ = load_generator(generator_file(m.generator, m.weights_dir))
    generator = generator.to(compute.device).eval().requires_grad_(False)
    size = request.size or min(128, generator.size)
    if size > generator.size:
        raise VidinvertError(f"--size {size} exceeds the generator's {generator.size} px")
    rows = parse_layers(request.layers, generator.n_latent) if request.layers is not None else None
    regions = parse_regions(request.region)
    parser = face_masks.load_parsing_masker(m.weights_dir, compute.device)
    masker = RegionMasker(regions, parser, size=size)
    stats = load_style_stats(generator, install_dir(m.weights_dir))
    scores, info = locate_channels(generator, masker, stats.std, samples=request.samples, probes=request.probes,
                                   seed=request.seed, render_size=size, rows=rows)
    return {"region": list(regions), "mask_source": info["mask_source"], "samples": request.samples,
            "probes": request.probes, "seed": request.seed, "size": size, "seconds": round(info["seconds"], 3),
            "stats_seconds": round(stats.seconds, 3), "measured": info["measured"],
            "skipped_layers": info["skipped_layers"], "channels": [c.as_dict() for c in scores[:request.top]]}
