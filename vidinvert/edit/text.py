"""Edits described in words: StyleCLIP's global directions (Patashnik et al., ICCV 2021, section 6).

A prompt becomes a StyleSpace direction with no per-image optimisation:

1. **Text embedding** of a phrase: CLIP's text embedding of the phrase in each of StyleCLIP's prompt
   templates (CLIP's 80 ImageNet templates without ``"a photo of many {}."``, i.e. 79), each normalised,
   the mean normalised again (:func:`phrase_embedding`).
2. **The text direction** ``Δt = normalise(e(target) − e(neutral))``, the neutral phrase ``"a face"`` by
   default (:func:`text_delta`).
3. **Relevance** ``r = M·Δt`` with the relevance matrix ``M`` ``[C, D]`` (one row per style channel it
   covers: the normalised change of CLIP's image embedding when the channel moves); the channels with
   ``|r_c| ≥ β`` are kept with their sign (default β = 0.15), the rest set to 0 (:func:`select_channels`);
4. **The style change** ``Δs = r / max|r|`` times each channel's standard deviation (StyleSpace's local
   statistics); channels the matrix does not cover get 0. ``--strength`` is α: ``s~ = s + α·Δs``
   (StyleCLIP's demo default 4.1).
"""

from __future__ import annotations

import hashlib
import re

import torch

from vidinvert.errors import VidinvertError

#: The neutral phrase of a text direction (StyleCLIP's demo: "face" for FFHQ).
NEUTRAL = "a face"
#: The channel threshold β (StyleCLIP's demo default); values in (0, 1).
BETA = 0.15
#: The strength α of a text edit (StyleCLIP's demo default) and a sensible range.
ALPHA = 4.1
ALPHA_RANGE = (-10.0, 10.0)
#: Output tags from prompts: at most this many characters.
TAG_CHARS = 40


def templates() -> tuple[str, ...]:
    """StyleCLIP's 79 prompt templates (``"a bad photo of a {}."`` ...): CLIP's 80 ImageNet templates as
    open_clip ships them, less ``"a photo of many {}."``."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    marker = "\x00"
    out = tuple(t(marker).replace(marker, "{}") for t in OPENAI_IMAGENET_TEMPLATES)
    return tuple(t for t in out if t != "a photo of many {}.")


@torch.inference_mode()
def phrase_embedding(model, phrase: str, device="cpu") -> torch.Tensor:
    """A phrase's CLIP text embedding averaged over :func:`templates`: ``[D]`` float32, unit norm."""
    from vidinvert.models.clip import check_prompt, encode_texts

    check_prompt(phrase)
    e = encode_texts(model, [t.format(phrase) for t in templates()], device)  # each normalised
    m = e.mean(0)
    return m / m.norm()


def text_delta(model, target: str, neutral: str = NEUTRAL, device="cpu") -> torch.Tensor:
    """``Δt = normalise(e(target) − e(neutral))`` ``[D]`` float32."""
    d = phrase_embedding(model, target, device) - phrase_embedding(model, neutral, device)
    n = d.norm()
    if float(n) == 0.0:
        raise VidinvertError(f"--text {target!r} and --text-neutral {neutral!r} embed the same: nothing to edit")
    return d / n


def check_beta(beta: float) -> float:
    b = float(beta)
    if not 0.0 < b < 1.0 or b != b:
        raise VidinvertError(f"--text-beta {beta}: give a number between 0 and 1 (exclusive), e.g. {BETA}")
    return b


def select_channels(matrix: torch.Tensor, dt: torch.Tensor, beta: float = BETA) -> tuple[torch.Tensor, torch.Tensor]:
    """``(r, kept)``: the relevance ``r = M·Δt`` ``[C]`` and the bool mask of channels with ``|r| ≥ β``."""
    beta = check_beta(beta)
    r = matrix.double() @ dt.double()
    return r.float(), r.abs() >= beta


def style_change(r: torch.Tensor, kept: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``Δs`` ``[C]``: ``r / max|r|`` on the kept channels, times each channel's std; 0 elsewhere. No channel
    kept is one line suggesting a lower β."""
    if not bool(kept.any()):
        raise VidinvertError(f"no style channel is relevant enough to the prompt (max |r| = {float(r.abs().max()):.3f}):"
                             " give a lower --text-beta")
    peak = r[kept].abs().max()
    return torch.where(kept, r / peak, torch.zeros_like(r)) * std


def prompt_tag(prompt: str, others: tuple[str, ...] = ()) -> str:
    """An output tag from a prompt: lowercase ``[a-z0-9-]``, at most :data:`TAG_CHARS` characters, plus a
    short hash of the whole prompt when shortened or when another prompt of ``others`` would give the
    same tag (``"a face with a beard"`` -> ``a-face-with-a-beard``)."""
    def slug(p: str) -> str:
        return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", p.lower())).strip("-") or "text"

    base = slug(prompt)
    short = base[:TAG_CHARS].rstrip("-")
    collides = any(slug(o)[:TAG_CHARS].rstrip("-") == short and o != prompt for o in others)
    if short == base and not collides:
        return base
    digest = hashlib.sha1(prompt.encode("utf-8")).hexdigest()[:6]
    return f"{short[:TAG_CHARS - 7].rstrip('-')}-{digest}"
