"""Image mode: aligned faces (e.g. CelebA-HQ at 1024) inverted in batches, like the paper's Table 1.

Each image is one item (no face detection: the images are taken as FFHQ-aligned). A square image
of another size is resized to the generator's resolution (antialiased bilinear, one notice per
run); a non-square or unreadable file is skipped and counted.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from vidinvert.convert import to_tensor
from vidinvert.engine import Inverter
from vidinvert.errors import VidinvertError
from vidinvert.evaluate.datasets import MediaItem
from vidinvert.evaluate.suite import ItemResult, MetricSuite
from vidinvert.imagefile import read_image
from vidinvert.memory import BatchSize

log = logging.getLogger(__name__)


def _load(item: MediaItem) -> np.ndarray:
    rgb = read_image(item.path)
    h, w = rgb.shape[:2]
    if h != w:
        raise VidinvertError(f"{item.path}: {w}x{h} is not a square aligned face")
    return rgb


def evaluate_images(items: Sequence[MediaItem], inverter: Inverter, suite: MetricSuite, batch_size: int = 4,
                    progress: Callable[[int], None] | None = None,
                    sizes: BatchSize | None = None) -> list[ItemResult]:
    """One :class:`ItemResult` per item, in order (``kind='image'``, ``status`` ok or unreadable).

    ``progress(n)`` is called with the number of images finished after each batch. ``sizes``: the
    run's batch state (halved when memory runs out, kept for the rest of the run; default:
    ``batch_size`` for these items).
    """
    size = inverter.size
    device = inverter.compute.device
    sizes = sizes or BatchSize(batch_size, "eval", device=device)
    results: list[ItemResult] = []
    resized_notice = False
    for start in range(0, len(items), batch_size):
        t0 = time.perf_counter()
        chunk = items[start:start + batch_size]
        good: list[tuple[MediaItem, torch.Tensor]] = []
        done: dict[str, ItemResult] = {}
        for it in chunk:
            try:
                rgb = _load(it)
            except VidinvertError as exc:
                log.warning(f"skipping {it.path}: {exc.message}")
                done[it.key] = ItemResult(key=it.key, path=str(it.path), kind="image", status="unreadable",
                                          error=exc.message)
                continue
            t = to_tensor(rgb, device=device)
            if t.shape[-1] != size:
                if not resized_notice:
                    log.warning(f"images of {t.shape[-1]}x{t.shape[-1]} are resized to the generator's {size}x{size}")
                    resized_notice = True
                t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=t.shape[-1] > size,
                                  align_corners=False).clamp(-1, 1)
            good.append((it, t))
        if good:
            crops = torch.cat([t for _, t in good])
            values = sizes.map_rows(len(good), lambda rows, crops=crops: _compare(inverter, suite, crops[rows]))
            seconds = (time.perf_counter() - t0) / len(good)
            for i, (it, _) in enumerate(good):
                metrics = {k: float(np.asarray(v)[i]) for k, v in values.items() if not k.startswith("_")}
                done[it.key] = ItemResult(key=it.key, path=str(it.path), kind="image", frames=1, evaluated=1,
                                          metrics=metrics, per_frame={k: [v] for k, v in metrics.items()},
                                          frame_indices=[0], seconds=seconds)
        results.extend(done[it.key] for it in chunk)
        if progress is not None:
            progress(len(chunk))
    return results


def _compare(inverter: Inverter, suite: MetricSuite, crops: torch.Tensor) -> dict:
    """Per-image metric arrays of crops ``[n,3,S,S]`` in [-1,1] against their reconstructions."""
    values, _ = suite.compare(crops, inverter.synthesize(inverter.invert(crops)))
    values.pop("_emb_recon", None)
    return {k: np.asarray(v) for k, v in values.items()}
