"""W+ row selections: ``all``, ``coarse``, ``middle``, ``fine``, ``A-B`` (inclusive), ``A,B,C``.

Rows follow the generator's layers: for the 1024 px StyleGAN2 (18 rows) rows 0-3 drive the 4-8 px
layers (coarse: pose, face shape), 4-7 the 16-32 px layers (middle: features, expression), 8-17
the 64-1024 px layers (fine: colour, texture, lighting). The names mean the same row ranges for
any generator; ``fine`` is rows 8 to the last.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

from vidinvert.errors import VidinvertError

#: Named groups: first row, end row (exclusive; None = the last row).
LAYER_GROUPS: dict[str, tuple[int, int | None]] = {
    "all": (0, None),
    "coarse": (0, 4),
    "middle": (4, 8),
    "fine": (8, None),
}
_ITEM = re.compile(r"^(\d+)(?:\s*-\s*(\d+))?$")


def parse_layers(spec: str, n_latent: int, *, what: str = "--style-layers") -> tuple[int, ...]:
    """``"fine"``, ``"0-3,8"`` ... -> the sorted W+ rows ``(0, 1, 2, 3, 8)``.

    Items are comma-separated: a group name (:data:`LAYER_GROUPS`), a row ``A`` or an inclusive
    range ``A-B``; their union is returned. Rows must lie in ``0..n_latent-1``. A bad item, an empty
    selection or an empty group (``fine`` of a generator with 8 rows or fewer) raises VidinvertError.
    """
    text = str(spec).strip().lower()
    rows: set[int] = set()
    last = n_latent - 1
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        if item in LAYER_GROUPS:
            a, b = LAYER_GROUPS[item]
            got = range(a, min(n_latent, b) if b is not None else n_latent)
            if len(got) == 0:
                raise VidinvertError(f"{what} {item}: this generator has only {n_latent} rows (0-{last})")
            rows.update(got)
            continue
        m = _ITEM.match(item)
        if not m:
            raise VidinvertError(
                f"invalid {what} item {item!r} in {spec!r}: use all, coarse, middle, fine, a row (5), "
                f"a range (0-7) or a comma-separated list of those"
            )
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) is not None else a
        if b < a:
            raise VidinvertError(f"{what} range {item!r} ends before it starts")
        if b > last:
            raise VidinvertError(f"{what} {item!r}: rows go from 0 to {last} for this generator")
        rows.update(range(a, b + 1))
    if not rows:
        raise VidinvertError(f"{what} {spec!r} selects no rows")
    return tuple(sorted(rows))


def rows_mask(rows: Sequence[int] | None, n_latent: int) -> torch.Tensor:
    """Row indices -> ``[n_latent]`` bool mask (None selects every row)."""
    mask = torch.zeros(n_latent, dtype=torch.bool)
    if rows is None:
        mask[:] = True
    else:
        mask[list(rows)] = True
    return mask
