"""The jobs behind ``vidinvert directions from-text`` and ``directions stylespace-stats``: typed requests
checked before anything loads, then one call each.

``from-text`` turns a prompt into a StyleSpace direction file (``.npz``, standard-deviation units, for
``edit --direction``). ``stylespace-stats`` measures a relevance matrix for any generator, as StyleCLIP
does (:func:`~vidinvert.edit.relevance.compute_relevance`): for the 1024 generator and 100 images that is
5376 channels x 100 images x 2 syntheses, about a million syntheses — days on a CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidinvert.choices import ModelChoice
from vidinvert.device import resolve_compute, warn_cpu_fallback
from vidinvert.edit import text as textdir
from vidinvert.edit.relevance import PUBLISHED_MAX_RESOLUTION, SAMPLES, SEED, compute_relevance, load_relevance, text_direction
from vidinvert.edit.stylespace import generator_fingerprint, load_style_stats
from vidinvert.errors import VidinvertError
from vidinvert.fileio import check_output
from vidinvert.models import clip as clipmodel
from vidinvert.models.stylespace import generator_layout, write_style_direction
from vidinvert.pipeline.text_edits import clip_file, matrix_file
from vidinvert.weights import generator_file, install_dir, load_generator


def _generator(models: ModelChoice):
    compute = resolve_compute(models.device, "fp32")
    warn_cpu_fallback(compute, models.device)
    gen, _ = load_generator(generator_file(models.generator, models.weights_dir))
    return gen.to(compute.device).eval().requires_grad_(False), compute


@dataclass(frozen=True)
class FromTextRequest:
    """``directions from-text TARGET``: the S direction of ``target`` against ``neutral`` (β ``beta``),
    written to ``out`` (``.npz``); ``matrix``: the relevance matrix (default StyleCLIP's ``fs3.npy``)."""

    target: str
    out: Path
    neutral: str = textdir.NEUTRAL
    beta: float = textdir.BETA
    matrix: Path | None = None
    overwrite: bool = False
    models: ModelChoice = field(default_factory=ModelChoice)

    def check(self) -> None:
        self.models.check()
        if self.models.encoder is not None:
            raise VidinvertError("directions from-text needs no encoder: leave out --encoder")
        textdir.check_beta(self.beta)
        textdir.check_phrase(self.target, "TARGET")
        textdir.check_phrase(self.neutral, "--neutral")
        if Path(self.out).suffix != ".npz":
            raise VidinvertError(f"--out {self.out}: a StyleSpace direction is an .npz file")
        check_output(Path(self.out), overwrite=self.overwrite)
        clip_file(self.models.weights_dir)
        matrix_file(self.matrix, self.models.weights_dir)


def run_from_text(request: FromTextRequest) -> dict:
    """Write the prompt's direction; the summary (output, channels kept, the strongest ones)."""
    request.check()
    t0 = time.perf_counter()
    gen, compute = _generator(request.models)
    layout = generator_layout(gen)
    rel = load_relevance(matrix_file(request.matrix, request.models.weights_dir), layout)
    model = clipmodel.load_clip(clip_file(request.models.weights_dir), compute.device)
    stats = load_style_stats(gen, install_dir(request.models.weights_dir))
    d, kept = text_direction(model, rel, layout, stats.std, request.target, neutral=request.neutral,
                             beta=request.beta)
    units = (d.delta / stats.std.clamp_min(1e-30)).numpy()  # back to standard deviations for the file
    units[d.delta.numpy() == 0] = 0.0
    write_style_direction(request.out, units, layout, units="std", generator=generator_fingerprint(gen),
                          name=d.name, overwrite=request.overwrite)
    order = np.argsort(-np.abs(units))[: min(10, kept)]
    return {"output": str(request.out), "target": request.target, "neutral": request.neutral, "beta": request.beta,
            "channels_kept": kept, "tag": d.name, "matrix": rel.source, "seconds": round(time.perf_counter() - t0, 3),
            "strongest": [{"channel": layout.label(int(i)), "std": round(float(units[i]), 4)} for i in order]}


@dataclass(frozen=True)
class StatsRequest:
    """``directions stylespace-stats``: the relevance matrix of ``models.generator`` over ``samples``
    seeded images for the conv layers up to ``max_resolution`` px, written (and resumed) at ``out``."""

    out: Path
    samples: int = SAMPLES
    seed: int = SEED
    max_resolution: int = PUBLISHED_MAX_RESOLUTION
    batch: int = 8
    models: ModelChoice = field(default_factory=ModelChoice)

    def check(self) -> None:
        self.models.check()
        if self.models.encoder is not None:
            raise VidinvertError("directions stylespace-stats needs no encoder: leave out --encoder")
        for name in ("samples", "batch", "max_resolution"):
            if int(getattr(self, name)) < 1:
                raise VidinvertError(f"--{name.replace('_', '-')} must be at least 1")
        if Path(self.out).suffix != ".npz":
            raise VidinvertError(f"--out {self.out}: the relevance matrix is written as .npz")
        if Path(self.out).is_dir():
            raise VidinvertError(f"--out {self.out} is a folder")
        clip_file(self.models.weights_dir)


def run_stylespace_stats(request: StatsRequest, progress: Callable[[int, int], None] | None = None) -> dict:
    """Measure (or continue measuring) the relevance matrix; the summary."""
    request.check()
    t0 = time.perf_counter()
    gen, compute = _generator(request.models)
    layout = generator_layout(gen)
    layers = layout.conv_layers(request.max_resolution)
    if not layers:
        raise VidinvertError(f"--max-resolution {request.max_resolution}: no conv style layer at or below it")
    model = clipmodel.load_clip(clip_file(request.models.weights_dir), compute.device)
    stats = load_style_stats(gen, install_dir(request.models.weights_dir))
    rel = compute_relevance(gen, model, layout, layers, stats.mean, stats.std, Path(request.out),
                            samples=request.samples, seed=request.seed, batch=request.batch, progress=progress)
    return {"output": str(request.out), "channels": int(rel.done.size), "layers": [x.name for x in layers],
            "samples": request.samples, "seed": request.seed, "seconds": round(time.perf_counter() - t0, 3)}
