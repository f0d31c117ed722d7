"""Which w+ rows an edit moves: layer specs, masks, and the strength each row gets.

A layer spec names rows of w+ (0-based): ``all``, ``coarse``, ``middle``, ``fine``, a range ``A-B``
(inclusive) or a list ``A,B,C`` (items may be ranges: ``0-3,8``). The groups follow StyleGAN's
two rows per resolution (row ``r`` belongs to resolution ``4 * 2**(r // 2)``):
``coarse`` = 4-8 px (rows 0-3), ``middle`` = 16-32 px (rows 4-7), ``fine`` = 64 px and up
(rows 8..n_latent-1; 8-17 at 1024).

Masking happens after the one normalisation rule of :mod:`vidinvert.edit.directions` and does
not renormalise: rows outside are set to zero, rows inside keep their values. A unit-norm
direction with ``k`` equal non-zero rows moves each of them by ``15 * S / sqrt(k)``.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from vidinvert.edit.directions import EDIT_STEP, Direction, EditSpec
from vidinvert.errors import VidinvertError
from vidinvert.specs import LAYER_GROUPS, group_rows, parse_layers  # noqa: F401  (the grammar, re-exported)

# The customary SeFa / GANSpace step: a unit-norm 512-d direction moved by about 3 on each edited row.
ROW_STEP = 3.0


def layer_mask(spec: str, n_latent: int) -> torch.Tensor:
    """A layer spec -> bool mask ``[n_latent]`` (True = the row may move)."""
    mask = torch.zeros(n_latent, dtype=torch.bool)
    mask[parse_layers(spec, n_latent)] = True
    return mask


def rows_mask(rows, n_latent: int) -> torch.Tensor:
    """Row indices -> ``[n_latent]`` bool mask (None selects every row)."""
    mask = torch.zeros(n_latent, dtype=torch.bool)
    mask[list(range(n_latent)) if rows is None else list(rows)] = True
    return mask


def rows_label(rows: list[int]) -> str:
    """A short file-name-safe label of rows: ``L0-17`` for a contiguous run, else ``L0.2.5``."""
    if rows == list(range(rows[0], rows[-1] + 1)):
        return f"L{rows[0]}-{rows[-1]}" if len(rows) > 1 else f"L{rows[0]}"
    return "L" + ".".join(str(r) for r in rows)


def mask_vector(vector: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Rows outside ``mask`` set to exactly zero, rows inside unchanged (no renormalisation).
    vector: ``[n_latent, style_dim]``; mask: bool ``[n_latent]``."""
    if mask.shape != (vector.shape[0],):
        raise VidinvertError(f"layer mask has {mask.shape[0]} rows, the direction {vector.shape[0]}")
    return torch.where(mask.to(vector.device)[:, None], vector, torch.zeros((), dtype=vector.dtype,
                                                                             device=vector.device))


def mask_direction(direction: Direction, mask: torch.Tensor) -> Direction:
    """The direction restricted to the rows of ``mask`` (see :func:`mask_vector`). A direction that
    has no non-zero value in those rows is refused (the edit would do nothing)."""
    v = mask_vector(direction.vector, mask)
    if not bool(v.any()):
        rows = [int(r) for r in torch.nonzero(mask).flatten()]
        raise VidinvertError(f"direction {direction.name!r} is zero on the rows {rows_label(rows)} of --layers:"
                             " the edit would change nothing")
    return replace(direction, vector=v)


def mask_spec(spec: EditSpec, mask: torch.Tensor) -> EditSpec:
    """Every direction of an edit restricted to ``mask`` (``spec.delta()`` then moves only those rows)."""
    return replace(spec, directions=tuple(mask_direction(d, mask) for d in spec.directions))


def nonzero_rows(vector: torch.Tensor) -> int:
    """How many rows of ``[n_latent, style_dim]`` are not all zero (``k``)."""
    return int(vector.ne(0).any(dim=1).sum())


def row_step_strength(k: int, row_step: float = ROW_STEP) -> float:
    """The strength S that moves each of ``k`` equal rows of a unit-norm direction by ``row_step``:
    ``15 * S / sqrt(k) = row_step``, so ``S = row_step * sqrt(k) / 15`` (0.2 * sqrt(k) for 3)."""
    return row_step * math.sqrt(max(k, 1)) / EDIT_STEP


def default_strengths(directions: list[Direction], columns: int = 5) -> tuple[float, ...]:
    """Symmetric strengths for a preview: ``columns`` values from ``-u`` to ``u`` (0 in the middle
    for an odd count), ``u`` = :func:`row_step_strength` of the largest ``k`` among ``directions``,
    so the extreme columns move each edited row by about 3, the customary SeFa range."""
    k = max(nonzero_rows(d.vector) for d in directions)
    u = row_step_strength(k)
    if columns == 1:
        return (round(u, 2),)
    return tuple(round(u * (2 * i / (columns - 1) - 1), 2) + 0.0 for i in range(columns))


__all__ = [
    "LAYER_GROUPS",
    "ROW_STEP",
    "default_strengths",
    "group_rows",
    "layer_mask",
    "mask_direction",
    "mask_spec",
    "mask_vector",
    "nonzero_rows",
    "parse_layers",
    "row_step_strength",
    "rows_label",
]
