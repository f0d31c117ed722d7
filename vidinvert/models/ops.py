"""Pure-PyTorch building blocks of StyleGAN2 synthesis.

FIR filtering (the [1,3,3,1] blur and 2x upsampling of StyleGAN2's ``upfirdn2d``), the fused
bias + leaky ReLU epilogue, and modulated convolution in two equivalent forms:

- :func:`modulated_conv2d`: the batched non-fused form used by the generator. Activations are scaled
  by the style per input channel, one shared-weight convolution runs over the whole batch, and the
  output is multiplied by the per-sample demodulation coefficients.
- :func:`modulated_conv2d_grouped`: the per-sample form of the papers (weights modulated and
  demodulated per sample, one grouped convolution). Slower on large batches; kept as the reference.

All tensors are NCHW (any memory format). Styles and demodulation coefficients are float32 whatever
the activation dtype, so the layers are safe under bf16/fp16 autocast.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

SQRT2 = math.sqrt(2.0)
LRELU_SLOPE = 0.2
DEMOD_EPS = 1e-8
FP16_CLAMP = 256.0  # activation clamp in float16 (the conv_clamp idea of NVlabs StyleGAN2-ADA)


def fir_kernel(taps: Sequence[float] = (1, 3, 3, 1), gain: float = 1.0) -> Tensor:
    """Separable 2-D FIR kernel ``outer(taps, taps) / sum * gain``, float32 [k, k], on the CPU.

    Always computed on the CPU, also inside a ``torch.device("meta")`` block (an op on meta
    tensors would import torch's compiler stack, about a second)."""
    k = torch.tensor(list(taps), dtype=torch.float32, device="cpu")
    k2 = torch.outer(k, k)
    return k2 / k2.sum() * gain


def upfirdn2d_reference(x: Tensor, kernel: Tensor, up: int = 1, pad: tuple[int, int] = (0, 0)) -> Tensor:
    """Slow, obvious StyleGAN2 ``upfirdn2d`` (no downsampling), used as a test oracle.

    Inserts ``up - 1`` zeros after every sample, zero-pads ``pad = (before, after)`` on both axes,
    then convolves (true convolution, i.e. correlation with the flipped kernel) each channel.
    x: [B, C, H, W] float; kernel: [k, k]. Returns [B, C, H*up + p0 + p1 - k + 1, ...].
    """
    b, c, h, w = x.shape
    if up > 1:
        z = x.new_zeros(b, c, h, up, w, up)
        z[:, :, :, 0, :, 0] = x
        x = z.reshape(b, c, h * up, w * up)
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    kf = torch.flip(kernel, [0, 1]).to(x.dtype)[None, None]
    y = F.conv2d(x.reshape(b * c, 1, *x.shape[2:]), kf)
    return y.reshape(b, c, *y.shape[2:])


def _depthwise(kernel: Tensor, channels: int, dtype: torch.dtype) -> Tensor:
    return kernel.to(dtype).reshape(1, 1, *kernel.shape).expand(channels, 1, -1, -1).contiguous()


def blur2d(x: Tensor, kernel: Tensor, pad: tuple[int, int]) -> Tensor:
    """FIR filter each channel (``upfirdn2d(x, kernel, pad=pad)``) as one depthwise convolution.

    x: [B, C, H, W]; kernel: [k, k] (the checkpoint's ``kernel`` buffer). Output [B, C, H + p0 + p1 - k + 1, ...].
    """
    c = x.shape[1]
    weight = _depthwise(torch.flip(kernel, [0, 1]), c, x.dtype)
    if pad[0] == pad[1]:
        return F.conv2d(x, weight, padding=pad[0], groups=c)
    return F.conv2d(F.pad(x, [pad[0], pad[1], pad[0], pad[1]]), weight, groups=c)


def upsample2d(x: Tensor, kernel: Tensor) -> Tensor:
    """2x FIR upsampling (``upfirdn2d(x, kernel, up=2, pad=(p0, p0 - 1))``, p0 = (k - 1) // 2 + 1).

    kernel: [k, k] with the x4 gain already in it (the checkpoint's ``upsample.kernel``). One depthwise
    transposed convolution, stride 2. x: [B, C, H, W] -> [B, C, 2H, 2W] for an even-sized kernel.
    """
    k = kernel.shape[-1]
    p0 = (k - 2 + 1) // 2 + 1
    c = x.shape[1]
    weight = _depthwise(kernel, c, x.dtype)
    return F.conv_transpose2d(x, weight, stride=2, padding=k - 1 - p0, groups=c)


def upsample_blur_pad(kernel_size: int, taps: int, factor: int = 2) -> tuple[int, int]:
    """Padding of the blur that follows a stride-2 transposed convolution (StyleGAN2's rule)."""
    p = (taps - factor) - (kernel_size - 1)
    return (p + 1) // 2 + factor - 1, p // 2 + 1


def no_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Context that turns autocast off on ``device`` (a no-op where autocast does not apply)."""
    if device.type in ("cpu", "cuda", "mps", "xpu"):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


def compute_dtype(x: Tensor) -> torch.dtype:
    """The dtype convolutions on ``x`` run in: the autocast dtype when autocast is on, else x's dtype."""
    dev = x.device.type
    if dev not in ("cpu", "cuda", "mps", "xpu") or not x.is_floating_point():
        return x.dtype
    try:
        if torch.is_autocast_enabled(dev):
            return torch.get_autocast_dtype(dev)
    except (TypeError, AttributeError):  # torch < 2.4
        if dev == "cpu" and torch.is_autocast_cpu_enabled():
            return torch.get_autocast_cpu_dtype()
        if dev == "cuda" and torch.is_autocast_enabled():
            return torch.get_autocast_gpu_dtype()
    return x.dtype


def weight_square_sums(weight: Tensor) -> Tensor:
    """``sum_{kh,kw} weight^2``: [O, I, kh, kw] -> [O, I] float32 (float64 for float64 weights)."""
    dt = torch.promote_types(weight.dtype, torch.float32)
    with no_autocast(weight.device):
        return weight.to(dt).square().sum(dim=(2, 3))


def demodulation_coefficients(weight: Tensor, styles: Tensor, eps: float = DEMOD_EPS,
                              weight_sq: Tensor | None = None) -> Tensor:
    """``rsqrt(sum_{i,kh,kw} (weight[o,i,kh,kw] * styles[b,i])^2 + eps)`` as one matmul.

    weight: [O, I, kh, kw]; styles: [B, I]; weight_sq: optional precomputed :func:`weight_square_sums`.
    Returns float32 (or float64 for float64 inputs) [B, O], autocast off.
    """
    wsq = weight_square_sums(weight) if weight_sq is None else weight_sq
    dt = torch.promote_types(styles.dtype, wsq.dtype)
    with no_autocast(styles.device):
        return (styles.to(dt).square() @ wsq.to(dt).t() + eps).rsqrt()


def modulated_conv2d(
    x: Tensor,
    weight: Tensor,
    styles: Tensor,
    *,
    demodulate: bool = True,
    upsample: bool = False,
    blur_kernel: Tensor | None = None,
    inplace_input: bool = False,
    weight_sq: Tensor | None = None,
    conv_weight: Tensor | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Batched non-fused modulated convolution.

    x: [B, I, H, W] activations; weight: [O, I, k, k] (equalized-lr scale already applied or folded
    into ``styles``); styles: [B, I] float32. Returns ``(out, dcoefs)`` where ``out`` is the convolution
    of ``x * styles`` with the shared weight ([B, O, H, W], or [B, O, 2H, 2W] with ``upsample``: a
    stride-2 transposed convolution followed by the FIR blur ``blur_kernel``), and ``dcoefs`` [B, O]
    float32 are the demodulation coefficients still to be multiplied in (``None`` without demodulation).
    ``inplace_input=True`` scales ``x`` in place (saves one allocation when ``x`` is not needed after).
    ``weight_sq`` (:func:`weight_square_sums`) and ``conv_weight`` (the weight as the convolution takes it:
    ``weight``, or ``weight.transpose(0, 1)`` with ``upsample``, in any memory format) may be passed
    precomputed: they depend on the weight only.
    """
    if demodulate and compute_dtype(x) == torch.float16:
        # Keep x * s and the convolution inside float16 range: per-sample rescale of the styles to a
        # largest value of 1/sqrt(fan_in). Demodulation makes the output invariant to it.
        fan_in = weight.shape[1] * weight.shape[2] * weight.shape[3]
        styles = styles / (styles.abs().amax(dim=1, keepdim=True).clamp_min(1e-30) * math.sqrt(fan_in))
    s = styles.to(x.dtype)[:, :, None, None]
    xs = x.mul_(s) if inplace_input else x * s
    k = weight.shape[-1]
    if upsample:
        if blur_kernel is None:
            raise ValueError("an upsampling modulated convolution needs its blur kernel")
        wt = weight.transpose(0, 1) if conv_weight is None else conv_weight
        out = F.conv_transpose2d(xs, wt.to(x.dtype), stride=2)
        out = blur2d(out, blur_kernel, upsample_blur_pad(k, blur_kernel.shape[-1]))
    else:
        out = F.conv2d(xs, (weight if conv_weight is None else conv_weight).to(x.dtype), padding=k // 2)
    dcoefs = demodulation_coefficients(weight, styles, weight_sq=weight_sq) if demodulate else None
    return out, dcoefs


def modulated_conv2d_grouped(
    x: Tensor,
    weight: Tensor,
    styles: Tensor,
    *,
    demodulate: bool = True,
    upsample: bool = False,
    blur_kernel: Tensor | None = None,
    eps: float = DEMOD_EPS,
) -> Tensor:
    """Reference per-sample modulated convolution (weights modulated and demodulated per sample,
    one grouped convolution over the batch). Same arguments as :func:`modulated_conv2d`; returns the
    demodulated output [B, O, H', W'] directly.
    """
    b, i, h, wd = x.shape
    o, _, k, _ = weight.shape
    wmod = weight.to(styles.dtype)[None] * styles[:, None, :, None, None]  # [B, O, I, k, k]
    if demodulate:
        wmod = wmod * (wmod.square().sum(dim=(2, 3, 4)) + eps).rsqrt()[:, :, None, None, None]
    wmod = wmod.to(x.dtype)
    xg = x.reshape(1, b * i, h, wd)
    if upsample:
        if blur_kernel is None:
            raise ValueError("an upsampling modulated convolution needs its blur kernel")
        wt = wmod.transpose(1, 2).reshape(b * i, o, k, k)
        out = F.conv_transpose2d(xg, wt, stride=2, groups=b)
        out = out.reshape(b, o, *out.shape[2:])
        return blur2d(out, blur_kernel, upsample_blur_pad(k, blur_kernel.shape[-1]))
    out = F.conv2d(xg, wmod.reshape(b * o, i, k, k), padding=k // 2, groups=b)
    return out.reshape(b, o, *out.shape[2:])


def bias_noise_lrelu(
    out: Tensor,
    bias: Tensor,
    *,
    dcoefs: Tensor | None = None,
    noise: Tensor | None = None,
    noise_strength: Tensor | None = None,
    slope: float = LRELU_SLOPE,
    gain: float = SQRT2,
    inplace: bool = False,
) -> Tensor:
    """StyledConv epilogue: ``lrelu(out * dcoefs + noise_strength * noise + bias, slope) * gain``.

    out: [B, C, H, W]; bias: [C]; dcoefs: [B, C] or None; noise: broadcastable to [B, 1, H, W];
    noise_strength: [1]. The positive ``gain`` is folded into the small operands (lrelu(z)*g =
    lrelu(z*g)), so the in-place variant makes three passes over ``out``. In float16 the result is
    clamped to +-256.
    """
    dt = out.dtype
    b = (bias.float() * gain).to(dt).reshape(1, -1, 1, 1)
    scale = (dcoefs.float() * gain).to(dt)[:, :, None, None] if dcoefs is not None else None
    nz = None
    if noise is not None and noise_strength is not None:
        nz = (noise.to(torch.float32) * (noise_strength.float() * gain)).to(dt)
    if inplace:
        if scale is None:
            out.mul_(gain)
        elif nz is not None:
            torch.addcmul(nz, out, scale, out=out)  # out * scale + noise, one pass
            nz = None
        else:
            out.mul_(scale)
        if nz is not None:
            out.add_(nz)
        out.add_(b)
        F.leaky_relu_(out, slope)
    else:
        out = out * (scale if scale is not None else gain)
        if nz is not None:
            out = out + nz
        out = F.leaky_relu(out + b, slope)
    if dt == torch.float16:
        out = out.clamp_(-FP16_CLAMP, FP16_CLAMP) if inplace else out.clamp(-FP16_CLAMP, FP16_CLAMP)
    return out
