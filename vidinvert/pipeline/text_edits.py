"""Edits described in words (``--text``) in the jobs: the files they need, the checks before the networks
load, and the prompts' StyleSpace directions once the generator is loaded.

Files, looked up like every model file (``--weights-dir``, ``$VIDINVERT_HOME``, ``~/.cache/vidinvert``):
CLIP ViT-B/32 (registry ``clip-vit-b32``) and the relevance matrix (``--text-matrix FILE``, else StyleCLIP's
``fs3.npy``, registry ``styleclip-fs3-ffhq``, made for the FFHQ 1024 generator; ``vidinvert directions
stylespace-stats`` makes one for any generator). See :mod:`vidinvert.edit.relevance` and :mod:`vidinvert.edit.text`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path

from vidinvert.edit import text as textdir
from vidinvert.edit.layers import parse_layers
from vidinvert.edit.relevance import load_relevance, text_direction
from vidinvert.edit.stylespace import StyleDirection, load_style_stats, mask_style_rows
from vidinvert.engine import Inverter
from vidinvert.errors import VidinvertError
from vidinvert.models import clip as clipmodel
from vidinvert.pipeline.request import EditRequest
from vidinvert.weights import generator_file, install_dir, require
from vidinvert.weights.loading import read_generator_layout

log = logging.getLogger("vidinvert")

CLIP_ENTRY = "clip-vit-b32"
MATRIX_ENTRY = "styleclip-fs3-ffhq"


def matrix_file(text_matrix: Path | None, weights_dir: Path | None) -> Path:
    """``--text-matrix`` or StyleCLIP's published matrix in the weights folders (one line where to put it)."""
    if text_matrix is not None:
        if not Path(text_matrix).is_file():
            raise VidinvertError(f"--text-matrix {text_matrix}: file not found")
        return Path(text_matrix)
    return require(MATRIX_ENTRY, weights_dir)


def clip_file(weights_dir: Path | None) -> Path:
    return require(CLIP_ENTRY, weights_dir)


@functools.lru_cache(maxsize=2)
def _clip(path: str, device: str):
    return clipmodel.load_clip(path, device)


@functools.lru_cache(maxsize=32)
def _text_delta(path: str, device: str, target: str, neutral: str):
    """``Δt`` ``[D]`` of a prompt pair with the CLIP file at ``path`` (2 x 79 templates through the text
    encoder: seconds on a CPU), kept: the editing session re-plans on every strength or β change."""
    return textdir.text_delta(_clip(path, device), target, neutral, device)


def check_prompts(prompts: Sequence[str], neutral: str) -> None:
    """Each prompt (and the neutral one) is not empty and fits CLIP's context (one line naming its option)."""
    for p in (*prompts, neutral):
        textdir.check_phrase(p, "--text" if p != neutral else "--text-neutral")


def precheck_text(prompts: Sequence[str], neutral: str, text_matrix: Path | None, generator: str | None,
                  weights_dir: Path | None) -> None:
    """Before the networks load: each prompt (and the neutral one) fits CLIP's context, the CLIP file and
    the matrix are there, and the matrix fits the generator file's layout (read from its shapes)."""
    if not prompts:
        return
    check_prompts(prompts, neutral)
    clip_file(weights_dir)

    load_relevance(matrix_file(text_matrix, weights_dir), read_generator_layout(generator_file(generator, weights_dir)))


def prompt_tags(prompts: Sequence[str]) -> list[str]:
    """Each prompt's output tag (shortened and hashed where needed, distinct among ``prompts``)."""
    return [textdir.prompt_tag(p, tuple(prompts)) for p in prompts]


def text_styles(prompts: Sequence[str], inv: Inverter, *, neutral: str = textdir.NEUTRAL, beta: float = textdir.BETA,
                text_matrix: Path | None = None, weights_dir: Path | None = None,
                layers: str | None = None) -> list[StyleDirection]:
    """The prompts' S directions for ``inv``'s generator (in style units), restricted to the S layers
    driven by ``layers``; each prompt's kept channel count is logged."""
    if not prompts:
        return []
    layout = inv.style_layout
    rel = load_relevance(matrix_file(text_matrix, weights_dir), layout)
    path, device = str(clip_file(weights_dir)), str(inv.compute.device)
    model = _clip(path, device)
    std = load_style_stats(inv.generator, install_dir(weights_dir)).std
    out = []
    for prompt, tag in zip(prompts, prompt_tags(prompts)):
        d, kept = text_direction(model, rel, layout, std, prompt, neutral=neutral, beta=beta, name=tag,
                                 delta=_text_delta(path, device, prompt, neutral))
        log.info(f"--text {prompt!r}: {kept} style channels with relevance >= {beta:g} (of {rel.values.shape[0]})")
        out.append(d)
    if layers is not None:
        rows = parse_layers(layers, inv.n_latent)
        out = [mask_style_rows(d, layout, rows) for d in out]
    return out


def request_text_styles(req: EditRequest, inv: Inverter) -> list[StyleDirection]:
    return text_styles(req.text, inv, neutral=req.text_neutral, beta=req.text_beta, text_matrix=req.text_matrix,
                       weights_dir=req.weights_dir, layers=req.layers)
