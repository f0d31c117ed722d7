"""Which StyleSpace channels act inside a face region (``vidinvert directions channels --region mouth``).

Wu et al. locate channels by their gradient maps on generated images: a channel is local to a region
when the image change it causes lies mostly inside that region's mask. Here, on ``samples`` images of
the generator's own distribution (seeded z, truncation 1, the generator's stored noise), the share of
each channel's squared image gradient inside the region is::

    share_c = sum_i sum_px M_i(px) J_ic(px)^2 / sum_i sum_px J_ic(px)^2,   J_ic = dG(s_i)/ds_c

with M_i the region mask of image i (face parsing when its weights are found, else the landmark
region of the canonical FFHQ face: sampled images are FFHQ-aligned). All channels are measured at
once with random probes (Hutchinson): for v ~ N(0, I) over the image, ``E[(v . (sqrt(M) J_c))^2] =
sum M J_c^2`` (and likewise with sqrt(1 - M) outside; share = inside / (inside + outside)): one
forward pass per image with a zero style offset, then two backward passes per probe measure every
channel at once. ``probes`` sets the precision (a ratio of two such estimates, with the same probes).
``effect_c`` is the linearized RMS change of a pixel (on the [-1, 1] scale) when channel c moves by
one standard deviation. Channels whose effect is below :data:`MIN_EFFECT` of the largest are not
ranked (they do next to nothing), and neither are the layers above the render size (they do not reach
the image rendered there).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from vidinvert.edit.stylespace import seeded_z
from vidinvert.errors import VidinvertError
from vidinvert.face.regions import RegionMasker
from vidinvert.models.stylespace import StyleLayout, generator_layout

#: A channel is ranked when its effect is at least this fraction of the largest channel effect.
MIN_EFFECT = 0.01


@dataclass(frozen=True)
class ChannelScore:
    """One channel: ``label`` ``L_C``, its layer's ``name``, w+ ``row`` and ``resolution``, ``share``
    of its squared image gradient inside the region (0..1) and ``effect`` (RMS pixel change per std)."""

    label: str
    layer: int
    channel: int
    name: str
    row: int
    resolution: int
    share: float
    effect: float

    def as_dict(self) -> dict:
        return {"channel": self.label, "layer": self.layer, "index": self.channel, "name": self.name,
                "row": self.row, "resolution": self.resolution, "share": round(self.share, 5),
                "effect": float(f"{self.effect:.5g}")}


def _probe_energies(generator, w: torch.Tensor, masks: torch.Tensor, render: int | None, probes: int,
                    g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum over the images ``w`` ``[B, style_dim]`` and ``probes`` probes of (v.sqrt(M)J)^2 and
    (v.sqrt(1-M)J)^2 per channel: two float64 ``[N]`` (inside, outside). One forward pass with a zero
    style offset per image, then two backward passes per probe through it (every channel at once)."""
    n = generator_layout(generator).total
    e_in = torch.zeros(n, dtype=torch.float64, device=w.device)
    e_out = torch.zeros_like(e_in)
    ds = torch.zeros(len(w), n, device=w.device, requires_grad=True)
    with torch.enable_grad():
        img = generator(w[:, None].expand(-1, generator.n_latent, -1), rgb_size=render, style_offset=ds)
        m = masks.to(img.device, img.dtype)
        sides = (m.sqrt(), (1 - m).sqrt())
        for _ in range(probes):
            v = torch.randn(img.shape, generator=g).to(img.device)
            for side, acc in zip(sides, (e_in, e_out)):
                (grad,) = torch.autograd.grad(img, ds, grad_outputs=v * side, retain_graph=True)
                acc += grad.double().square().sum(0)
    return e_in, e_out


def locate_channels(generator: torch.nn.Module, masker: RegionMasker, std: torch.Tensor, *, samples: int = 8,
                    probes: int = 16, seed: int = 0, render_size: int | None = None, batch: int = 2,
                    rows: Sequence[int] | None = None) -> tuple[list[ChannelScore], dict]:
    """Every measured channel scored for ``masker``'s region, best first (share, then effect).

    generator: in eval mode (any device; run in float32); std: the channels' standard deviations
    ``[N]`` (:func:`~vidinvert.edit.stylespace.load_style_stats`); render_size: the image resolution
    measured (a power of two up to the generator size; None: the full image); rows: only the layers
    driven by these w+ rows. Returns (scores, info: ``measured``, ``skipped_layers``, ``seconds``,
    ``mask_source``, ``mask_mean``)."""
    layout: StyleLayout = generator_layout(generator)
    size = render_size or generator.size
    if size not in generator.channels:
        raise VidinvertError(f"--size {size}: give a power of two between 4 and {generator.size}")
    t0 = time.perf_counter()
    device = next(generator.parameters()).device
    z, g = seeded_z(generator, samples, seed)  # the probes continue the same stream
    e_in = e_all = None
    mask_mean = 0.0
    for i in range(0, samples, batch):
        with torch.no_grad():
            w = generator.mapping(z[i:i + batch].to(device))
            img = generator(w[:, None].expand(-1, generator.n_latent, -1), rgb_size=size if size < generator.size
                            else None)
            masks = masker.masks([None] * len(w), img.clamp(-1, 1), device=device)
            if masks.shape[-1] != size:
                masks = torch.nn.functional.interpolate(masks, size=(size, size), mode="bilinear",
                                                        align_corners=False, antialias=masks.shape[-1] > size)
        mask_mean += float(masks.mean()) * len(w)
        a, b = _probe_energies(generator, w, masks, size if size < generator.size else None, probes, g)
        e_in, e_all = (a, a + b) if e_in is None else (e_in + a, e_all + a + b)
    pixels = 3 * size * size
    effect = (e_all / (samples * probes * pixels)).sqrt().float().cpu() * std.float().cpu()
    keep = torch.ones(layout.total, dtype=torch.bool)
    if rows is not None:
        keep &= torch.from_numpy(layout.layer_mask(layout.layers_of_rows(rows)))
    top = float(effect[keep].max()) if bool(keep.any()) else 0.0
    keep &= effect >= MIN_EFFECT * top
    keep &= e_all.cpu() > 0
    share = (e_in / e_all.clamp_min(1e-300)).float().cpu()
    scores = []
    for flat in torch.nonzero(keep).flatten().tolist():
        lay_i, ch = layout.locate(flat)
        lay = layout.layers[lay_i]
        scores.append(ChannelScore(f"{lay_i}_{ch}", lay_i, ch, lay.name, lay.row, lay.resolution,
                                   float(share[flat]), float(effect[flat])))
    scores.sort(key=lambda c: (-c.share, -c.effect))
    skipped = [x.index for x in layout.layers if x.resolution > size]
    info = {"measured": len(scores), "skipped_layers": skipped, "seconds": time.perf_counter() - t0,
            "mask_source": masker.source, "mask_mean": mask_mean / max(samples, 1)}
    if not math.isfinite(info["mask_mean"]) or info["mask_mean"] == 0:
        raise VidinvertError("the region masks of the sampled images are empty: try another --region")
    return scores, info


__all__ = ["MIN_EFFECT", "ChannelScore", "locate_channels"]
