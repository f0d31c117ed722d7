"""The relevance matrix of StyleCLIP's global directions: how each style channel moves CLIP's image
embedding, and the text directions made from it.

**The matrix** ``M`` ``[C, D]`` has one row per style channel it covers (in the StyleSpace layout's order,
:mod:`vidinvert.models.stylespace`): the mean, over sampled images, of the normalised change of CLIP's
(normalised) image embedding when the channel is moved from ``mean − 5σ`` to ``mean + 5σ`` (StyleCLIP's
``num`` of 5 standard deviations), normalised again; a channel with no effect is a zero row. Two files:

- the **published** one, StyleCLIP's ``fs3.npy`` for the FFHQ generator: a bare float array covering the
  conv style layers up to 128 px (5376 rows at 1024; StyleCLIP measures those only);
- **ours**, written by ``vidinvert directions stylespace-stats`` (:func:`compute_relevance`): an ``.npz``
  with a format tag, the covered layers (names and sizes), the generator's fingerprint, the samples and
  seed, and the rows done so far (resumable per channel).

:func:`load_relevance` reads either and checks it against the generator's layout (the rows must be the
channels of the layers it claims; a file for another generator is refused in one line).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vidinvert.edit import text as textdir
from vidinvert.edit.stylespace import StyleDirection, generator_fingerprint, seeded_z, style_vectors
from vidinvert.errors import VidinvertError
from vidinvert.fileio import atomic_path
from vidinvert.models.clip import encode_images
from vidinvert.models.stylespace import StyleLayer, StyleLayout

FORMAT = "vidinvert.stylespace-relevance.v1"
#: The published matrix covers the conv layers up to this resolution.
PUBLISHED_MAX_RESOLUTION = 128
#: How far each channel is moved each way (StyleCLIP's ``num``), in standard deviations.
MOVE_STD = 5.0
#: Sampled images per channel (StyleCLIP's default).
SAMPLES = 100
SEED = 0


@dataclass(frozen=True)
class Relevance:
    """A relevance matrix for one layout: ``values`` float32 ``[C, D]`` over the channels of ``layers`` (in
    order), ``done`` bool ``[C]`` (rows measured; all True for a finished or published file), ``source``."""

    values: np.ndarray
    layers: tuple[StyleLayer, ...]
    done: np.ndarray
    source: str

    def full(self, layout: StyleLayout) -> np.ndarray:
        """``[layout.total, D]``: the rows placed at their channels, zero for channels not covered."""
        out = np.zeros((layout.total, self.values.shape[1]), np.float32)
        at = 0
        for x in self.layers:
            out[x.slice()] = self.values[at:at + x.channels]
            at += x.channels
        return out


def _layers_named(layout: StyleLayout, names, sizes, path: Path) -> tuple[StyleLayer, ...]:
    by_name = {x.name: x for x in layout.layers}
    out = []
    for n, c in zip(names, sizes):
        x = by_name.get(str(n))
        if x is None or x.channels != int(c):
            raise VidinvertError(f"{path}: made for another generator (its layer {n} of {int(c)} channels is not "
                                 f"in this one's layout: {layout.describe()})")
        out.append(x)
    return tuple(out)


def load_relevance(path: str | Path, layout: StyleLayout) -> Relevance:
    """The published ``fs3.npy`` or one of ours (see the module docstring), checked against ``layout``."""
    p = Path(path)
    if not p.is_file():
        raise VidinvertError(f"relevance matrix {p}: file not found")
    try:
        data = np.load(p, allow_pickle=False)
    except Exception as exc:  # not an array file
        raise VidinvertError(f"{p}: not a relevance matrix ({type(exc).__name__})") from None
    if isinstance(data, np.ndarray):  # the published bare array: the conv layers up to 128 px
        layers = layout.conv_layers(PUBLISHED_MAX_RESOLUTION)
        want = sum(x.channels for x in layers)
        if data.ndim != 2 or data.shape[0] != want:
            raise VidinvertError(f"{p}: shape {tuple(data.shape)}, but this generator's conv layers up to "
                                 f"{PUBLISHED_MAX_RESOLUTION} px hold {want} channels: a matrix for another generator")
        return Relevance(np.asarray(data, np.float32), layers, np.ones(want, bool), str(p))
    with data:
        if str(data.get("format", "")) != FORMAT:
            raise VidinvertError(f"{p}: not a vidinvert relevance matrix (format tag {FORMAT!r} missing)")
        layers = _layers_named(layout, data["layer_names"], data["layer_channels"], p)
        values, done = np.asarray(data["values"], np.float32), np.asarray(data["done"], bool)
    if values.shape[0] != sum(x.channels for x in layers) or done.shape != (values.shape[0],):
        raise VidinvertError(f"{p}: {values.shape[0]} rows for layers holding {sum(x.channels for x in layers)}")
    return Relevance(values, layers, done, str(p))


def write_relevance(path: Path, rel: Relevance, *, fingerprint: str, samples: int, seed: int) -> None:
    """Write ours (atomically; rows not ``done`` are zero)."""
    with atomic_path(path, overwrite=True) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, format=np.array(FORMAT), values=rel.values, done=rel.done,
                 layer_names=np.array([x.name for x in rel.layers]),
                 layer_channels=np.array([x.channels for x in rel.layers], np.int64),
                 generator=np.array(fingerprint), samples=np.array(samples), seed=np.array(seed),
                 move_std=np.array(MOVE_STD))


def text_direction(clip_model, rel: Relevance, layout: StyleLayout, std: torch.Tensor, target: str, *,
                   neutral: str = textdir.NEUTRAL, beta: float = textdir.BETA, name: str | None = None,
                   delta: torch.Tensor | None = None) -> tuple[StyleDirection, int]:
    """A prompt's S direction (StyleCLIP's global direction) and how many channels it keeps: ``Δs`` over
    the layout, ``r / max|r|`` times each channel's ``std`` on the kept channels, 0 elsewhere. ``delta``:
    the prompt pair's text direction ``Δt`` ``[D]`` already computed (else it is, on the model's device)."""
    if not rel.done.all():
        raise VidinvertError(f"{rel.source}: only {int(rel.done.sum())} of {rel.done.size} channels are measured "
                             "(a stopped stylespace-stats run: run it again to finish)")
    if delta is None:
        delta = textdir.text_delta(clip_model, target, neutral, next(clip_model.parameters()).device)
    dt = delta.float().cpu()
    m = torch.from_numpy(rel.values)
    if m.shape[1] != dt.numel():
        raise VidinvertError(f"{rel.source}: {m.shape[1]}-d rows, but the CLIP model embeds in {dt.numel()} dimensions")
    r, kept = textdir.select_channels(m, dt, beta)
    r_full = torch.from_numpy(layout.scatter(r.numpy(), rel.layers))
    kept_full = torch.from_numpy(layout.scatter(kept.float().numpy(), rel.layers)) > 0
    delta = textdir.style_change(r_full, kept_full, std.float().cpu())
    tag = name or textdir.prompt_tag(target)
    return StyleDirection(tag, delta, f"--text {target!r}", units="std"), int(kept.sum())


@torch.no_grad()
def _channel_row(generator, clip_model, s: torch.Tensor, w: torch.Tensor, c: int, mean: float, std: float,
                 batch: int, noise) -> np.ndarray:
    """One channel's row: the images' channel set to ``mean ± 5σ``, the CLIP embeddings' normalised
    differences averaged and normalised (0 for a channel without effect)."""
    n = len(w)
    acc = None
    for a in range(0, n, batch):
        wb, sb = w[a:a + batch], s[a:a + batch]
        k = len(wb)
        offset = torch.zeros(2 * k, s.shape[1], device=w.device)
        offset[:k, c] = mean + MOVE_STD * std - sb[:, c]
        offset[k:, c] = mean - MOVE_STD * std - sb[:, c]
        img = generator(torch.cat([wb, wb]), noise=noise, style_offset=offset)
        e = encode_images(clip_model, img.clamp(-1, 1))
        d = e[:k] - e[k:]
        norms = d.norm(dim=1, keepdim=True)
        d = torch.where(norms > 0, d / norms.clamp_min(1e-30), torch.zeros_like(d))
        acc = d.sum(0) if acc is None else acc + d.sum(0)
    m = acc / n
    norm = m.norm()
    return (m / norm if float(norm) > 0 else torch.zeros_like(m)).cpu().numpy().astype(np.float32)


def compute_relevance(generator, clip_model, layout: StyleLayout, layers: tuple[StyleLayer, ...], mean: torch.Tensor,
                      std: torch.Tensor, out: Path, *, samples: int = SAMPLES, seed: int = SEED, batch: int = 8,
                      resume: bool = True, checkpoint_every: int = 16,
                      progress: Callable[[int, int], None] | None = None) -> Relevance:
    """``vidinvert directions stylespace-stats``: measure every channel of ``layers`` on ``samples`` seeded
    images (w at truncation 1, the generator's stored noise), saving ``out`` every ``checkpoint_every``
    channels; with ``resume`` the rows already in ``out`` (same generator, samples and seed) are kept."""
    device = next(generator.parameters()).device
    fingerprint = generator_fingerprint(generator)
    rows = sum(x.channels for x in layers)
    dim = int(clip_model.text_projection.shape[1])
    rel = Relevance(np.zeros((rows, dim), np.float32), layers, np.zeros(rows, bool), str(out))
    if resume and Path(out).is_file():
        rel = _resumable(Path(out), layout, layers, fingerprint, samples, seed) or rel
    z, _ = seeded_z(generator, samples, seed)
    w = generator.mapping(z.to(device))
    s = style_vectors(generator, w)
    noise = [n.to(device) for n in generator.stored_noise()]
    flat = np.concatenate([np.arange(x.offset, x.offset + x.channels) for x in layers])
    todo = np.flatnonzero(~rel.done)
    for k, i in enumerate(todo, 1):
        c = int(flat[i])
        rel.values[i] = _channel_row(generator, clip_model, s, w, c, float(mean[c]), float(std[c]), batch, noise)
        rel.done[i] = True
        if k % checkpoint_every == 0 or k == len(todo):
            write_relevance(Path(out), rel, fingerprint=fingerprint, samples=samples, seed=seed)
        if progress is not None:
            progress(int(rel.done.sum()), rows)
    if not len(todo):
        write_relevance(Path(out), rel, fingerprint=fingerprint, samples=samples, seed=seed)
    return rel


def _resumable(path: Path, layout: StyleLayout, layers, fingerprint: str, samples: int, seed: int) -> Relevance | None:
    """The rows of an earlier run of the same measurement, or None (another run: started again)."""
    with np.load(path, allow_pickle=False) as d:
        same = (str(d.get("format", "")) == FORMAT and str(d["generator"]) == fingerprint
                and int(d["samples"]) == samples and int(d["seed"]) == seed
                and tuple(map(str, d["layer_names"])) == tuple(x.name for x in layers))
    return load_relevance(path, layout) if same else None
