"""The fast bf16 CPU path of the StyleGAN2 styled convolutions (beside the reference path).

Used only when a styled convolution runs in bfloat16 on the CPU without autograd (``--dtype bf16``,
or ``--dtype auto`` on a CPU with bf16 matrix units: :func:`vidinvert.device.resolve_compute`).
float32, float16, CUDA and grad mode always take the reference path of
:mod:`vidinvert.models.stylegan2` / :mod:`vidinvert.models.ops`, unchanged; that path is the test oracle.

What it changes, per sample (the batch is a loop: each sample is one oneDNN convolution):

- the style and the demodulation coefficient are folded into the weight, in float32, once per sample
  (``W[o,i] * s[i] * d[o] * sqrt(2)``), and rounded to bf16 once: no ``x * s`` pass over the
  activations and no ``out * d`` pass over the output;
- the bias (times the leaky-ReLU gain sqrt(2), folded: ``lrelu(z) * g = lrelu(z * g)``) is the
  convolution's own bias (the FIR blur's for upsampling layers, since the blur comes after it), so
  the epilogue is one noise add and one in-place leaky ReLU;
- weights are channels-last, like the activations.

A layer is folded only where its activations are at least as large as its per-sample weight
(``H * W >= k * k * O`` at the input); the small early layers (4..32 px at 1024, where the 512x512x3x3
weight outweighs the activation) keep the batched reference form. The StyleSpace offset enters through
the same :meth:`~vidinvert.models.stylegan2.ModulatedConv.styles` as on the reference path.
ToRGB keeps the reference form (its per-sample 3xC weight is already folded).

Accuracy (1024 official layout, random weights; ``benchmarks/bench_bf16_accuracy.py``): see
``docs/benchmarks.md``; the tests bound the fast path against the reference path on tiny models.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vidinvert.models.ops import LRELU_SLOPE, SQRT2, compute_dtype, demodulation_coefficients, upsample_blur_pad

BF16 = torch.bfloat16


def applies(x: Tensor) -> bool:
    """True when the fast path runs for activations ``x``: bf16 compute on the CPU, no autograd."""
    return x.device.type == "cpu" and not torch.is_grad_enabled() and compute_dtype(x) == BF16


def worth_folding(x: Tensor, out_ch: int, kernel_size: int) -> bool:
    """Fold style and demodulation into the weight when the input activation (per sample) is at
    least as large as the per-sample weight: ``H * W >= k * k * O``."""
    return x.shape[-2] * x.shape[-1] >= kernel_size * kernel_size * out_ch


def folded_weights(weight: Tensor, styles: Tensor, gain: float, *, demodulate: bool = True,
                   weight_sq: Tensor | None = None) -> Tensor:
    """Per-sample weights ``weight[o,i] * styles[b,i] * dcoef[b,o] * gain``, float32 [B, O, I, k, k].

    weight: [O, I, k, k] float32 (equalized-lr scale folded into ``styles``); styles: [B, I] float32;
    dcoef = ``rsqrt(sum_{i,kh,kw} (weight * styles)^2 + 1e-8)`` (1 without ``demodulate``)."""
    scale = styles.float()[:, None, :]
    if demodulate:
        d = demodulation_coefficients(weight, styles, weight_sq=weight_sq)
        scale = scale * (d.float() * gain)[:, :, None]
    else:
        scale = scale * gain
    return weight.float()[None] * scale[..., None, None]


def _blur_weight(kernel: Tensor, channels: int) -> Tensor:
    """The FIR ``kernel`` [k, k] as a depthwise bf16 weight [C, 1, k, k] (flipped: a true convolution)."""
    return torch.flip(kernel, [0, 1]).to(BF16).reshape(1, 1, *kernel.shape).expand(channels, 1, -1, -1).contiguous()


def _noise_term(noise: Tensor | None, strength: Tensor, gain: float) -> Tensor | None:
    if noise is None:
        return None
    return (noise.float() * (strength.float() * gain)).to(BF16)


def styled_conv(layer, x: Tensor, w: Tensor, noise: Tensor | None, style_offset: Tensor | None) -> Tensor | None:
    """The fast form of a :class:`~vidinvert.models.stylegan2.StyledConv` ``layer``:
    ``lrelu(modconv(x) + noise_strength * noise + bias) * sqrt(2)``.

    x: [B, I, H, W] bf16 (any memory format); w: [B, style_dim]; noise: broadcastable to [B, 1, H', W']
    or None; style_offset: [B|1, I] or None. Returns [B, O, H', W'] bf16 channels-last, or None when
    the layer is not worth folding (the caller then runs the reference form)."""
    conv = layer.conv
    k, out_ch = conv.kernel_size, conv.out_ch
    if not worth_folding(x, out_ch, k):
        return None
    s = conv.styles(w, style_offset)
    wsq, _ = conv.derived_weights(torch.channels_last)
    wmod = folded_weights(conv.weight[0], s, SQRT2, demodulate=conv.demodulate, weight_sq=wsq)
    bias = (layer.activate.bias.float() * SQRT2).to(BF16)
    nz = _noise_term(noise, layer.noise.weight, SQRT2)
    xb = x.to(BF16)
    batch = x.shape[0]
    dest = None
    for b in range(batch):
        y = _conv_one(conv, xb[b:b + 1], wmod[b], bias)
        nb = None if nz is None else (nz[b:b + 1] if nz.shape[0] > 1 else nz)
        if batch == 1:
            dest = y if nb is None else y.add_(nb)
            break
        if dest is None:
            dest = torch.empty((batch, *y.shape[1:]), dtype=BF16, memory_format=torch.channels_last)
        if nb is None:
            dest[b:b + 1].copy_(y)
        else:
            torch.add(y, nb, out=dest[b:b + 1])
    return F.leaky_relu_(dest, LRELU_SLOPE)


def _conv_one(conv, x: Tensor, wmod: Tensor, bias: Tensor) -> Tensor:
    """One sample's convolution with its folded weight ``wmod`` [O, I, k, k] float32 and ``bias`` [O]
    bf16: x [1, I, H, W] bf16 -> [1, O, H, W] (or [1, O, 2H, 2W] with the upsampling FIR blur)."""
    k = conv.kernel_size
    if not conv.upsample:
        wb = wmod.to(BF16, memory_format=torch.channels_last)
        return F.conv2d(x, wb, bias, padding=k // 2)
    wt = wmod.transpose(0, 1).to(BF16, memory_format=torch.channels_last)
    y = F.conv_transpose2d(x, wt, stride=2)
    kernel = conv.blur.kernel
    pad = upsample_blur_pad(k, kernel.shape[-1])
    blur = _blur_weight(kernel, conv.out_ch)
    if pad[0] != pad[1]:
        y = F.pad(y, [pad[0], pad[1], pad[0], pad[1]])
        return F.conv2d(y, blur, bias, groups=conv.out_ch)
    return F.conv2d(y, blur, bias, padding=pad[0], groups=conv.out_ch)


__all__ = ["applies", "folded_weights", "styled_conv", "worth_folding"]
