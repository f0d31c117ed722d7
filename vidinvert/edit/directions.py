"""Edit directions: one rule for every file, and the ``--attr`` registry.

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

log = logging.getLogger(__name__)

EDIT_STEP = 15.0

# Official boundaries shipped with the Feature-Style encoder (CelebA attribute names).
OFFICIAL_BOUNDARIES = ("Smiling", "Eyeglasses", "Heavy_Makeup")
# Friendly names -> candidates in order of preference (file stems, case-insensitive).
ALIASES: dict[str, tuple[str, ...]] = {
    "smile": ("Smiling", "smile"),
    "smiling": ("Smiling", "smile"),
    "glasses": ("Eyeglasses", "glasses", "eyeglasses"),
    "eyeglasses": ("Eyeglasses", "eyeglasses", "glasses"),
    "makeup": ("Heavy_Makeup", "makeup"),
    "heavy_makeup": ("Heavy_Makeup", "makeup"),
    "age": ("age", "Age"),
    "pose": ("pose", "Pose"),
    "gender": ("gender", "Gender", "Male"),
}


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
            from vidinvert.weights.checkpoint import read_checkpoint

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


def _direction_dirs(weights_dir: Path | None) -> list[Path]:
    from vidinvert.weights import search_dirs

    dirs: list[Path] = []
    for d in search_dirs(weights_dir):
        dirs += [d, d / "directions", d / "boundaries"]
    return dirs


def available_directions(weights_dir: Path | None = None) -> dict[str, Path]:
    """Direction files found in the weights folders: ``{attribute name: path}`` (first found wins).

    ``Smiling_boundary.npy`` is listed as ``Smiling``; ``smile.npy`` as ``smile``.
    """
    found: dict[str, Path] = {}
    for d in _direction_dirs(weights_dir):
        if not d.is_dir():
            continue
        for f in sorted(d.glob("*.npy")):
            stem = f.stem
            name = stem[: -len("_boundary")] if stem.endswith("_boundary") else stem
            found.setdefault(name, f)
    return found


def resolve_attr(attr: str, weights_dir: Path | None = None) -> tuple[str, Path]:
    """``--attr NAME`` -> (canonical name, file). Friendly aliases (``smile`` -> ``Smiling``).

    An unknown or absent name raises an error listing what is available and where files go.
    """
    avail = available_directions(weights_dir)
    lower = {k.lower(): k for k in avail}
    candidates = ALIASES.get(attr.lower(), ()) + (attr,)
    for c in candidates:
        if c.lower() in lower:
            key = lower[c.lower()]
            return key, avail[key]
    from vidinvert.weights import direction_sources_text

    where = ", ".join(str(d) for d in _direction_dirs(weights_dir)[:1])
    have = ", ".join(sorted(avail)) if avail else "none"
    aliases = sorted(a for a, cands in ALIASES.items()
                     if a.lower() not in lower and any(c.lower() in lower for c in cands))
    also = f" (also by the names {', '.join(aliases)})" if aliases else ""
    raise VidinvertError(
        f"unknown or missing direction {attr!r}: names with a file here: {have}{also}; put NAME.npy in {where}"
        f" or pass --direction FILE.npy. Known sources: {direction_sources_text()}"
    )


@dataclass(frozen=True)
class EditSpec:
    """One output's edit: a name for file names and the summed direction ``sum_i s_i * 15 * d_i``."""

    name: str
    directions: tuple[Direction, ...]
    strengths: tuple[float, ...]

    def delta(self) -> torch.Tensor:
        """``[n_latent, style_dim]`` float32: the change of w at strength multiplier 1."""
        total = None
        for d, s in zip(self.directions, self.strengths):
            v = d.scaled(s)
            total = v if total is None else total + v
        return total

