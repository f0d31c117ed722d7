"""ArcFace IResNet (insightface ``arcface_torch`` layout), the identity network and the encoder's trunk.

The state dict of :func:`iresnet50` has exactly the keys and shapes of the ArcFace ``backbone.pth``
that the official Feature-Style encoder ships (475 entries, 43,590,848 parameters), so that file loads
with ``strict=True``. The same building blocks (:func:`make_stem`, :func:`make_stage`) form the
Feature-Style encoder's trunk in :mod:`vidinvert.models.fs_encoder`.

Layout: stem = conv3x3 (stride 1, no bias), BN, PReLU; four stages of :class:`IBasicBlock`, each
starting with a stride-2 block with a 1x1 conv + BN shortcut; then BN, dropout (p=0), flatten,
``fc`` (512*7*7 -> 512) and a ``features`` BatchNorm1d. Every BatchNorm uses eps 1e-5.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "IBasicBlock",
    "IResNet",
    "iresnet50",
    "make_stage",
    "make_stem",
    "prepare_arcface_input",
]

BN_EPS = 1e-5


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """Pre-activation-style residual block: BN, conv3x3, BN, PReLU, conv3x3(stride), BN, + shortcut.

    The shortcut is ``downsample`` (conv1x1(stride) + BN) when the stride or the width changes,
    else the identity. There is no activation after the addition.

    Input [B, in_channels, H, W] float -> output [B, channels, H/stride, W/stride].
    """

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels, eps=BN_EPS)
        self.conv1 = _conv3x3(in_channels, channels)
        self.bn2 = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.prelu = nn.PReLU(channels)
        self.conv2 = _conv3x3(channels, channels, stride)
        self.bn3 = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(channels, eps=BN_EPS),
            )

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.conv1(self.bn1(x))
        out = self.prelu(self.bn2(out))
        out = self.bn3(self.conv2(out))
        return out + shortcut


def make_stem(width: int = 64) -> nn.Sequential:
    """The 3-channel stem: Sequential(conv3x3 stride 1 no bias, BN, PReLU(width)).

    [B, 3, H, W] -> [B, width, H, W]. Its keys are ``0.weight``, ``1.*``, ``2.weight``.
    """
    return nn.Sequential(_conv3x3(3, width), nn.BatchNorm2d(width, eps=BN_EPS), nn.PReLU(width))


def make_stage(in_channels: int, channels: int, blocks: int, stride: int = 2) -> nn.Sequential:
    """A stage of ``blocks`` :class:`IBasicBlock` s; the first one strides and has the 1x1 shortcut.

    [B, in_channels, H, W] -> [B, channels, H/stride, W/stride]. Keys ``0.*`` .. ``{blocks-1}.*``.
    """
    mods = [IBasicBlock(in_channels, channels, stride)]
    mods += [IBasicBlock(channels, channels) for _ in range(blocks - 1)]
    return nn.Sequential(*mods)


class IResNet(nn.Module):
    """ArcFace IResNet: face crop -> 512-d identity embedding, plus the four stage outputs.

    Args:
        layers: blocks per stage; (3, 4, 14, 3) is IResNet-50.
        widths: channels per stage; the stem has ``widths[0]`` channels.
        embedding_size: length of the embedding.
        input_size: side of the square input the ``fc`` layer is sized for (112 for ArcFace);
            ``fc`` takes ``widths[-1] * (input_size/16)**2`` values.

    Input: [B, 3, 112, 112] float RGB in [-1, 1] (``(uint8/255 - 0.5) / 0.5``). The official
    identity loss makes it from the whole aligned 1024 face with ``F.interpolate(x, (112, 112))``
    (mode nearest, no crop): see :func:`prepare_arcface_input`. Run it in ``eval()`` mode.
    Stage outputs at 112 px input: [B,64,56,56], [B,128,28,28], [B,256,14,14], [B,512,7,7].
    """

    def __init__(
        self,
        layers: Sequence[int] = (3, 4, 14, 3),
        widths: Sequence[int] = (64, 128, 256, 512),
        embedding_size: int = 512,
        *,
        input_size: int = 112,
    ) -> None:
        super().__init__()
        if len(layers) != 4 or len(widths) != 4:
            raise ValueError(f"IResNet needs 4 stages, got layers={layers} widths={widths}")
        if input_size % 16:
            raise ValueError(f"IResNet input_size must be a multiple of 16, got {input_size}")
        self.layers = tuple(int(n) for n in layers)
        self.widths = tuple(int(w) for w in widths)
        self.embedding_size = int(embedding_size)
        self.input_size = int(input_size)
        self.conv1 = _conv3x3(3, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0], eps=BN_EPS)
        self.prelu = nn.PReLU(widths[0])
        ins = (widths[0],) + tuple(widths[:3])
        self.layer1 = make_stage(ins[0], widths[0], layers[0])
        self.layer2 = make_stage(ins[1], widths[1], layers[1])
        self.layer3 = make_stage(ins[2], widths[2], layers[2])
        self.layer4 = make_stage(ins[3], widths[3], layers[3])
        self.bn2 = nn.BatchNorm2d(widths[3], eps=BN_EPS)
        self.dropout = nn.Dropout(p=0.0)
        side = input_size // 16
        self.fc = nn.Linear(widths[3] * side * side, embedding_size)
        self.features = nn.BatchNorm1d(embedding_size, eps=BN_EPS)

    def _stages(self, x: Tensor) -> list[Tensor]:
        x = self.prelu(self.bn1(self.conv1(x)))
        outs = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            outs.append(x)
        return outs

    def _head(self, x: Tensor) -> Tensor:
        x = torch.flatten(self.bn2(x), 1)  # reshape: any memory format gives the (C, H, W) order
        return self.features(self.fc(self.dropout(x)))

    def forward(self, x: Tensor) -> Tensor:
        """[B, 3, 112, 112] RGB in [-1, 1] -> embedding [B, embedding_size] (not normalised)."""
        return self._head(self._stages(x)[-1])

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """[B, 3, 112, 112] RGB in [-1, 1] -> [layer1, layer2, layer3, layer4, embedding].

        These are the five terms of the official multi-layer identity loss (1 - cosine of each
        flattened output between two images).
        """
        outs = self._stages(x)
        return outs + [self._head(outs[-1])]


def iresnet50(**kwargs) -> IResNet:
    """The ArcFace IResNet-50 of the official ``backbone.pth`` (random init; load the weights)."""
    return IResNet((3, 4, 14, 3), (64, 128, 256, 512), 512, **kwargs)


def prepare_arcface_input(image: Tensor, size: int = 112) -> Tensor:
    """The official identity-loss input: the whole image resized to ``size`` with mode nearest.

    image: [B, 3, S, S] float RGB in [-1, 1] (e.g. an aligned 1024 face) -> [B, 3, size, size].
    No crop and no antialias, as the official ``Trainer.IDloss``; other resize modes move the
    ArcFace stage outputs by 30-40 % (relative L2).
    """
    if image.ndim != 4:
        raise ValueError(f"expected an image batch [B,3,H,W], got shape {tuple(image.shape)}")
    return F.interpolate(image, size=(size, size), mode="nearest")
