"""StyleSpace edits: the style vectors s of a generator, their per-channel statistics, S directions.

The layout of a flat S vector (26 layers and 9088 channels at 1024, ToRGB layers included, in the
order synthesis runs them) is :mod:`vidinvert.models.stylespace`. An S edit moves s itself::

    s~ = s + strength * delta                      (delta in style units; see StyleDirection)
    F~ = F + G_K(s~) - G_K(s)                      (eq. 1 with the edited styles)

so only the conv layers before K change the feature code; the ToRGB layers and the layers after K
change the image only (:meth:`vidinvert.engine.Inverter.edit`).

Strength units: an S direction is given in per-channel standard deviations (``--channel L_C=S``, a
``std`` direction file) and turned into style units here, by the standard deviation of each channel
over the generator's own style distribution: :func:`compute_style_stats` draws seeded z ~ N(0, I),
maps them (truncation 1) and runs every affine; :func:`load_style_stats` caches the result as an
``.npz`` in the weights folder (keyed by the generator's weights fingerprint; read with
``allow_pickle=False``, no pickle is ever read).

Public pieces other features build on (text-driven directions, the studio): :func:`style_vectors`,
:func:`affine_image`, :func:`generator_fingerprint`, :class:`StyleStats`, :class:`StyleDirection`,
:func:`channel_direction`, :func:`file_direction`, :func:`mask_style_rows`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vidinvert.errors import VidinvertError
from vidinvert.fileio import atomic_path
from vidinvert.models.stylespace import (
    ChannelEdit,
    StyleDirectionFile,
    StyleLayout,
    channels_tag,
    check_file_layout,
    generator_layout,
)

log = logging.getLogger(__name__)

#: Samples of z for the per-channel statistics, and their seed (a CPU torch.Generator).
STATS_SAMPLES = 10_000
STATS_SEED = 0
STATS_FORMAT = "vidinvert.stylespace-stats.v1"
STATS_FOLDER = "stylespace"


# ------------------------------------------------------------------------------------ the styles
def style_vectors(generator: torch.nn.Module, w_plus: torch.Tensor) -> torch.Tensor:
    """The flat style vector s of each sample: ``w_plus`` ``[B, n_latent, style_dim]`` (or a ``[B,
    style_dim]`` w for every row) -> float32 ``[B, N]``, every layer's affine output ``A w_row + b``
    in the layout order."""
    w = w_plus if w_plus.dim() == 3 else w_plus[:, None].expand(-1, generator.n_latent, -1)
    return torch.cat([m.modulation(w[:, row]) for row, _, m in generator.style_modules()], dim=1)


def affine_image(generator: torch.nn.Module, w_delta: torch.Tensor) -> torch.Tensor:
    """The change of s that a change of w+ makes: the linear part of every affine, ``A_l d_row(l)``.

    w_delta: ``[n_latent, style_dim]`` (or ``[B, n_latent, style_dim]``) -> float32 ``[N]`` (or
    ``[B, N]``). ``style_vectors(w + d) - style_vectors(w)`` equals it up to rounding, so an S edit
    by it reproduces the w+ edit (ToRGB layers included)."""
    d = w_delta.float()[None] if w_delta.dim() == 2 else w_delta.float()
    parts = []
    for row, _, m in generator.style_modules():
        lin = m.modulation
        parts.append(F.linear(d[:, row].to(lin.weight.device), lin.weight.float()) * lin.scale)
    out = torch.cat(parts, dim=1)
    return out[0] if w_delta.dim() == 2 else out


def generator_fingerprint(generator: torch.nn.Module) -> str:
    """A hash of what the style distribution depends on: the mapping network and every affine
    (weights and biases, float32 bytes) and the layout. 16 hex digits."""
    h = hashlib.sha256(generator_layout(generator).fingerprint.encode())
    tensors = [p for p in generator.style.parameters()]
    for _, _, m in generator.style_modules():
        tensors += [m.modulation.weight, m.modulation.bias]
    for t in tensors:
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------ statistics
def seeded_z(generator: torch.nn.Module, samples: int, seed: int) -> tuple[torch.Tensor, torch.Generator]:
    """``samples`` z ~ N(0, I) ``[samples, style_dim]`` (CPU) drawn from a CPU ``torch.Generator`` seeded
    ``seed``, and that generator (to draw more from the same stream)."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.randn(samples, generator.style_dim, generator=g), g


