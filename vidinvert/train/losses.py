"""Training losses of the Feature-Style encoder, each returning one value per sample ([B] float32).

- :func:`l2_loss`: mean squared error over C, H, W.
- :class:`MultiScaleLPIPS`: LPIPS (AlexNet) at full, 1/2 and 1/4 resolution, summed; the
  halvings are ``F.interpolate(scale_factor=0.5, mode='bilinear')`` as the official code.
- :class:`IdentityLoss`: multi-layer ArcFace loss, ``sum_i 1 - cos(A_i(x), A_i(y))`` over the
  four IResNet stages and the embedding; input = whole image resized to 112 with mode nearest.
- :class:`ParsingLoss`: BiSeNet face parsing, ``sum_i 1 - cos`` of the three 19-class logit
  maps; input: ``(x+1)/2`` clamped, bilinear resize to 512, ImageNet normalisation.
- :func:`feature_loss`: ``mean((F - G_K(w).detach())**2)``.

Each network class splits ``features(target)`` (computed once, without gradients) from
``distance(features(recon), target_features)``, so the targets are not recomputed for the two
reconstructions of a training step. The networks are frozen (eval mode, no gradients); the
gradient flows to the reconstruction only.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidinvert.convert import IMAGENET_MEAN, IMAGENET_STD
from vidinvert.errors import VidinvertError
from vidinvert.face.masks import load_bisenet
from vidinvert.metrics.image import alexnet_to_lpips_keys
from vidinvert.models.iresnet import IResNet
from vidinvert.weights import read_checkpoint

log = logging.getLogger(__name__)

COS_EPS = 1e-6  # nn.CosineSimilarity(dim=1, eps=1e-6), as the official losses
LPIPS_MIN_SIDE = 32  # AlexNet needs at least 32 px to keep a 1x1 map after its last pooling

# torchvision AlexNet ``features.<i>`` -> lpips ``net.slice<k>.<i>`` (lpips keeps the indices).
def freeze(module: nn.Module) -> nn.Module:
    """Eval mode and ``requires_grad=False`` for every parameter; returns the module."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def per_sample_cosine_distance(a: Tensor, b: Tensor) -> Tensor:
    """``1 - cos(flatten(a), flatten(b))`` per sample, in float32: [B]."""
    return 1.0 - F.cosine_similarity(a.flatten(1).float(), b.flatten(1).float(), dim=1, eps=COS_EPS)


def l2_loss(x: Tensor, y: Tensor) -> Tensor:
    """Per-sample mean squared error over C, H, W: [B] float32."""
    return (x.float() - y.float()).pow(2).flatten(1).mean(1)


def feature_loss(feature: Tensor, g_k_w: Tensor) -> Tensor:
    """Feature reconstruction ``mean((F - G_K(w).detach())**2)`` per sample: [B] float32."""
    return l2_loss(feature, g_k_w.detach())


def halve(x: Tensor, times: int) -> Tensor:
    """``times`` bilinear halvings (align_corners=False; each equals a 2x2 average)."""
    for _ in range(times):
        x = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
    return x


# ----------------------------------------------------------------------------------------------
# LPIPS
# ----------------------------------------------------------------------------------------------
class MultiScaleLPIPS(nn.Module):
    """LPIPS (v0.1, AlexNet trunk with the calibrated linear heads) summed over ``scales``.

    Wraps an ``lpips.LPIPS`` module and reuses its scaling layer, trunk and linear heads;
    ``forward(x, y)`` equals ``sum_k lpips(halve(x, k), halve(y, k))`` per sample.
    Images: [B, 3, H, W] RGB in [-1, 1].
    """

    def __init__(self, lpips_module: nn.Module, scales: int = 3) -> None:
        super().__init__()
        self.lpips = freeze(lpips_module)
        self.scales = int(scales)

    def check_size(self, side: int) -> None:
        smallest = side // (2 ** (self.scales - 1))
        if smallest < LPIPS_MIN_SIDE:
            raise VidinvertError(
                f"config key loss.lpips_scales={self.scales}: the smallest LPIPS scale of a {side} px image"
                f" would be {smallest} px, AlexNet needs at least {LPIPS_MIN_SIDE}: lower loss.lpips_scales"
            )

    def _one(self, x: Tensor) -> list[Tensor]:
        m = self.lpips
        outs = m.net.forward(m.scaling_layer(x))
        return [o / (o.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10) for o in outs]

    def features(self, x: Tensor) -> list[list[Tensor]]:
        return [self._one(halve(x, k)) for k in range(self.scales)]

    def distance(self, fx: list[list[Tensor]], fy: list[list[Tensor]]) -> Tensor:
        total = None
        for sx, sy in zip(fx, fy):
            for lin, a, b in zip(self.lpips.lins, sx, sy):
                d = lin((a - b).pow(2)).float().mean(dim=(1, 2, 3))
                total = d if total is None else total + d
        return total

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.distance(self.features(x), self.features(y))


