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

import torch

from vidinvert.errors import VidinvertError
from vidinvert.models import clip as clipmodel
from vidinvert.specs import TAG_CHARS, TEXT_BETA, TEXT_NEUTRAL, prompt_tag  # noqa: F401  (torch-free, re-exported)

#: The neutral phrase of a text direction (StyleCLIP's demo: "face" for FFHQ) and the channel threshold β.
NEUTRAL, BETA = TEXT_NEUTRAL, TEXT_BETA
#: The strength α of a text edit (StyleCLIP's demo default; about -10..10 is the useful range).
ALPHA = 4.1


def templates() -> tuple[str, ...]:
    """StyleCLIP's 79 prompt templates (``"a bad photo of a {}."`` ...): CLIP's 80 ImageNet templates as
    open_clip ships them, less ``"a photo of many {}."``."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    marker = "\x00"
    out = tuple(t(marker).replace(marker, "{}") for t in OPENAI_IMAGENET_TEMPLATES)
    return tuple(t for t in out if t != "a photo of many {}.")


def check_phrase(phrase: str, what: str = "prompt") -> str:
    """A phrase CLIP reads whole inside every template: not empty, and its longest templated form at
    most CLIP's 77 tokens (the templates add up to 9), so no embedding is computed from a cut prompt."""
    clipmodel.check_prompt(phrase, what)
    tok = clipmodel.tokenizer()
    n, longest = max((len(tok.encode(t.format(phrase))) + 2, t) for t in templates())
    if n > clipmodel.CONTEXT:
        raise VidinvertError(f"{what} {phrase[:40]!r}...: {n} tokens inside the template {longest!r}, more than "
                             f"CLIP's {clipmodel.CONTEXT}; shorten it")
    return phrase


@torch.inference_mode()
def phrase_embedding(model, phrase: str, device="cpu") -> torch.Tensor:
    """A phrase's CLIP text embedding averaged over :func:`templates`: ``[D]`` float32, unit norm."""
    check_phrase(phrase)
    e = clipmodel.encode_texts(model, [t.format(phrase) for t in templates()], device)  # each normalised
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
