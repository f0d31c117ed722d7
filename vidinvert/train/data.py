"""Training data: real aligned faces from a folder and synthetic faces sampled on the fly.

Every random draw is keyed by a GLOBAL sample index, never by a process-local counter: the
``j``-th sample of micro-step ``m`` of optimiser step ``t`` has the same index, the same real
image, the same latent and the same noise whether 1 or N processes train. Each process takes
its contiguous slice of every micro-step's global batch (:func:`local_slice`).

Images are float32 RGB NCHW in [-1, 1]. Nothing is pre-rendered: a synthetic sample is
``z ~ N(0, I)`` (seeded by its index) -> ``w = mapping(z)`` broadcast to all ``n_latent`` rows,
with per-sample noise maps, rendered by the frozen generator.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from vidinvert.convert import unit_from_uint8
from vidinvert.errors import VidinvertError
from vidinvert.imagefile import IMAGE_SUFFIXES, read_image

log = logging.getLogger(__name__)

# Stream identifiers keep the seeds of unrelated draws apart.
STREAM_REAL_ORDER = 1
STREAM_SYNTHETIC = 2
STREAM_RECON_NOISE = 3
STREAM_VAL_SYNTHETIC = 4
STREAM_SPLIT = 5


def sample_seed(seed: int, stream: int, index: int, extra: int = 0) -> int:
    """A 63-bit seed for one draw, a pure function of (run seed, stream, global index, extra)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(stream), int(index), int(extra)]).generate_state(2)
    return int((int(state[0]) << 31) ^ int(state[1])) & 0x7FFF_FFFF_FFFF_FFFF


def keyed_generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


# ----------------------------------------------------------------------------------------------
# Global batch layout
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchLayout:
    """How a global batch splits over processes and accumulation micro-steps."""

    batch_real: int
    batch_synthetic: int
    world_size: int = 1
    rank: int = 0
    accumulate: int = 1

    def __post_init__(self) -> None:
        parts = self.world_size * self.accumulate
        for name in ("batch_real", "batch_synthetic"):
            n = getattr(self, name)
            if n % parts:
                raise VidinvertError(
                    f"config key data.{name}={n} does not divide into {self.world_size} process(es) x "
                    f"{self.accumulate} accumulation step(s): use a multiple of {parts}"
                )

    @property
    def local_real(self) -> int:
        return self.batch_real // (self.world_size * self.accumulate)

    @property
    def local_synthetic(self) -> int:
        return self.batch_synthetic // (self.world_size * self.accumulate)

    def real_positions(self, step: int, micro: int) -> list[int]:
        """Global positions in the stream of real samples for this process's part of a micro-step."""
        return _positions(step, micro, self.batch_real, self.accumulate, self.rank, self.local_real)

    def synthetic_indices(self, step: int, micro: int) -> list[int]:
        return _positions(step, micro, self.batch_synthetic, self.accumulate, self.rank, self.local_synthetic)


def _positions(step: int, micro: int, per_step: int, accumulate: int, rank: int, local: int) -> list[int]:
    start = step * per_step + micro * (per_step // accumulate) + rank * local
    return list(range(start, start + local))


# ----------------------------------------------------------------------------------------------
# Real images
# ----------------------------------------------------------------------------------------------
def list_images(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted by relative path."""
    root = Path(folder).expanduser()
    if not root.exists():
        raise VidinvertError(f"data.real_dir not found: {root}")
    if not root.is_dir():
        raise VidinvertError(f"data.real_dir is not a folder: {root}")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise VidinvertError(f"no images (png, jpg, webp, ...) in data.real_dir {root}")
    return files


def split_images(files: Sequence[Path], val_fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """Deterministic held-out split: (train, validation). At least one image each when possible."""
    n = len(files)
    n_val = 0
    if val_fraction > 0 and n > 1:
        n_val = min(n - 1, max(1, int(round(n * val_fraction))))
    order = np.random.default_rng(sample_seed(seed, STREAM_SPLIT, 0)).permutation(n)
    val = sorted(files[i] for i in order[:n_val])
    train = sorted(files[i] for i in order[n_val:])
    return train, val


def load_face(path: Path, size: int) -> Tensor:
    """An aligned face file -> float32 [3, size, size] RGB in [-1, 1].

    A non-square image is centre-cropped to a square first; other sizes are resized with
    Lanczos filtering (PIL).
    """
    rgb = read_image(path)
    h, w = rgb.shape[:2]
    if h != w:
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        rgb = rgb[top : top + s, left : left + s]
    if rgb.shape[0] != size:
        rgb = np.array(Image.fromarray(rgb).resize((size, size), Image.LANCZOS))
    return unit_from_uint8(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1))


class RealFaces(torch.utils.data.Dataset):
    """Dataset of aligned face files; item i -> [3, size, size] float in [-1, 1]."""

    def __init__(self, files: Sequence[Path], size: int) -> None:
        self.files = list(files)
        self.size = int(size)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Tensor:
        return load_face(self.files[i], self.size)


class RealOrder:
    """Global real-sample position -> dataset index: a fresh seeded permutation per epoch."""

    def __init__(self, n: int, seed: int) -> None:
        if n < 1:
            raise VidinvertError("no training images left after the validation split")
        self.n = n
        self.seed = seed
        self._perm = lru_cache(maxsize=4)(self._permutation)

    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng(sample_seed(self.seed, STREAM_REAL_ORDER, epoch)).permutation(self.n)

    def __call__(self, position: int) -> int:
        epoch, k = divmod(int(position), self.n)
        return int(self._perm(epoch)[k])


class RealBatchSampler(torch.utils.data.Sampler):
    """Yields this process's dataset indices for each (step, micro-step) from ``start_step``."""

    def __init__(self, layout: BatchLayout, order: RealOrder, start_step: int, end_step: int) -> None:
        self.layout, self.order = layout, order
        self.start_step, self.end_step = start_step, end_step

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step) * self.layout.accumulate

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start_step, self.end_step):
            for micro in range(self.layout.accumulate):
                yield [self.order(p) for p in self.layout.real_positions(step, micro)]