def build_lpips(kind: str, alexnet_path=None, scales: int = 3, *, seed: int = 0) -> MultiScaleLPIPS:
    """``kind='alex'``: calibrated heads (shipped with the lpips package) + the ImageNet AlexNet
    trunk from ``alexnet_path`` (torchvision's ``alexnet-owt-7be5be79.pth``); nothing downloads.
    ``kind='random'``: random trunk and non-negative random heads (tests; seeded)."""
    import lpips

    with warnings.catch_warnings(), contextlib.redirect_stdout(None):
        warnings.simplefilter("ignore")
        if kind == "random":
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                module = lpips.LPIPS(pretrained=False, net="alex", pnet_rand=True, verbose=False)
                with torch.no_grad():
                    for lin in module.lins:
                        for p in lin.parameters():
                            p.abs_()
        elif kind == "alex":
            module = lpips.LPIPS(pretrained=True, net="alex", pnet_rand=True, verbose=False)
            load_alexnet_trunk(module, alexnet_path)
        else:
            raise VidinvertError(f"config key loss.lpips_net: choose alex or random, got {kind!r}")
    return MultiScaleLPIPS(module, scales)


def load_alexnet_trunk(module: nn.Module, path) -> None:
    """Copy torchvision AlexNet ``features.*`` weights into an ``lpips.LPIPS`` trunk (strict)."""
    sd = read_checkpoint(path)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]

    mapped = alexnet_to_lpips_keys(sd)
    try:
        module.net.load_state_dict(mapped, strict=True)
    except RuntimeError as exc:
        raise VidinvertError(
            f"LPIPS trunk file {path} is not a torchvision AlexNet state dict: {str(exc).splitlines()[0]}"
        ) from None


# ----------------------------------------------------------------------------------------------
# Identity (ArcFace IResNet)
# ----------------------------------------------------------------------------------------------
class IdentityLoss(nn.Module):
    """Multi-layer ArcFace identity loss; images [B,3,H,W] in [-1,1] -> [B] (sum of 5 terms)."""

    def __init__(self, arcface: nn.Module, size: int = 112) -> None:
        super().__init__()
        self.arcface = freeze(arcface)
        self.size = int(size)

    def features(self, x: Tensor) -> list[Tensor]:
        x112 = F.interpolate(x, size=(self.size, self.size), mode="nearest")
        return self.arcface.forward_features(x112)

    def distance(self, fx: Sequence[Tensor], fy: Sequence[Tensor]) -> Tensor:
        return sum(per_sample_cosine_distance(a, b) for a, b in zip(fx, fy))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.distance(self.features(x), self.features(y))


def tiny_identity_network(seed: int = 0, input_size: int = 112) -> nn.Module:
    """A width-reduced random IResNet (widths 8..64, one block per stage, 64-d embedding)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return IResNet((1, 1, 1, 1), (8, 16, 32, 64), 64, input_size=input_size)


# ----------------------------------------------------------------------------------------------
# Face parsing (BiSeNet)
# ----------------------------------------------------------------------------------------------
class ParsingLoss(nn.Module):
    """BiSeNet parsing loss; images [B,3,H,W] in [-1,1] -> [B] (sum over the 3 logit maps)."""

    def __init__(self, bisenet: nn.Module, size: int = 512) -> None:
        super().__init__()
        self.bisenet = freeze(bisenet)
        self.size = int(size)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def prepare(self, x: Tensor) -> Tensor:
        x = torch.clamp(0.5 * x + 0.5, 0.0, 1.0)
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def features(self, x: Tensor) -> list[Tensor]:
        return list(self.bisenet(self.prepare(x))[:3])

    def distance(self, fx: Sequence[Tensor], fy: Sequence[Tensor]) -> Tensor:
        return sum(per_sample_cosine_distance(a, b) for a, b in zip(fx, fy))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.distance(self.features(x), self.features(y))


def build_bisenet(path=None, *, seed: int = 0) -> nn.Module:
    """A 19-class BiSeNet through the project's one loader,
    :func:`vidinvert.face.masks.load_bisenet` (the paste masks use it too): facexlib's
    ``parsing_bisenet.pth`` and the official encoder's ``79999_iter.pth`` both load; ``path``
    None gives random weights drawn from ``seed`` (tests)."""
    return load_bisenet(path, seed=seed)


__all__ = [
    "IdentityLoss",
    "MultiScaleLPIPS",
    "ParsingLoss",
    "build_bisenet",
    "build_lpips",
    "feature_loss",
    "freeze",
    "halve",
    "l2_loss",
    "load_alexnet_trunk",
    "per_sample_cosine_distance",
    "tiny_identity_network",
]
