"""STIT's temporal identity scores, TL-ID and TG-ID (Tzaban et al., 2022), relative to the source.

For one face track with output embeddings ``e`` and source embeddings ``s`` (ArcFace, one row
per frame, in frame order) cut into runs of consecutive frames (a run ends where the face was
missing or passed through; no pair spans two runs):

* TL-ID (local): the mean over adjacent pairs ``(i, i+1)`` of a run of
  ``cos(e_i, e_{i+1}) / cos(s_i, s_{i+1})``;
* TG-ID (global): the mean over all pairs ``i < j`` of a run of ``cos(e_i, e_j) / cos(s_i, s_j)``.

Pairs whose source cosine is at most :data:`MIN_SOURCE_COSINE` (0.1) are skipped (the ratio
would explode or flip sign) and counted. An output that keeps the source's identity as well as
the source itself scores 1; an identity that drifts or switches scores below 1. TG-ID is exact
(computed in blocks of :data:`BLOCK` rows, so memory stays ``BLOCK^2``) for tracks of up to
:data:`EXACT_MAX_FRAMES` frames; above that it is the mean over :data:`SAMPLE_PAIRS` pairs drawn
uniformly (with replacement) from all pairs of the runs with a fixed seed, and
:attr:`PairCounts.sampled` says so. The cosines need ArcFace embeddings: dlib's descriptors
give cosines of 0.86-0.89 even between unrelated images, so callers report these as null for dlib.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

MIN_SOURCE_COSINE = 0.1
EXACT_MAX_FRAMES = 8192
SAMPLE_PAIRS = 1 << 20
SAMPLE_SEED = 0
BLOCK = 1024
_SAMPLE_CHUNK = 1 << 16


@dataclass(frozen=True)
class PairCounts:
    """The pairs behind one score: ``total`` pairs of the definition (within runs), ``used`` in the
    mean, ``skipped`` (source cosine at most 0.1) of those looked at; ``sampled``: the number of
    pairs drawn when the score is a sample (None: exact, every pair looked at)."""

    total: int = 0
    used: int = 0
    skipped: int = 0
    sampled: int | None = None

    @property
    def weight(self) -> float:
        """How many of the ``total`` pairs count (estimated from the sample when sampled): the
        weight of this track's score in a mean over tracks."""
        seen = self.used + self.skipped
        return float(self.used) if self.sampled is None or seen == 0 else self.total * self.used / seen

    def as_dict(self) -> dict:
        return {"total": self.total, "used": self.used, "skipped": self.skipped, "sampled": self.sampled}


@dataclass(frozen=True)
class TemporalIdentity:
    """TL-ID and TG-ID per output stream (None where no pair counts) and the pairs behind them
    (the same for every stream: they depend on the source only)."""

    tl_id: dict[str, float | None]
    tg_id: dict[str, float | None]
    tl_pairs: PairCounts
    tg_pairs: PairCounts


def run_bounds(runs: Sequence[int]) -> list[tuple[int, int]]:
    """Row ranges ``[a, b)`` of equal consecutive run ids (``[0,0,1,1,1]`` -> ``[(0,2), (2,5)]``)."""
    out: list[tuple[int, int]] = []
    start = 0
    for k in range(1, len(runs) + 1):
        if k == len(runs) or runs[k] != runs[k - 1]:
            out.append((start, k))
            start = k
    return out if len(runs) else []


def _unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x.detach().float().cpu(), dim=1)


def _mean(total: dict[str, float], n: int) -> dict[str, float | None]:
    return {k: (v / n if n else None) for k, v in total.items()}


def _local(s: torch.Tensor, outs: Mapping[str, torch.Tensor], bounds, min_cos: float):
    sums = {k: 0.0 for k in outs}
    total = used = 0
    for a, b in bounds:
        if b - a < 2:
            continue
        cs = (s[a : b - 1] * s[a + 1 : b]).sum(1)
        ok = cs > min_cos
        total += b - a - 1
        used += int(ok.sum())
        for k, e in outs.items():
            ce = (e[a : b - 1] * e[a + 1 : b]).sum(1)
            sums[k] += float((ce[ok].double() / cs[ok].double()).sum())
    return _mean(sums, used), PairCounts(total, used, total - used)


