"""Edit directions: one rule for every file (the ``--attr`` names are found by
:mod:`vidinvert.weights.directions`).

The rule (the strength units of every vidinvert command): a direction file holds a
``(D,)``, ``(1,D)`` or ``(L,D)`` W-space direction or a flattened ``(1, L*D)`` W+ boundary
(the official InterFaceGAN boundaries are ``(1, 9216)`` float32, unit norm). It is broadcast
to ``(L, D)`` (L = the generator's ``n_latent``, D its ``style_dim``), normalised to unit
norm over its ``L*D`` values, and applied as ``w~ = w + EDIT_STEP * S * d`` with
``EDIT_STEP = 15``. For an official unit-norm boundary this is exactly the official
convention (the official scripts truncate S to an integer; vidinvert does not).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vidinvert.errors import VidinvertError
from vidinvert.weights.checkpoint import read_checkpoint
from vidinvert.weights.directions import (  # noqa: F401  (the --attr registry, re-exported)
    ALIASES,
    OFFICIAL_BOUNDARIES,
    available_directions,
    direction_dirs,
    resolve_attr,
)

log = logging.getLogger(__name__)

EDIT_STEP = 15.0

@dataclass(frozen=True)
class Direction:
    """A unit-norm edit direction broadcast to the generator's W+ shape.

    ``vector``: float32 tensor ``[n_latent, style_dim]``, unit Frobenius norm.
    ``name``: what the user asked for (e.g. ``smile``); ``source``: the file it came from.
    """

    name: str
    vector: torch.Tensor
    source: str

    def scaled(self, strength: float) -> torch.Tensor:
        """``EDIT_STEP * strength * d`` as ``[n_latent, style_dim]``."""
        return self.vector * (EDIT_STEP * float(strength))


def broadcast_direction(array: np.ndarray, n_latent: int, style_dim: int, *, what: str = "direction") -> torch.Tensor:
    """Broadcast a direction array to ``[n_latent, style_dim]`` and normalise it to unit norm."""
    a = np.asarray(array)
    if not np.issubdtype(a.dtype, np.floating):
        raise VidinvertError(f"{what}: expected a float array, got {a.dtype}")
    a = a.astype(np.float64)
    shape = a.shape
    if a.size == style_dim and (a.ndim == 1 or (a.ndim == 2 and shape[0] == 1)):
        full = np.broadcast_to(a.reshape(1, style_dim), (n_latent, style_dim))
    elif a.ndim == 2 and shape == (n_latent, style_dim):
        full = a
    elif a.size == n_latent * style_dim and (a.ndim == 1 or (a.ndim == 2 and shape[0] == 1)):
        full = a.reshape(n_latent, style_dim)
    else:
        raise VidinvertError(
            f"{what}: shape {shape} does not fit this generator: expected ({style_dim},), (1,{style_dim}), "
            f"({n_latent},{style_dim}) or (1,{n_latent * style_dim})"
        )
    if not np.all(np.isfinite(full)):
        raise VidinvertError(f"{what}: contains NaN or infinite values")
    norm = float(np.linalg.norm(full))
    if norm == 0.0:
        raise VidinvertError(f"{what}: the direction is all zeros")
    return torch.from_numpy((full / norm).astype(np.float32))


def load_direction(path: str | Path, n_latent: int, style_dim: int, *, name: str | None = None) -> Direction:
    """Load a ``.npy`` (or ``.pt`` tensor) direction file and apply the one rule above."""
    p = Path(path)
    if not p.exists():
        raise VidinvertError(f"direction file not found: {p}")
    if p.is_dir():
        raise VidinvertError(f"direction path is a directory, expected a .npy file: {p}")
    try:
        if p.suffix in (".pt", ".pth"):
            obj = read_checkpoint(p)  # weights only; one-line errors (Python objects, HTML, truncated ...)
            if isinstance(obj, dict) and len(obj) == 1:
                obj = next(iter(obj.values()))
            if not isinstance(obj, torch.Tensor):
                raise VidinvertError(
                    f"direction file {p} holds a {type(obj).__name__}, not one tensor (a model checkpoint?):"
                    " give a direction of shape (512,), (18, 512) or (1, 9216)"
                )
            array = obj.detach().float().cpu().numpy()
        else:
            array = np.load(p, allow_pickle=False)
    except VidinvertError:
        raise
    except Exception as exc:
        raise VidinvertError(f"cannot read direction file {p}: {type(exc).__name__}: {exc}") from None
    vec = broadcast_direction(array, n_latent, style_dim, what=f"direction file {p}")
    return Direction(name=name or p.stem, vector=vec, source=str(p))


def load_named(name_or_file: str | Path, n_latent: int, style_dim: int, weights_dir: Path | None = None) -> Direction:
    """A direction given as a file (an existing path, or a ``.npy``/``.pt``/``.pth`` name) or as an
    ``--attr`` name (resolved with :func:`resolve_attr`); used by ``--keep``."""
    p = Path(name_or_file)
    if p.suffix in (".npy", ".pt", ".pth") or p.exists():
        return load_direction(p, n_latent, style_dim)
    text = str(name_or_file)
    return load_direction(resolve_attr(text, weights_dir)[1], n_latent, style_dim, name=text)


@dataclass(frozen=True)
class EditSpec:
    """One output's edit: a name for file names, the summed w+ direction ``sum_i s_i * 15 * d_i``
    and the summed StyleSpace directions ``styles`` (:class:`~vidinvert.edit.stylespace.StyleDirection`,
    applied on the styles of the edited w: the w+ edit first, then S)."""

    name: str
    directions: tuple[Direction, ...]
    strengths: tuple[float, ...]
    styles: tuple = ()

    def delta(self) -> torch.Tensor | None:
        """``[n_latent, style_dim]`` float32: the change of w at strength multiplier 1 (None: an S edit only)."""
        total = None
        for d, s in zip(self.directions, self.strengths):
            v = d.scaled(s)
            total = v if total is None else total + v
        return total

    def style_delta(self) -> torch.Tensor | None:
        """``[N]`` float32: the change of the flat style vector s at strength 1 (None: no S part)."""
        total = None
        for d in self.styles:
            total = d.delta if total is None else total + d.delta
        return total

