"""Directions without data: closed-form factorization of the style modulation (SeFa).

Shen & Zhou, "Closed-Form Factorization of Latent Semantics in GANs" (CVPR 2021): a w+ row
reaches the synthesis network only through the affine style layers (``modulation``) of the
convolutions it drives, ``s = A w + b``. The directions that change the styles most are the
top eigenvectors of ``A^T A``.

Here ``A`` has one row per style channel of the chosen w+ rows: for row ``r < num_layers`` the
``modulation`` weight of styled convolution ``r`` (``conv1`` for row 0, ``convs[r-1]`` after), and
for the last row (17 at 1024, which drives nothing else) the last ToRGB's. Every row of ``A`` is
scaled to unit L2 norm (the reference implementation's normalisation). The eigenvectors are sorted
by eigenvalue, descending, and each gets a fixed sign: its largest-magnitude component positive.

Each direction is written as an ``(n_latent, style_dim)`` float32 ``.npy``: the eigenvector on the
chosen rows, zero elsewhere (the edit rule then normalises it, so each of ``k`` rows moves by
``15 * S / sqrt(k)``). ``directions.json`` beside the files lists layers, rank and eigenvalue.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vidinvert.edit.layers import parse_layers, rows_label
from vidinvert.errors import VidinvertError
from vidinvert.fileio import atomic_path, check_output, write_json

INDEX_FILE = "directions.json"


def modulation_weights(generator: torch.nn.Module, rows: list[int]) -> list[tuple[int, str, torch.Tensor]]:
    """``(row, module name, modulation weight [channels, style_dim])`` of the layers SeFa factorizes
    for ``rows``: styled convolution ``r`` for ``r < num_layers``, the last ToRGB for the last row."""
    last = generator.n_latent - 1
    out = []
    for row, name, conv in generator.style_modules():
        is_conv = not name.startswith("to_rgb")
        if row in rows and (is_conv or row == last):
            out.append((row, name, conv.modulation.weight.detach()))
    return out


def sefa_matrix(generator: torch.nn.Module, rows: list[int]) -> np.ndarray:
    """``A``: float64 ``[total style channels, style_dim]``, rows of unit L2 norm."""
    weights = modulation_weights(generator, rows)
    a = np.concatenate([w.double().cpu().numpy() for _, _, w in weights], axis=0)
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    if not np.all(np.isfinite(a)) or np.any(norms == 0):
        raise VidinvertError("the generator's modulation weights contain zero rows or non-finite values")
    return a / norms


def factorize(generator: torch.nn.Module, rows: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of ``A^T A`` for ``rows``: (eigenvalues ``[D]`` descending, directions
    ``[D, D]`` float64, one unit eigenvector per row, largest-magnitude component positive)."""
    a = sefa_matrix(generator, rows)
    vals, vecs = np.linalg.eigh(a.T @ a)  # ascending, columns
    order = np.argsort(vals)[::-1]
    vals, dirs = vals[order], vecs[:, order].T.copy()
    big = dirs[np.arange(len(dirs)), np.abs(dirs).argmax(axis=1)]
    dirs *= np.where(big < 0, -1.0, 1.0)[:, None]
    return vals, dirs


@dataclass(frozen=True)
class DiscoverRequest:
    """``vidinvert directions discover``: write the top ``count`` SeFa directions of ``layers``
    into ``out_dir`` (created if missing; its parent must exist)."""

    out_dir: Path
    layers: str = "all"
    count: int = 10
    overwrite: bool = False
    prefix: str = "sefa"


@dataclass
class DiscoverResult:
    """What was written: ``files`` (paths, rank order), ``eigenvalues``, ``rows``, the index file."""

    files: list[Path]
    eigenvalues: list[float]
    rows: list[int]
    index: Path
    seconds: float
    entries: list[dict] = field(default_factory=list)


def plan_discover(request: DiscoverRequest, n_latent: int, style_dim: int) -> tuple[list[int], list[Path]]:
    """Validate the request against the generator and return (rows, output files); nothing is written."""
    if not isinstance(request.count, int) or not 1 <= request.count <= style_dim:
        raise VidinvertError(f"--count must be between 1 and {style_dim}, got {request.count}")
    rows = parse_layers(request.layers, n_latent)
    out_dir = Path(request.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise VidinvertError(f"--out {out_dir} exists and is not a folder")
    if not out_dir.parent.exists():
        raise VidinvertError(f"the parent folder of --out {out_dir} does not exist")
    label = rows_label(rows)
    files = [out_dir / f"{request.prefix}_{label}_r{i:02d}.npy" for i in range(request.count)]
    if out_dir.is_dir():
        for f in files:
            check_output(f, overwrite=request.overwrite)
    return rows, files


def run_discover(generator: torch.nn.Module, request: DiscoverRequest, *, source: str = "") -> DiscoverResult:
    """Factorize, then write the direction files and merge their entries into ``directions.json``
    (entries of other files already listed there are kept). ``source`` names the generator file."""
    t0 = time.perf_counter()
    n_latent, style_dim = int(generator.n_latent), int(generator.style_dim)
    rows, files = plan_discover(request, n_latent, style_dim)
    vals, dirs = factorize(generator, rows)
    out_dir = Path(request.out_dir)
    out_dir.mkdir(exist_ok=True)
    entries = []
    for rank, path in enumerate(files):
        full = np.zeros((n_latent, style_dim), np.float32)
        full[rows] = dirs[rank].astype(np.float32)
        with atomic_path(path, overwrite=request.overwrite) as tmp, open(tmp, "wb") as fh:
            np.save(fh, full)
        entries.append({"file": path.name, "method": "sefa", "layers": rows, "rank": rank,
                        "eigenvalue": float(vals[rank]), "eigenvalue_share": float(vals[rank] / vals.sum()),
                        "generator": source})
    index = out_dir / INDEX_FILE
    old = _read_index(index)
    names = {e["file"] for e in entries}
    merged = [e for e in old if e.get("file") not in names] + entries
    write_json(index, {"format": "vidinvert-directions/1", "directions": merged})
    return DiscoverResult(files, [float(v) for v in vals[: len(files)]], rows, index,
                          time.perf_counter() - t0, entries)


def _read_index(path: Path) -> list[dict]:
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
        items = data.get("directions", [])
        return [e for e in items if isinstance(e, dict)]
    except (ValueError, AttributeError):
        raise VidinvertError(f"{path} is not a directions index (invalid JSON): move it away") from None


__all__ = [
    "INDEX_FILE",
    "DiscoverRequest",
    "DiscoverResult",
    "factorize",
    "modulation_weights",
    "plan_discover",
    "run_discover",
    "sefa_matrix",
]