def _global_exact(s: torch.Tensor, outs: Mapping[str, torch.Tensor], bounds, min_cos: float, block: int):
    sums = {k: 0.0 for k in outs}
    total = used = 0
    for a, b in bounds:
        n = b - a
        total += n * (n - 1) // 2
        for r0 in range(a, b, block):
            r1 = min(b, r0 + block)
            for c0 in range(r0, b, block):
                c1 = min(b, c0 + block)
                cs = s[r0:r1] @ s[c0:c1].T
                ok = cs > min_cos
                if c0 == r0:  # the diagonal block: pairs i < j only
                    ok &= torch.ones_like(ok).triu(1)
                used += int(ok.sum())
                cs_ok = cs[ok].double()
                for k, e in outs.items():
                    sums[k] += float(((e[r0:r1] @ e[c0:c1].T)[ok].double() / cs_ok).sum())
    return _mean(sums, used), PairCounts(total, used, total - used)


def sample_pairs(bounds: Sequence[tuple[int, int]], count: int, seed: int = SAMPLE_SEED) -> np.ndarray:
    """``count`` pairs ``[count, 2]`` (rows ``i < j`` of one run) drawn uniformly from all pairs of
    the runs, with replacement, by a generator seeded with ``seed``."""
    sizes = np.array([b - a for a, b in bounds], np.int64)
    pairs = sizes * (sizes - 1) // 2
    if pairs.sum() == 0 or count <= 0:
        return np.zeros((0, 2), np.int64)
    rng = np.random.default_rng(seed)
    run = rng.choice(len(bounds), size=count, p=pairs / pairs.sum())
    n, start = sizes[run], np.array([a for a, _ in bounds], np.int64)[run]
    i = np.floor(rng.random(count) * n).astype(np.int64)
    j = np.floor(rng.random(count) * (n - 1)).astype(np.int64)
    j += j >= i  # a second, different row of the same run
    return np.stack([start + np.minimum(i, j), start + np.maximum(i, j)], 1)


def _global_sampled(s: torch.Tensor, outs: Mapping[str, torch.Tensor], bounds, min_cos: float, count: int,
                    seed: int):
    sums = {k: 0.0 for k in outs}
    total = sum((b - a) * (b - a - 1) // 2 for a, b in bounds)
    used = skipped = 0
    pairs = torch.from_numpy(sample_pairs(bounds, count, seed))
    for c in range(0, len(pairs), _SAMPLE_CHUNK):
        i, j = pairs[c : c + _SAMPLE_CHUNK, 0], pairs[c : c + _SAMPLE_CHUNK, 1]
        cs = (s[i] * s[j]).sum(1)
        ok = cs > min_cos
        used += int(ok.sum())
        skipped += int((~ok).sum())
        for k, e in outs.items():
            sums[k] += float(((e[i] * e[j]).sum(1)[ok].double() / cs[ok].double()).sum())
    return _mean(sums, used), PairCounts(total, used, skipped, sampled=len(pairs))


def temporal_identity(source: torch.Tensor, outputs: Mapping[str, torch.Tensor], runs: Sequence[int], *,
                      min_source_cosine: float = MIN_SOURCE_COSINE, exact_max_frames: int = EXACT_MAX_FRAMES,
                      sample_pairs_count: int = SAMPLE_PAIRS, seed: int = SAMPLE_SEED,
                      block: int = BLOCK) -> TemporalIdentity:
    """TL-ID and TG-ID of each output stream of one track (module docstring).

    source: ``[N,D]`` source embeddings (any norm, float); outputs: name -> ``[N,D]`` embeddings of
    the same frames; runs: ``[N]`` run id per row (rows of one run are consecutive frames). Above
    ``exact_max_frames`` rows TG-ID is the mean over ``sample_pairs_count`` seeded random pairs.
    """
    s = _unit(source)
    outs = {k: _unit(v) for k, v in outputs.items()}
    for k, e in outs.items():
        if e.shape != s.shape:
            raise ValueError(f"stream {k!r}: embeddings {tuple(e.shape)} do not match the source's {tuple(s.shape)}")
    if len(runs) != len(s):
        raise ValueError(f"{len(runs)} run ids for {len(s)} embeddings")
    bounds = run_bounds(list(runs))
    tl, tl_pairs = _local(s, outs, bounds, min_source_cosine)
    if len(s) > exact_max_frames:
        tg, tg_pairs = _global_sampled(s, outs, bounds, min_source_cosine, sample_pairs_count, seed)
    else:
        tg, tg_pairs = _global_exact(s, outs, bounds, min_source_cosine, block)
    return TemporalIdentity(tl, tg, tl_pairs, tg_pairs)
