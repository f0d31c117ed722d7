"""StyleGAN2 generator (rosinality / pSp layout) with Feature-Style encoder feature injection.

The state dict has exactly the keys and shapes of rosinality's ``Generator(size, style_dim, n_mlp,
channel_multiplier)`` (the official FFHQ 1024 config-f checkpoint loads with ``strict=True``), including
the ``noises.noise_i`` buffers and the FIR ``kernel`` buffers.

Synthesis runs the batched non-fused modulated convolution of :mod:`vidinvert.models.ops`, channels-last,
with in-place epilogues in inference mode. ``Generator.grouped_modconv = True`` switches every layer to the
per-sample grouped form (the reference, slower on batches).

Activations ``outs`` are numbered as in the official code: ``outs[0]`` is the 4x4 constant, ``outs[c + 1]``
the output of styled convolution ``c`` (``conv1``, then ``convs[0..]``). A feature code injected at index
``K`` replaces the input of convolution ``K`` by ``(1 - s) * outs[K] + s * F``; the RGB skip branch up to
that point keeps using the w-driven activations, and ``outs[K]`` itself (G_K(w)) is reported unreplaced.

``style_offset`` (StyleSpace edits) adds a flat offset to every style layer's affine output; the layout
of that vector is described in :mod:`vidinvert.models.stylespace`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidinvert.models import stylegan2_fast
from vidinvert.models.ops import (
    LRELU_SLOPE,
    SQRT2,
    bias_noise_lrelu,
    fir_kernel,
    modulated_conv2d,
    modulated_conv2d_grouped,
    no_autocast,
    upsample2d,
    weight_square_sums,
)

BLUR_TAPS = (1, 3, 3, 1)


def default_channels(size: int, channel_multiplier: int = 2) -> dict[int, int]:
    """rosinality's channel table: 512 up to 32 px, then ``16384 * channel_multiplier / res``."""
    out = {}
    res = 4
    while res <= size:
        out[res] = 512 if res <= 32 else 16384 * channel_multiplier // res
        res *= 2
    return out