@dataclass(frozen=True)
class StyleStats:
    """Per-channel mean and standard deviation of s over the generator's style distribution:
    ``mean``/``std`` float32 ``[N]`` (CPU); ``samples`` z drawn with ``seed``; ``fingerprint`` of the
    generator; ``seconds`` it took to compute (0 when read from the cache)."""

    mean: torch.Tensor
    std: torch.Tensor
    samples: int
    seed: int
    fingerprint: str
    seconds: float = 0.0


@torch.no_grad()
def compute_style_stats(generator: torch.nn.Module, samples: int = STATS_SAMPLES, seed: int = STATS_SEED,
                        chunk: int = 1000) -> StyleStats:
    """Mean and standard deviation (population, float64 sums) of every style channel over ``samples``
    z ~ N(0, I) drawn from a CPU ``torch.Generator`` seeded ``seed``, mapped at truncation 1 (the same
    w for every row). Deterministic given the generator, ``samples`` and ``seed``."""
    if samples < 2:
        raise VidinvertError(f"style statistics need at least 2 samples, got {samples}")
    t0 = time.perf_counter()
    device = next(generator.parameters()).device
    z, _ = seeded_z(generator, samples, seed)
    total = sq = None
    for i in range(0, samples, chunk):
        w = generator.mapping(z[i:i + chunk].to(device))
        s = style_vectors(generator, w).double()
        total = s.sum(0) if total is None else total + s.sum(0)
        sq = s.square().sum(0) if sq is None else sq + s.square().sum(0)
    mean = total / samples
    var = (sq / samples - mean.square()).clamp_min(0)
    return StyleStats(mean.float().cpu(), var.sqrt().float().cpu(), int(samples), int(seed),
                      generator_fingerprint(generator), time.perf_counter() - t0)


def stats_path(folder: Path, fingerprint: str, samples: int, seed: int) -> Path:
    """Where the statistics of a generator are cached: ``FOLDER/stylespace/stats-<fp>-n<N>-seed<S>.npz``."""
    return Path(folder) / STATS_FOLDER / f"stats-{fingerprint}-n{samples}-seed{seed}.npz"


def _read_stats(path: Path, fingerprint: str, total: int, samples: int, seed: int) -> StyleStats | None:
    try:
        with np.load(path, allow_pickle=False) as d:
            ok = (str(d["format"]) == STATS_FORMAT and str(d["fingerprint"]) == fingerprint
                  and int(d["samples"]) == samples and int(d["seed"]) == seed and d["std"].shape == (total,))
            if not ok:
                return None
            mean, std = torch.from_numpy(d["mean"].astype(np.float32)), torch.from_numpy(d["std"].astype(np.float32))
    except Exception as exc:  # a damaged cache is recomputed, never trusted
        log.warning("ignoring the style statistics cache %s (%s: %s)", path, type(exc).__name__, exc)
        return None
    if not (torch.isfinite(std).all() and torch.isfinite(mean).all()):
        return None
    return StyleStats(mean, std, samples, seed, fingerprint)


def load_style_stats(generator: torch.nn.Module, folder: Path | None, samples: int = STATS_SAMPLES,
                     seed: int = STATS_SEED) -> StyleStats:
    """The statistics of ``generator``: from the cache in ``folder`` (the weights folder) when it
    holds them for this generator, sample count and seed; else computed (:func:`compute_style_stats`)
    and written there atomically (a folder that cannot be written: a warning, the values still used)."""
    fp = generator_fingerprint(generator)
    total = generator_layout(generator).total
    path = stats_path(folder, fp, samples, seed) if folder is not None else None
    if path is not None and path.is_file():
        cached = _read_stats(path, fp, total, samples, seed)
        if cached is not None:
            return cached
    stats = compute_style_stats(generator, samples, seed)
    log.info("StyleSpace statistics: %d samples in %.2f s", samples, stats.seconds)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path, overwrite=True) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, format=np.array(STATS_FORMAT), fingerprint=np.array(fp), samples=np.array(samples),
                         seed=np.array(seed), mean=stats.mean.numpy(), std=stats.std.numpy())
        except (OSError, VidinvertError) as exc:
            log.warning("could not cache the style statistics in %s (%s)", path.parent, exc)
    return stats


