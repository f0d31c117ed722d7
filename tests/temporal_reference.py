"""A direct, slow reference for STIT's TL-ID / TG-ID: a double loop over every pair."""

from __future__ import annotations

import torch

from vidinvert.metrics.temporal_identity import MIN_SOURCE_COSINE


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float(a @ b / (a.norm() * b.norm()))


def direct(source, output, runs):
    """TL-ID, TG-ID and the (used, skipped) counts of both, by looping over every pair."""
    n = len(source)
    tl, tg = [], []
    tl_skip = tg_skip = 0
    for i in range(n):
        for j in range(i + 1, n):
            if runs[i] != runs[j]:
                continue
            cs = _cos(source[i], source[j])
            keep = cs > MIN_SOURCE_COSINE
            ratio = _cos(output[i], output[j]) / cs if keep else None
            if j == i + 1:
                tl_skip += not keep
                if keep:
                    tl.append(ratio)
            tg_skip += not keep
            if keep:
                tg.append(ratio)
    return sum(tl) / len(tl), sum(tg) / len(tg), (len(tl), tl_skip), (len(tg), tg_skip)