class PixelNorm(nn.Module):
    """``x / sqrt(mean(x^2 over dim 1) + 1e-8)``."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    """Equalized-learning-rate linear layer (weight ``randn / lr_mul``, runtime scale ``lr_mul / sqrt(in)``),
    optionally followed by the fused bias + leaky ReLU (slope 0.2, gain sqrt(2)). Computes in float32."""

    def __init__(self, in_dim: int, out_dim: int, *, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activate: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_dim, in_dim))
        self.bias = nn.Parameter(torch.empty(out_dim))
        self.bias_init, self.lr_mul, self.activate = float(bias_init), float(lr_mul), activate
        self.scale = lr_mul / math.sqrt(in_dim)

    def forward(self, x: Tensor) -> Tensor:
        with no_autocast(x.device):
            # (x @ W^T) * scale: the same product as x @ (W * scale)^T, without rescaling the weight each call.
            out = F.linear(x.float(), self.weight.float()) * self.scale + self.bias.float() * self.lr_mul
            if self.activate:
                return F.leaky_relu(out, LRELU_SLOPE) * SQRT2
            return out


class FIRKernel(nn.Module):
    """Holds a FIR ``kernel`` buffer [k, k] (the checkpoint's ``blur.kernel`` / ``upsample.kernel``)."""

    def __init__(self, taps: Sequence[float], gain: float) -> None:
        super().__init__()
        self.taps, self.gain = tuple(taps), gain
        self.register_buffer("kernel", fir_kernel(taps, gain))


class ModulatedConv(nn.Module):
    """Weights ``weight`` [1, O, I, k, k] (N(0,1), equalized-lr scale 1/sqrt(I*k*k)), style affine
    ``modulation`` (bias init 1), and for upsampling layers the ``blur`` FIR kernel."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, style_dim: int, *, demodulate: bool = True,
                 upsample: bool = False, blur_taps: Sequence[float] = BLUR_TAPS) -> None:
        super().__init__()
        self.in_ch, self.out_ch, self.kernel_size = in_ch, out_ch, kernel_size
        self.demodulate, self.upsample = demodulate, upsample
        self.weight = nn.Parameter(torch.empty(1, out_ch, in_ch, kernel_size, kernel_size))
        if upsample:
            self.blur = FIRKernel(blur_taps, gain=4.0)
        self.modulation = EqualLinear(style_dim, in_ch, bias_init=1.0)
        self.scale = 1.0 / math.sqrt(in_ch * kernel_size * kernel_size)
        self.grouped = False
        self._derived: tuple[tuple, Tensor, Tensor] | None = None

    def _apply(self, fn, *args, **kwargs):
        self._derived = None
        return super()._apply(fn, *args, **kwargs)

    def derived_weights(self, memory_format: torch.memory_format = torch.contiguous_format
                        ) -> tuple[Tensor, Tensor]:
        """Weight-only terms: the kernel square sums [O, I] and the weight as the convolution takes it
        ([O, I, k, k], or [I, O, k, k] transposed for upsampling) in ``memory_format``. Cached between calls
        (keyed on the weight's storage, version, dtype, device and grad mode) unless autograd needs them."""
        w = self.weight[0]
        if torch.is_grad_enabled() and self.weight.requires_grad:
            return weight_square_sums(w), (w.transpose(0, 1) if self.upsample else w)
        # grad mode in the key: terms cached under inference_mode cannot be saved for a backward pass
        key = (self.weight.data_ptr(), self.weight._version, self.weight.dtype, self.weight.device, memory_format,
               torch.is_grad_enabled())
        if self._derived is None or self._derived[0] != key:
            wc = (w.transpose(0, 1) if self.upsample else w).contiguous(memory_format=memory_format)
            self._derived = (key, weight_square_sums(w), wc)
        return self._derived[1], self._derived[2]

    def styles(self, w: Tensor, style_offset: Tensor | None = None) -> Tensor:
        """Per-sample input-channel styles, float32 [B, I], with the equalized-lr scale folded in.
        ``style_offset`` [B|1, I] is added to the affine's output s (StyleSpace) before the scale."""
        s = self.modulation(w)
        if style_offset is not None:
            s = s + style_offset.to(device=s.device, dtype=s.dtype)
        return s * self.scale

    def forward(self, x: Tensor, w: Tensor, *, inplace_input: bool = False,
                style_offset: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """x [B, I, H, W], w [B, style_dim] -> (conv output, demodulation coefficients [B, O] or None)."""
        s = self.styles(w, style_offset)
        kernel = self.blur.kernel if self.upsample else None
        if self.grouped:
            out = modulated_conv2d_grouped(x, self.weight[0], s, demodulate=self.demodulate,
                                           upsample=self.upsample, blur_kernel=kernel)
            return out, None
        fmt = torch.channels_last if _is_channels_last(x) else torch.contiguous_format
        wsq, wc = self.derived_weights(fmt)
        return modulated_conv2d(x, self.weight[0], s, demodulate=self.demodulate, upsample=self.upsample,
                                blur_kernel=kernel, inplace_input=inplace_input, weight_sq=wsq, conv_weight=wc)


class NoiseInjection(nn.Module):
    """Learned per-layer noise strength ``weight`` [1]."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(1))


class BiasLeakyReLU(nn.Module):
    """Learned bias ``bias`` [C] of the fused bias + leaky ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.empty(channels))


class StyledConv(nn.Module):
    """Modulated 3x3 conv (optionally upsampling 2x) -> + noise -> + bias -> leaky ReLU * sqrt(2)."""

    def __init__(self, in_ch: int, out_ch: int, style_dim: int, *, upsample: bool = False,
                 blur_taps: Sequence[float] = BLUR_TAPS) -> None:
        super().__init__()
        self.conv = ModulatedConv(in_ch, out_ch, 3, style_dim, upsample=upsample, blur_taps=blur_taps)
        self.noise = NoiseInjection()
        self.activate = BiasLeakyReLU(out_ch)
        self.fast = True  # the bf16 CPU fast path where it applies (False: the reference path only)

    def forward(self, x: Tensor, w: Tensor, noise: Tensor | None, *, inplace_input: bool = False,
                style_offset: Tensor | None = None) -> Tensor:
        """x [B, I, H, W] -> [B, O, H', W'] in x's dtype (float16: clamped to +-256). bf16 on the CPU
        without autograd takes :mod:`~vidinvert.models.stylegan2_fast` unless ``fast`` is False."""
        if self.fast and not self.conv.grouped and stylegan2_fast.applies(x):
            out = stylegan2_fast.styled_conv(self, x, w, noise, style_offset)
            if out is not None:
                return out
        out, dcoefs = self.conv(x, w, inplace_input=inplace_input, style_offset=style_offset)
        return bias_noise_lrelu(out, self.activate.bias, dcoefs=dcoefs, noise=noise,
                                noise_strength=self.noise.weight, inplace=not torch.is_grad_enabled())


class ToRGB(nn.Module):
    """Modulated 1x1 conv to RGB (no demodulation) + ``bias`` [1, 3, 1, 1] + upsampled skip.

    The style is folded into the tiny per-sample 3xC weight (one convolution / batched matmul, no pass
    over the activations); the RGB sum is kept in float32."""

    def __init__(self, in_ch: int, style_dim: int, *, upsample: bool = True,
                 blur_taps: Sequence[float] = BLUR_TAPS) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.empty(1, 3, 1, 1))
        if upsample:
            self.upsample = FIRKernel(blur_taps, gain=4.0)
        self.conv = ModulatedConv(in_ch, 3, 1, style_dim, demodulate=False)

    def forward(self, x: Tensor, w: Tensor, skip: Tensor | None = None, style_offset: Tensor | None = None) -> Tensor:
        """x [B, C, H, W], w [B, style_dim], skip [B, 3, H/2, W/2] float32 -> [B, 3, H, W] float32."""
        s = self.conv.styles(w, style_offset)
        if self.conv.grouped:
            out = modulated_conv2d_grouped(x, self.conv.weight[0], s, demodulate=False)
        else:
            wmod = self.conv.weight[0, :, :, 0, 0].float()[None] * s[:, None, :]  # [B, 3, C]
            out = _pointwise_per_sample(x, wmod.to(x.dtype))
        with no_autocast(x.device):
            if torch.is_grad_enabled():
                out = out.float() + self.bias.float()
                if skip is not None:
                    out = out + upsample2d(skip.float(), self.upsample.kernel.float())
                return out
            out = out.float().add_(self.bias.float())  # out is a fresh temporary: sum in place
            if skip is not None:
                out.add_(upsample2d(skip.float(), self.upsample.kernel.float()))
        return out


def _is_channels_last(x: Tensor) -> bool:
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def _pointwise_per_sample(x: Tensor, wmod: Tensor) -> Tensor:
    """Per-sample 1x1 convolution: x [B, C, H, W], wmod [B, O, C] -> [B, O, H, W]."""
    b, c, h, w = x.shape
    if b == 1:
        return F.conv2d(x, wmod[0, :, :, None, None])
    if x.is_contiguous(memory_format=torch.channels_last):
        y = torch.bmm(x.permute(0, 2, 3, 1).reshape(b, h * w, c), wmod.transpose(1, 2))
        return y.reshape(b, h, w, -1).permute(0, 3, 1, 2)
    return torch.bmm(wmod, x.reshape(b, c, h * w)).reshape(b, -1, h, w)


class ConstantInput(nn.Module):
    """The learned 4x4 constant ``input`` [1, C, 4, 4]."""

    def __init__(self, channels: int, size: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.empty(1, channels, size, size))


class Generator(nn.Module):
    """StyleGAN2 synthesis + mapping network, rosinality key layout.

    Args: ``size`` (power of two >= 4), ``style_dim``, ``n_mlp`` mapping layers, ``channel_multiplier``,
    ``lr_mlp`` (mapping lr multiplier), ``channels`` (overrides the table {4..32: 512, 64: 256*cm, 128:
    128*cm, 256: 64*cm, 512: 32*cm, 1024: 16*cm}; must name every resolution 4..size).
    Attributes: ``n_latent = 2*log2(size) - 2`` rows of w+, ``num_layers = n_latent - 1`` styled convs and
    noise maps, ``channels``, ``memory_format`` (activation layout, channels-last by default),
    ``grouped_modconv`` (reference per-sample path).
    Parameters are randomly initialised (rosinality's native init); load a checkpoint to use it.
    """

    def __init__(self, size: int, style_dim: int = 512, n_mlp: int = 8, channel_multiplier: int = 2,
                 lr_mlp: float = 0.01, channels: dict[int, int] | None = None) -> None:
        super().__init__()
        log_size = int(round(math.log2(size))) if size > 0 else 0
        if size < 4 or 2 ** log_size != size:
            raise ValueError(f"generator size must be a power of two >= 4, got {size}")
        chans = default_channels(size, channel_multiplier) if channels is None else dict(channels)
        missing = [2 ** i for i in range(2, log_size + 1) if 2 ** i not in chans]
        if missing:
            raise ValueError(f"channels must name every resolution 4..{size}; missing {missing}")
        self.size, self.style_dim, self.n_mlp, self.lr_mlp = size, style_dim, n_mlp, lr_mlp
        self.channels = {r: chans[r] for r in sorted(chans) if r <= size}
        self.log_size = log_size
        self.num_layers = (log_size - 2) * 2 + 1
        self.n_latent = log_size * 2 - 2
        self.memory_format = torch.channels_last

        self.style = nn.Sequential(PixelNorm(), *[
            EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activate=True) for _ in range(n_mlp)])
        c4 = self.channels[4]
        self.input = ConstantInput(c4)
        self.conv1 = StyledConv(c4, c4, style_dim)
        self.to_rgb1 = ToRGB(c4, style_dim, upsample=False)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        in_ch = c4
        for i in range(3, log_size + 1):
            out_ch = self.channels[2 ** i]
            self.convs.append(StyledConv(in_ch, out_ch, style_dim, upsample=True))
            self.convs.append(StyledConv(out_ch, out_ch, style_dim))
            self.to_rgbs.append(ToRGB(out_ch, style_dim))
            in_ch = out_ch
        self.noises = nn.Module()
        for i in range(self.num_layers):
            res = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise_{i}", torch.empty(1, 1, res, res))
        self.reset_parameters()

    # ----------------------------------------------------------------------------------------- setup
    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None, *, torgb_gain: float = 1.0,
                         noise_strength: float = 0.0) -> None:
        """Native init: equalized-lr weights N(0,1) (mapping ``/ lr_mul``; ToRGB ``* torgb_gain``),
        modulation bias 1, other biases 0, noise strengths ``noise_strength``, noise maps N(0,1),
        constant N(0,1), FIR kernels [1,3,3,1]. Deterministic given ``generator`` (a CPU torch.Generator)."""

        def randn_(t: Tensor, std: float = 1.0) -> None:
            if t.device.type == "meta":
                return
            t.copy_(torch.randn(t.shape, generator=generator) * std)

        for m in self.modules():
            if isinstance(m, EqualLinear):
                randn_(m.weight, 1.0 / m.lr_mul)
                m.bias.fill_(m.bias_init)
            elif isinstance(m, FIRKernel):
                if m.kernel.device.type != "meta":
                    m.kernel.copy_(fir_kernel(m.taps, m.gain))
            elif isinstance(m, ToRGB):
                m.bias.zero_()
                randn_(m.conv.weight, torgb_gain)
            elif isinstance(m, StyledConv):
                randn_(m.conv.weight)
                m.noise.weight.fill_(noise_strength)
                m.activate.bias.zero_()
            elif isinstance(m, ConstantInput):
                randn_(m.input)
        for buf in self.stored_noise():
            randn_(buf)

    @property
    def grouped_modconv(self) -> bool:
        """True when every modulated conv runs the per-sample grouped reference form."""
        return all(m.grouped for m in self.modules() if isinstance(m, ModulatedConv))

    @grouped_modconv.setter
    def grouped_modconv(self, value: bool) -> None:
        for m in self.modules():
            if isinstance(m, ModulatedConv):
                m.grouped = bool(value)

    @property
    def fast_path(self) -> bool:
        """True when bf16 on the CPU may take :mod:`~vidinvert.models.stylegan2_fast` (False: reference)."""
        return all(m.fast for m in self.modules() if isinstance(m, StyledConv))

    @fast_path.setter
    def fast_path(self, value: bool) -> None:
        for m in self.modules():
            if isinstance(m, StyledConv):
                m.fast = bool(value)

    def extra_repr(self) -> str:
        return f"size={self.size}, style_dim={self.style_dim}, n_latent={self.n_latent}"

    # ------------------------------------------------------------------------------------ latents
    def mapping(self, z: Tensor) -> Tensor:
        """z [B, style_dim] -> w [B, style_dim] float32 (PixelNorm + n_mlp EqualLinear/lrelu)."""
        with no_autocast(z.device):
            return self.style(z.float())

    @torch.no_grad()
    def mean_latent(self, n: int = 10_000, seed: int = 0, chunk: int = 4096) -> Tensor:
        """Mean of the mapping over ``n`` z ~ N(0, I) drawn from a CPU torch.Generator seeded ``seed``.
        Returns float32 [style_dim] on the generator's device."""
        device = self.input.input.device
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.style_dim, generator=g)
        total = torch.zeros(self.style_dim, dtype=torch.float64, device=device)
        for i in range(0, n, chunk):
            total += self.mapping(z[i:i + chunk].to(device)).double().sum(0)
        return (total / n).float()

    def stored_noise(self) -> list[Tensor]:
        """The checkpoint's fixed noise maps ``noises.noise_i``, [1, 1, r, r] each (num_layers of them)."""
        return [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]

    def make_noise(self, batch: int = 1, generator: torch.Generator | None = None) -> list[Tensor]:
        """Fresh N(0,1) noise maps [batch, 1, r, r] (drawn on CPU from ``generator``, moved to the model)."""
        dev = self.input.input.device
        return [torch.randn(batch, *n.shape[1:], generator=generator).to(dev) for n in self.stored_noise()]

    # ---------------------------------------------------------------------------------- synthesis
    def forward(self, w_plus: Tensor, feature: Tensor | None = None, *, feature_index: int = 5,
                feature_scale: float | Tensor = 1.0, noise: Sequence[Tensor] | None = None,
                return_features: bool = False, rgb_size: int | None = None,
                style_offset: Tensor | None = None) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Synthesise images from w+ (truncation 1, ``input_is_latent`` semantics).

        w_plus: [B, n_latent, style_dim] (or [B, style_dim], repeated). feature: optional feature code
        [B, C_K, r_K, r_K] (C_K = channels at index K, r_K = 16 for K = 5), injected at ``feature_index``
        as ``(1 - s) * x + s * feature`` with ``s = feature_scale`` (float or [B] tensor). noise: None for
        the stored buffers, or ``num_layers`` tensors broadcastable to [B, 1, r, r] (an entry None: no noise).
        Run under ``torch.no_grad()``/``inference_mode()`` for the in-place fast path; grad mode works too.
        Returns the image [B, 3, size, size] float32 RGB, roughly in [-1, 1]; with ``return_features`` also
        ``outs`` (n_latent activations, w-driven at ``feature_index``; possibly channels-last).
        rgb_size: stop early and return the skip branch's RGB image at this resolution (a power of two,
        4..size), [B, 3, rgb_size, rgb_size] float32: the generator's own low-resolution output (what the
        full image is upsampled from plus finer detail); later layers are not run. None: the full image.
        style_offset: StyleSpace offsets added to every style layer's affine output s, float [B|1, N] in
        the layout of :mod:`vidinvert.models.stylespace` (the layers of :meth:`style_modules`, in order,
        N = their channels: 9088 at 1024); None: none.
        """
        if feature is not None and not 0 <= feature_index < self.num_layers:
            raise ValueError(f"feature_index must be in [0, {self.num_layers - 1}], got {feature_index}")
        if rgb_size is not None and (rgb_size not in self.channels or rgb_size > self.size):
            raise ValueError(f"rgb_size must be a power of two in [4, {self.size}], got {rgb_size}")
        image, outs = self._synthesize(w_plus, noise, feature=feature, feature_index=feature_index,
                                       feature_scale=feature_scale, keep_outs=return_features, rgb_size=rgb_size,
                                       style_offset=style_offset)
        image = image.contiguous()
        return (image, outs) if return_features else image

    def forward_until(self, w_plus: Tensor, index: int = 5, noise: Sequence[Tensor] | None = None,
                      style_offset: Tensor | None = None) -> Tensor:
        """G_K(w): ``outs[index]`` computed from w alone, stopping there (no later layer, no RGB branch).
        w_plus: [B, n_latent, style_dim]; style_offset: as for :meth:`forward` (only the conv layers
        before ``index`` matter). Returns [B, C, r, r] contiguous, in the activation dtype."""
        if not 0 <= index <= self.num_layers:
            raise ValueError(f"index must be in [0, {self.num_layers}], got {index}")
        out, _ = self._synthesize(w_plus, noise, stop_at=index, style_offset=style_offset)
        return out.contiguous()

    def style_modules(self) -> list[tuple[int, str, ModulatedConv]]:
        """Every modulated convolution with the w+ row that drives it, in the order synthesis runs them:
        ``(row, qualified name, module)``. Styled convolution ``c`` (``conv1``, then ``convs[c-1]``) takes
        row ``c`` (0..num_layers-1); ToRGB ``k`` (``to_rgb1``, then ``to_rgbs[k-1]``) takes row ``2k+1``,
        so the last row (n_latent-1) drives only the last ToRGB."""
        convs = [("conv1", self.conv1)] + [(f"convs.{i}", m) for i, m in enumerate(self.convs)]
        rgbs = [("to_rgb1", self.to_rgb1)] + [(f"to_rgbs.{i}", m) for i, m in enumerate(self.to_rgbs)]
        out: list[tuple[int, str, ModulatedConv]] = []
        for c, (name, m) in enumerate(convs):
            out.append((c, f"{name}.conv", m.conv))
            if c % 2 == 0:
                rname, rgb = rgbs[c // 2]
                out.append((c + 1, f"{rname}.conv", rgb.conv))
        return out

    def _style_offsets(self, offset: Tensor | None, batch: int) -> list[Tensor | None]:
        """A flat StyleSpace offset [B|1, N] -> one [B|1, C_i] slice per style layer (None: all None)."""
        if offset is None:
            return [None] * (self.num_layers + (self.num_layers + 1) // 2)
        sizes = [m.in_ch for _, _, m in self.style_modules()]
        if offset.dim() != 2 or offset.shape[1] != sum(sizes) or offset.shape[0] not in (1, batch):
            raise ValueError(f"style_offset must be [B|1, {sum(sizes)}], got {tuple(offset.shape)}")
        return list(torch.split(offset, sizes, dim=1))

    def _latent(self, w: Tensor) -> Tensor:
        if w.dim() == 2:
            w = w[:, None].expand(-1, self.n_latent, -1)
        if w.dim() != 3 or w.shape[1] != self.n_latent or w.shape[2] != self.style_dim:
            raise ValueError(f"w+ must be [B, {self.n_latent}, {self.style_dim}], got {tuple(w.shape)}")
        return w

    def _noise(self, noise: Sequence[Tensor] | None) -> list[Tensor]:
        if noise is None:
            return self.stored_noise()
        noise = list(noise)
        if len(noise) != self.num_layers:
            raise ValueError(f"noise must be a list of {self.num_layers} tensors, got {len(noise)}")
        return noise

    def _blend(self, x: Tensor, feature: Tensor, scale: float | Tensor) -> Tensor:
        if feature.shape[1:] != x.shape[1:] or feature.shape[0] not in (1, x.shape[0]):
            raise ValueError(f"feature must be [B, {x.shape[1]}, {x.shape[2]}, {x.shape[3]}] at this index, "
                             f"got {tuple(feature.shape)}")
        feature = feature.to(x.dtype)
        if isinstance(scale, Tensor):
            s = scale.to(device=x.device, dtype=torch.float32).reshape(-1, 1, 1, 1)
            out = (1 - s) * x + s * feature
        elif scale == 1:
            out = torch.empty_like(x, memory_format=self.memory_format).copy_(feature.expand_as(x))
        else:
            out = (1 - scale) * x + scale * feature
        return out.to(x.dtype).contiguous(memory_format=self.memory_format)

    def _synthesize(self, w_plus: Tensor, noise: Sequence[Tensor] | None, *, stop_at: int | None = None,
                    feature: Tensor | None = None, feature_index: int = 5, feature_scale: float | Tensor = 1.0,
                    keep_outs: bool = False, rgb_size: int | None = None,
                    style_offset: Tensor | None = None) -> tuple[Tensor, list[Tensor]]:
        w = self._latent(w_plus)
        noises = self._noise(noise)
        offsets = iter(self._style_offsets(style_offset, w.shape[0]))  # consumed in synthesis order
        if feature is not None and not isinstance(feature_scale, Tensor) and feature_scale == 0:
            feature = None
        convs = [self.conv1, *self.convs]
        to_rgbs = [self.to_rgb1, *self.to_rgbs]
        inference = not torch.is_grad_enabled()
        x = self.input.input.expand(w.shape[0], -1, -1, -1).clone(memory_format=self.memory_format)
        fresh = True  # x is a temporary nobody else holds: the next conv may scale it in place
        outs: list[Tensor] = []
        skip = None
        for c in range(self.num_layers):
            if stop_at == c:
                return x, outs
            if keep_outs:
                outs.append(x)
                fresh = False
            if feature is not None and c == feature_index:
                x, fresh = self._blend(x, feature, feature_scale), True
            x = convs[c](x, w[:, c], noises[c], inplace_input=inference and fresh, style_offset=next(offsets))
            fresh = True
            rgb_offset = next(offsets) if c % 2 == 0 else None
            if stop_at is None and c % 2 == 0:
                skip = to_rgbs[c // 2](x, w[:, c + 1], skip, rgb_offset)
                if rgb_size is not None and skip.shape[-1] == rgb_size:
                    return skip, outs
        if keep_outs:
            outs.append(x)
        if stop_at is not None:
            return x, outs
        return skip, outs


def tiny(seed: int = 0) -> Generator:
    """A 64 px toy generator for tests and demos: RANDOM weights, so its images are meaningless.

    size 64, style_dim 64, n_mlp 2, channels {4: 64, 8: 64, 16: 64, 32: 32, 64: 16}; n_latent 10;
    the feature code at index 5 is [B, 64, 16, 16]. Deterministic per ``seed`` (native init, ToRGB weights
    x0.2, noise strengths 0.1). Returned in eval mode.
    """
    g = Generator(64, style_dim=64, n_mlp=2, channels={4: 64, 8: 64, 16: 64, 32: 32, 64: 16})
    g.reset_parameters(torch.Generator().manual_seed(seed), torgb_gain=0.2, noise_strength=0.1)
    return g.eval()


__all__ = ["Generator", "tiny", "default_channels"]
