"""The Feature-Style encoder (Yao et al., official ``fs_encoder_v2`` layout): face -> (w+, F).

The state dict of ``FeatureStyleEncoder()`` has exactly the keys and shapes of the official
``143_enc.pth`` (517 entries, 113,920,704 parameters), so that file loads with ``strict=True``:

- ``conv.0/1/2``: the ArcFace stem (conv3x3, BN, PReLU), ``block_1..4``: the IResNet-50 stages
  (see :mod:`vidinvert.models.iresnet`); at 256 px input they give 64ch@128, 128ch@64, 256ch@32
  and 512ch@16.
- Latent branch: each stage output is adaptive-average-pooled to 3x3, the four are concatenated
  along channels (stage 1 first) to [B, 960, 3, 3] and flattened channel-major to 8640 values;
  ``styles.0..17`` (Linear 8640 -> 512) give the w+ offset [B, 18, 512].
- Feature branch ``content_layer`` on the stage-3 output: BN, conv3x3 (no bias), BN, PReLU,
  conv3x3 stride 2 (no bias), BN -> F [B, 512, 16, 16].

w+ = offset + ``latent_avg`` (the generator checkpoint's average latent, set with
:meth:`FeatureStyleEncoder.set_latent_avg`; it is not part of the encoder's state dict).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidinvert.models.iresnet import BN_EPS, IResNet, make_stage, make_stem

__all__ = ["ENCODER_INPUT_SIZE", "FeatureStyleEncoder", "prepare_encoder_input", "tiny"]

ENCODER_INPUT_SIZE = 256
POOL_SIZE = 3  # each trunk level is average-pooled to 3x3 for the latent branch


class FeatureStyleEncoder(nn.Module):
    """Aligned face [B, 3, 256, 256] -> (w+ [B, n_styles, style_dim], F [B, feature_channels, 16, 16]).

    Args:
        n_styles: rows of w+ (18 for a 1024 generator: 2*log2(size) - 2).
        style_dim: width of each w+ row (512).
        feature_channels: channels of the feature code F (the generator's 16x16 width, 512).
        layers, widths: the IResNet trunk (IResNet-50: (3, 4, 14, 3), (64, 128, 256, 512)).

    Run it in ``eval()`` mode for inference (BatchNorm running statistics, as the official code).
    The input is float RGB in [-1, 1], NCHW; make it from an aligned face with
    :func:`prepare_encoder_input`. Any input side works numerically (adaptive pooling); F has side
    input/16. Works with ``channels_last`` models and inputs and under autocast.
    """

    def __init__(
        self,
        n_styles: int = 18,
        style_dim: int = 512,
        feature_channels: int = 512,
        layers: Sequence[int] = (3, 4, 14, 3),
        widths: Sequence[int] = (64, 128, 256, 512),
    ) -> None:
        super().__init__()
        if len(layers) != 4 or len(widths) != 4:
            raise ValueError(f"the encoder trunk needs 4 stages, got layers={layers} widths={widths}")
        self.n_styles = int(n_styles)
        self.style_dim = int(style_dim)
        self.feature_channels = int(feature_channels)
        self.layers = tuple(int(n) for n in layers)
        self.widths = tuple(int(w) for w in widths)
        w0, w1, w2, w3 = self.widths
        self.conv = make_stem(w0)
        self.block_1 = make_stage(w0, w0, layers[0])
        self.block_2 = make_stage(w0, w1, layers[1])
        self.block_3 = make_stage(w1, w2, layers[2])
        self.block_4 = make_stage(w2, w3, layers[3])
        fc = self.feature_channels
        self.content_layer = nn.Sequential(
            nn.BatchNorm2d(w2, eps=BN_EPS),
            nn.Conv2d(w2, fc, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(fc, eps=BN_EPS),
            nn.PReLU(fc),
            nn.Conv2d(fc, fc, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(fc, eps=BN_EPS),
        )
        pooled = sum(self.widths) * POOL_SIZE * POOL_SIZE  # 960 * 9 = 8640
        self.styles = nn.ModuleList(nn.Linear(pooled, style_dim) for _ in range(n_styles))
        self.reset_non_persistent_buffers()

    def reset_non_persistent_buffers(self, device: torch.device | str | None = None) -> None:
        """(Re)create ``latent_avg`` (not in the state dict) as zeros [n_styles, style_dim] float32
        on ``device`` (the current default device when None). A model built on the ``meta``
        device gets it back this way after its weights are assigned."""
        zeros = torch.zeros(self.n_styles, self.style_dim, device=device)
        self.register_buffer("latent_avg", zeros, persistent=False)

    @torch.no_grad()
    def set_latent_avg(self, latent_avg: Tensor) -> None:
        """Set the average latent added to the offsets: (style_dim,), (1, style_dim) or (n_styles, style_dim).

        A single row is broadcast to all ``n_styles`` rows (rosinality files store (512,), pSp files
        (18, 512)). The value is copied into the buffer's device and dtype.
        """
        t = torch.as_tensor(latent_avg)
        ok = (t.ndim == 1 and t.shape[0] == self.style_dim) or (
            t.ndim == 2 and t.shape[0] in (1, self.n_styles) and t.shape[1] == self.style_dim
        )
        if not ok:
            raise ValueError(
                f"latent_avg must have shape ({self.style_dim},) or ({self.n_styles}, {self.style_dim}),"
                f" got {tuple(t.shape)}"
            )
        self.latent_avg.copy_(t.reshape(-1, self.style_dim).expand(self.n_styles, self.style_dim))

    @torch.no_grad()
    def load_arcface_trunk(self, arcface: IResNet) -> None:
        """Copy an ArcFace IResNet's stem and four stages into the trunk (``conv``, ``block_1..4``).

        This is the official initialisation before training (the constructor copies
        ``backbone.pth``'s children); ``content_layer`` and ``styles`` are left as they are.
        Raises RuntimeError (torch's strict-load message) when the architectures differ.
        """
        pairs = [
            (self.conv[0], arcface.conv1),
            (self.conv[1], arcface.bn1),
            (self.conv[2], arcface.prelu),
            (self.block_1, arcface.layer1),
            (self.block_2, arcface.layer2),
            (self.block_3, arcface.layer3),
            (self.block_4, arcface.layer4),
        ]
        for dst, src in pairs:
            dst.load_state_dict(src.state_dict(), strict=True)

    def forward_offsets(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x [B, 3, 256, 256] RGB in [-1, 1] -> (w_delta [B, n_styles, style_dim], F [B, C, 16, 16]).

        ``w_delta`` is the raw latent output, without ``latent_avg``.
        """
        x1 = self.block_1(self.conv(x))
        x2 = self.block_2(x1)
        x3 = self.block_3(x2)
        x4 = self.block_4(x3)
        feature = self.content_layer(x3)
        levels = [F.adaptive_avg_pool2d(t, POOL_SIZE) for t in (x1, x2, x3, x4)]
        # [B, 960, 3, 3] -> [B, 8640] in (channel, row, column) order; flatten (a reshape) keeps
        # that logical order whatever the memory format.
        pooled = torch.cat(levels, dim=1).flatten(1)
        w_delta = torch.stack([style(pooled) for style in self.styles], dim=1)
        return w_delta, feature

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x [B, 3, 256, 256] RGB in [-1, 1] -> (w_plus = w_delta + latent_avg, F [B, C, 16, 16])."""
        w_delta, feature = self.forward_offsets(x)
        return w_delta + self.latent_avg, feature


def prepare_encoder_input(face: Tensor, size: int = ENCODER_INPUT_SIZE) -> Tensor:
    """Resize an aligned face to the encoder input, exactly as the official code for 1024 faces.

    face: [B, 3, S, S] float RGB in [-1, 1] -> [B, 3, 256, 256], same dtype and device.

    Rule: while S >= 2*size and S is even, downscale by ``F.interpolate(scale_factor=0.5,
    mode='bilinear', align_corners=False)`` (no antialias). A 1024 face thus gets the official two
    successive halvings, which equal ``avg_pool2d(face, 4)`` (each halving averages 2x2 blocks).
    A remaining side other than ``size`` is then resized bilinearly to ``size``: with
    ``antialias=True`` when downscaling (a non-power-of-two factor, e.g. 768 -> 384 -> 256), plain
    bilinear when upscaling (S < 256). A 256 face is returned unchanged.
    """
    if face.ndim != 4 or face.shape[-1] != face.shape[-2]:
        raise ValueError(f"expected a square face batch [B,3,S,S], got shape {tuple(face.shape)}")
    x = face
    side = x.shape[-1]
    while side >= 2 * size and side % 2 == 0:
        x = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
        side = x.shape[-1]
    if side != size:
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", align_corners=False, antialias=side > size
        )
    return x


@torch.no_grad()
def _init_random_(model: FeatureStyleEncoder, generator: torch.Generator) -> None:
    """Fill every parameter and BN statistic from ``generator`` with O(1)-stable values.

    Convs N(0, 1/fan_in); BN weight ~1 (the residual branch's last BN ~0.35, keeping the sum of
    un-normalised residual additions bounded), small bias/mean, variance ~1; PReLU ~0.25;
    style linears scaled for an offset of std ~0.5.
    """

    def normal(t: Tensor, std: float, mean: float = 0.0) -> None:
        t.copy_(torch.randn(t.shape, generator=generator) * std + mean)

    for name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d):
            normal(mod.weight, 1.0 / math.sqrt(mod.weight[0].numel()))
        elif isinstance(mod, nn.BatchNorm2d):
            gain = 0.35 if name.endswith("bn3") else 1.0
            normal(mod.weight, 0.1 * gain, gain)
            normal(mod.bias, 0.05)
            normal(mod.running_mean, 0.05)
            mod.running_var.copy_(1.0 + 0.2 * torch.randn(mod.running_var.shape, generator=generator).abs())
        elif isinstance(mod, nn.PReLU):
            normal(mod.weight, 0.05, 0.25)
        elif isinstance(mod, nn.Linear):
            normal(mod.weight, 0.5 / (math.sqrt(mod.in_features) * 0.45))
            normal(mod.bias, 0.1)


def tiny(
    seed: int = 0, n_styles: int = 10, style_dim: int = 64, feature_channels: int = 64
) -> FeatureStyleEncoder:
    """A width-reduced encoder with RANDOM weights, for tests and demos: its output is meaningless.

    Trunk widths (8, 16, 32, 64), one block per stage; defaults pair with
    ``vidinvert.models.stylegan2.tiny()`` (64 px, n_latent 10, style_dim 64, 64 channels at 16x16).
    Input [B, 3, 256, 256] -> (w+ [B, 10, 64], F [B, 64, 16, 16]). Deterministic per ``seed``;
    ``latent_avg`` is zero until :meth:`FeatureStyleEncoder.set_latent_avg`. Returned in eval mode.
    """
    model = FeatureStyleEncoder(
        n_styles=n_styles,
        style_dim=style_dim,
        feature_channels=feature_channels,
        layers=(1, 1, 1, 1),
        widths=(8, 16, 32, 64),
    )
    _init_random_(model, torch.Generator().manual_seed(int(seed)))
    return model.eval()