# ------------------------------------------------------------------------------------ directions
@dataclass(frozen=True)
class StyleDirection:
    """A resolved S edit: ``delta`` float32 ``[N]``, the change of s at strength 1 in style units
    (already multiplied by the channels' standard deviations for a ``std`` source); ``name`` (output
    tag), ``source`` (file or ``--channel``), ``channels`` (the ``L_C`` labels of a channel edit),
    ``units`` the source was given in (``std`` or ``style``)."""

    name: str
    delta: torch.Tensor
    source: str
    channels: tuple[str, ...] = ()
    units: str = "style"


def _checked_std(std: torch.Tensor, layout: StyleLayout) -> torch.Tensor:
    if std.shape != (layout.total,):
        raise VidinvertError(f"style statistics have {std.numel()} channels, the generator {layout.total}")
    return std.float().cpu()


def channel_direction(channels: Sequence[ChannelEdit], layout: StyleLayout, std: torch.Tensor) -> StyleDirection:
    """``--channel L_C[=S]...``: one S direction moving each channel by ``S`` of its standard
    deviations per unit strength. An unknown channel, or one whose deviation is 0, is one line."""
    std = _checked_std(std, layout)
    delta = torch.zeros(layout.total)
    for c in channels:
        i = layout.flat_index(c.layer, c.channel)
        if float(std[i]) == 0.0:
            raise VidinvertError(f"channel {c.layer}_{c.channel} never varies (standard deviation 0): moving it "
                                 "by standard deviations does nothing")
        delta[i] = c.amount * std[i]
    return StyleDirection(channels_tag(channels), delta, "--channel", tuple(c.label for c in channels), "std")


def file_direction(f: StyleDirectionFile, layout: StyleLayout, std: torch.Tensor | None,
                   fingerprint: str | None = None) -> StyleDirection:
    """An S direction file for this generator: its layout checked (another generator's file is one
    line), ``std`` units multiplied by ``std``. A file recording other weights than ``fingerprint``
    is used with a warning (the same architecture, other weights: the channels may mean other things)."""
    check_file_layout(f, layout)
    if f.generator and fingerprint and f.generator != fingerprint:
        log.warning("%s was made with other generator weights (%s, these are %s): its channels may not "
                    "mean the same here", f.path, f.generator, fingerprint)
    delta = torch.from_numpy(f.delta.copy())
    if f.units == "std":
        if std is None:
            raise ValueError("a std-unit S direction needs the style statistics")
        delta = delta * _checked_std(std, layout)
    return StyleDirection(f.name, delta, str(f.path), units=f.units)


def mask_style_rows(direction: StyleDirection, layout: StyleLayout, rows: Iterable[int]) -> StyleDirection:
    """``--layers`` on an S edit: keep the layers driven by the w+ ``rows``, zero the others (no
    renormalisation). An edit left with nothing to move is refused."""
    mask = torch.from_numpy(layout.layer_mask(layout.layers_of_rows(rows)))
    delta = torch.where(mask, direction.delta, torch.zeros(()))
    if not bool(delta.any()):
        raise VidinvertError(f"S edit {direction.name!r} moves no channel of the layers that --layers keeps")
    return replace(direction, delta=delta)


def feature_layers_mask(layout: StyleLayout, feature_index: int) -> torch.Tensor:
    """bool ``[N]``: the channels that reach G_K (``outs[feature_index]``): the conv layers before K."""
    early = [x for x in layout.layers if x.conv_index is not None and x.conv_index < feature_index]
    return torch.from_numpy(layout.layer_mask(early))


__all__ = ["STATS_SAMPLES", "STATS_SEED", "StyleDirection", "StyleStats", "affine_image", "channel_direction",
           "compute_style_stats", "feature_layers_mask", "file_direction", "generator_fingerprint",
           "load_style_stats", "mask_style_rows", "seeded_z", "stats_path", "style_vectors"]