def real_loader(
    dataset: RealFaces, layout: BatchLayout, order: RealOrder, start_step: int, end_step: int, workers: int,
    pin: bool = False,
) -> torch.utils.data.DataLoader:
    """A DataLoader giving one [local_real, 3, S, S] batch per micro-step, in step order; ``pin``:
    in pinned memory (training on CUDA), for non-blocking copies."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=RealBatchSampler(layout, order, start_step, end_step),
        num_workers=workers,
        pin_memory=pin,
        persistent_workers=False,
        prefetch_factor=4 if workers > 0 else None,
    )


# ----------------------------------------------------------------------------------------------
# Synthetic samples and noise
# ----------------------------------------------------------------------------------------------
def noise_shapes(generator: torch.nn.Module) -> list[tuple[int, ...]]:
    """Per-sample shapes [1, r, r] of the generator's noise inputs (from its stored buffers)."""
    return [tuple(n.shape[1:]) for n in generator.stored_noise()]


def keyed_noise(shapes: Sequence[tuple[int, ...]], seeds: Sequence[int], device: torch.device) -> list[Tensor]:
    """Noise maps [B, 1, r, r] per layer; sample b drawn from its own seed (order-independent)."""
    per_sample = []
    for s in seeds:
        g = keyed_generator(device, s)
        per_sample.append([torch.randn(shape, generator=g, device=device) for shape in shapes])
    return [torch.stack([maps[i] for maps in per_sample]) for i in range(len(shapes))]


@dataclass
class SyntheticBatch:
    """Images [B,3,S,S] in [-1,1], their w+ [B,L,D] and the noise maps they were rendered with."""

    images: Tensor
    w_plus: Tensor
    noise: list[Tensor]


class SyntheticFaces:
    """Renders synthetic training faces on the fly from the frozen generator.

    ``sample(indices)``: sample i uses z and noise drawn from ``sample_seed(seed, stream, i)``
    (with ``pool > 0``, ``i % pool``: a fixed set of ``pool`` faces). ``w = mapping(z)`` (no
    truncation, as the official training) is broadcast to every w+ row.
    """

    def __init__(self, generator: torch.nn.Module, seed: int, *, pool: int = 0, stream: int = STREAM_SYNTHETIC):
        self.generator = generator
        self.seed = int(seed)
        self.pool = int(pool)
        self.stream = int(stream)
        self.shapes = noise_shapes(generator)

    def _key(self, index: int) -> int:
        return index % self.pool if self.pool > 0 else index

    @torch.no_grad()
    def sample(self, indices: Sequence[int], device: torch.device, autocast=None) -> SyntheticBatch:
        g = self.generator
        zs, maps = [], []
        for i in indices:
            rng = keyed_generator(device, sample_seed(self.seed, self.stream, self._key(i)))
            zs.append(torch.randn(g.style_dim, generator=rng, device=device))
            maps.append([torch.randn(shape, generator=rng, device=device) for shape in self.shapes])
        z = torch.stack(zs)
        noise = [torch.stack([m[k] for m in maps]) for k in range(len(self.shapes))]
        w = g.mapping(z)
        w_plus = w.unsqueeze(1).expand(-1, g.n_latent, -1).contiguous()
        ctx = autocast if autocast is not None else torch.autocast(device.type, enabled=False)
        with ctx:
            images = g(w_plus, noise=noise)
        return SyntheticBatch(images=images.float(), w_plus=w_plus, noise=noise)


def reconstruction_noise(
    shapes: Sequence[tuple[int, ...]], seed: int, indices: Sequence[int], kind: int, device: torch.device
) -> list[Tensor]:
    """Random noise for reconstructing the samples ``indices`` (global keys), one stream per ``kind``."""
    seeds = [sample_seed(seed, STREAM_RECON_NOISE, i, kind) for i in indices]
    return keyed_noise(shapes, seeds, device)


__all__ = [
    "BatchLayout",
    "RealFaces",
    "RealOrder",
    "SyntheticBatch",
    "SyntheticFaces",
    "keyed_noise",
    "list_images",
    "load_face",
    "noise_shapes",
    "real_loader",
    "reconstruction_noise",
    "sample_seed",
    "split_images",
]
