"""Conditional edits (``--keep``): move along a direction without moving along the kept ones.

InterFaceGAN's conditional manipulation: the edit direction ``d`` is projected onto the orthogonal
complement of the span of the kept directions ``k_1..k_m`` (all of them together, a least-squares
fit in the flattened ``n_latent * style_dim`` w+ space, not one at a time) and rescaled to the norm
it had before the projection (1 for an unrestricted direction: the one normalisation rule still
gives the strength its meaning).

With a layer mask the kept directions are restricted to the same rows first, so the result stays
zero outside the mask and is orthogonal to every kept direction in the whole w+ space.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from vidinvert.edit.directions import Direction
from vidinvert.edit.layers import layer_mask, mask_direction, mask_vector
from vidinvert.errors import VidinvertError

# A kept direction whose part inside the mask is below this (relative) norm is ignored.
_NEGLIGIBLE = 1e-9


def project_out(vector: torch.Tensor, kept: Sequence[torch.Tensor], mask: torch.Tensor | None = None) -> torch.Tensor:
    """``vector`` minus its least-squares fit by ``kept``, rescaled to ``vector``'s norm.

    vector and each kept: ``[n_latent, style_dim]`` float; mask: optional bool ``[n_latent]`` applied
    to the kept directions (``vector`` is expected to be zero outside it already). Computed in float64
    with a QR factorisation of the kept directions; returns float32 of ``vector``'s shape.
    Raises VidinvertError when ``vector`` lies (numerically) inside the span of ``kept``.
    """
    v = vector.detach().double().reshape(-1)
    cols = []
    for k in kept:
        kk = k.detach().double()
        if kk.shape != vector.shape:
            raise VidinvertError(f"kept direction has shape {tuple(kk.shape)}, the edit {tuple(vector.shape)}")
        if mask is not None:
            kk = mask_vector(kk, mask)
        kk = kk.reshape(-1)
        if float(kk.norm()) > _NEGLIGIBLE * max(float(k.double().norm()), 1e-300):
            cols.append(kk / kk.norm())
    if not cols:
        return vector.detach().float().clone()
    q, r = torch.linalg.qr(torch.stack(cols, dim=1))  # [N, m], [m, m]
    keep = r.diagonal().abs() > 1e-10 * r.diagonal().abs().max()  # drop linearly dependent kept directions
    q = q[:, keep]
    residual = v - q @ (q.T @ v)
    norm_in, norm_out = float(v.norm()), float(residual.norm())
    if norm_out <= 1e-6 * norm_in:
        raise VidinvertError("the edit direction lies in the span of the --keep directions: nothing is left to edit")
    return (residual * (norm_in / norm_out)).reshape(vector.shape).float()


def condition_direction(direction: Direction, kept: Sequence[Direction], mask: torch.Tensor | None = None) -> Direction:
    """The edit direction made orthogonal to every kept direction (see :func:`project_out`); name
    and source unchanged (output file names stay those of the plain edit)."""
    if not kept:
        return direction
    return replace(direction, vector=project_out(direction.vector, [k.vector for k in kept], mask))


def restrict_and_condition(directions: Sequence[Direction], *, n_latent: int, layers: str | None = None,
                           keep: Sequence[Direction] = ()) -> list[Direction]:
    """What ``--layers`` and ``--keep`` do to every edit direction, in this order: restrict to the rows
    of ``layers`` (no renormalisation), then make orthogonal to the ``keep`` directions restricted to the
    same rows (rescaled to the restricted norm). Directions are already unit-norm (the one rule).
    A sum of the results (``--combine``) is orthogonal to the kept directions too."""
    mask = layer_mask(layers, n_latent) if layers else None
    out = [mask_direction(d, mask) if mask is not None else d for d in directions]
    return [condition_direction(d, list(keep), mask) for d in out]


__all__ = ["condition_direction", "project_out", "restrict_and_condition"]
