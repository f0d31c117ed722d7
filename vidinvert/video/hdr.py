"""HDR transfer functions and the SDR rendering R the networks see of a PQ or HLG face.

Curves (elementwise; numpy arrays or torch tensors of any shape; computed in float64 and returned
in the input's floating dtype, float64 for integer input). Each is continued past its standard
range (oddly below 0, by its own formula above) so that the rendering stays invertible for
out-of-range samples (limited-range sub-black / super-white, out-of-gamut colours):

* PQ, SMPTE ST 2084 / BT.2100: :func:`pq_eotf` signal E' in [0, 1] -> display light in cd/m²
  [0, 10000]; :func:`pq_inverse_eotf` back.
* HLG, ARIB STD-B67 / BT.2100: :func:`hlg_oetf` scene light E in [0, 1] -> signal E' in [0, 1];
  :func:`hlg_inverse_oetf` back; :func:`hlg_ootf` / :func:`hlg_inverse_ootf` scene light (RGB)
  <-> display light in cd/m² for a display of peak ``Lw`` (system gamma 1.2 + 0.42 log10(Lw/1000),
  black level 0).
* :func:`bt2390_eetf` / :func:`bt2390_inverse_eetf`: the BT.2390 EETF, a Hermite knee in the PQ
  domain from a source peak to a target peak (black level 0; no knee when the source is no
  brighter than the target; the knee's cubic continued above the source peak).
* :func:`bt1886` / :func:`bt1886_inverse`: the BT.1886 EOTF with black 0 (V^2.4) and its inverse.
* :data:`BT2020_TO_BT709`: the linear-light primaries conversion, derived from the BT.2020 and
  BT.709 primaries and D65 (checked in the tests against BT.2087's published matrix).

The rendering itself, R: R'G'B' (PQ or HLG signal, [0, 1]) -> SDR R'G'B', and its inverse, are
:class:`~vidinvert.video.rendering_hdr.SdrRendering`, described by the frozen
:class:`~vidinvert.video.rendering_hdr.RenderingSpec`.
"""

from __future__ import annotations

import math

import numpy as np

# SMPTE ST 2084 constants (exact rationals of the standard).
PQ_M1 = 2610 / 16384
PQ_M2 = 2523 / 4096 * 128
PQ_C1 = 3424 / 4096
PQ_C2 = 2413 / 4096 * 32
PQ_C3 = 2392 / 4096 * 32
PQ_PEAK = 10000.0  # cd/m² at signal 1
# ARIB STD-B67 / BT.2100 HLG constants.
HLG_A = 0.17883277
HLG_B = 1 - 4 * HLG_A
HLG_C = 0.5 - HLG_A * math.log(4 * HLG_A)
HLG_NOMINAL_PEAK = 1000.0  # cd/m², BT.2100's reference HLG display
BT2020_LUMA = (0.2627, 0.6780, 0.0593)  # BT.2100 luminance coefficients (R, G, B)


def _npm(primaries: tuple[tuple[float, float], ...], white: tuple[float, float]) -> np.ndarray:
    """The normalised primary matrix (RGB linear -> CIE XYZ, Y of white = 1) of a colour space."""
    xyz = np.array([[x / y, 1.0, (1 - x - y) / y] for x, y in primaries]).T
    w = np.array([white[0] / white[1], 1.0, (1 - white[0] - white[1]) / white[1]])
    return xyz * np.linalg.solve(xyz, w)


_D65 = (0.3127, 0.3290)
_BT709 = ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060))
_BT2020 = ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046))
BT2020_TO_BT709 = np.linalg.solve(_npm(_BT709, _D65), _npm(_BT2020, _D65))  # 3x3, linear RGB (column vectors)
BT709_TO_BT2020 = np.linalg.inv(BT2020_TO_BT709)


# ------------------------------------------------------------------------------------------
# numpy / torch without importing torch here
# ------------------------------------------------------------------------------------------
def _is_torch(x) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def _lib(x):
    if _is_torch(x):
        import torch

        return torch
    return np


def as64(x):
    """``x`` as a float64 array / tensor (a copy only when needed)."""
    if _is_torch(x):
        import torch

        return x.to(torch.float64)
    return np.asarray(x, dtype=np.float64)


def like(y, x):
    """``y`` (float64) in ``x``'s floating dtype (float64 when ``x`` is an integer type)."""
    if _is_torch(x):
        return y.to(x.dtype) if x.is_floating_point() else y
    x = np.asarray(x)
    return y.astype(x.dtype, copy=False) if np.issubdtype(x.dtype, np.floating) else y


def _spow(x, p: float):
    """sign(x) |x|^p: the odd extension of a power curve past 0."""
    xp = _lib(x)
    return xp.sign(x) * xp.abs(x) ** p


def _cbrt(x):
    return _spow(x, 1.0 / 3.0)


def channels_last(x, axis: int):
    """Move the colour axis ``axis`` to the end (numpy / torch)."""
    return x if axis in (-1, x.ndim - 1) else _lib(x).moveaxis(x, axis, -1)


def channels_back(x, axis: int):
    return x if axis in (-1, x.ndim - 1) else _lib(x).moveaxis(x, -1, axis)


def apply_matrix(x, m: np.ndarray):
    """``m @ rgb`` for every pixel of ``x`` (colour on the last axis, float64)."""
    if _is_torch(x):
        import torch

        return x @ torch.as_tensor(m.T, dtype=x.dtype, device=x.device)
    return x @ m.T


def luminance(x):
    """BT.2100 luminance of linear RGB ``x`` (colour on the last axis) -> shape ``x.shape[:-1]``."""
    r, g, b = BT2020_LUMA
    return r * x[..., 0] + g * x[..., 1] + b * x[..., 2]


# ------------------------------------------------------------------------------------------
# PQ (SMPTE ST 2084)
# ------------------------------------------------------------------------------------------
def pq_eotf(signal):
    """PQ signal E' [0, 1] -> display light F_D in cd/m² [0, 10000]. Extended: odd below 0, and
    the same formula above 1 (|E'| clipped at 1.9, below its pole at 1.99)."""
    xp = _lib(signal)
    e = as64(signal)
    p = xp.clip(xp.abs(e), 0.0, 1.9) ** (1 / PQ_M2)
    y = (xp.clip(p - PQ_C1, 0.0, None) / (PQ_C2 - PQ_C3 * p)) ** (1 / PQ_M1)
    return like(xp.sign(e) * PQ_PEAK * y, signal)


def pq_inverse_eotf(nits):
    """Display light in cd/m² [0, 10000] -> PQ signal E' [0, 1]. Extended: odd below 0 (so
    0 cd/m² -> 0, where ST 2084 gives c1^m2 = 7.3e-7), the same formula above 10000."""
    xp = _lib(nits)
    v = as64(nits)
    p = (xp.abs(v) / PQ_PEAK) ** PQ_M1
    return like(xp.sign(v) * ((PQ_C1 + PQ_C2 * p) / (1 + PQ_C3 * p)) ** PQ_M2, nits)


# ------------------------------------------------------------------------------------------
# HLG (ARIB STD-B67, BT.2100)
# ------------------------------------------------------------------------------------------
def hlg_oetf(scene):
    """Scene light E [0, 1] -> HLG signal E' [0, 1]: sqrt(3E) up to 1/12, a ln(12E - b) + c above.
    Extended: odd below 0, the log branch above 1."""
    xp = _lib(scene)
    e = as64(scene)
    a = xp.abs(e)
    log_part = HLG_A * xp.log(xp.clip(12 * a - HLG_B, 1e-12, None)) + HLG_C
    return like(xp.sign(e) * xp.where(a <= 1 / 12, xp.sqrt(3 * a), log_part), scene)


def hlg_inverse_oetf(signal):
    """HLG signal E' [0, 1] -> scene light E [0, 1] (the inverse of :func:`hlg_oetf`, extended alike;
    |E'| clipped at 4)."""
    xp = _lib(signal)
    e = as64(signal)
    a = xp.clip(xp.abs(e), 0.0, 4.0)
    return like(xp.sign(e) * xp.where(a <= 0.5, a * a / 3, (xp.exp((a - HLG_C) / HLG_A) + HLG_B) / 12), signal)


def hlg_system_gamma(peak: float) -> float:
    """BT.2100's HLG system gamma for a display of ``peak`` cd/m² (1.2 at 1000)."""
    return 1.2 + 0.42 * math.log10(peak / 1000.0)


def hlg_ootf(scene, peak: float = HLG_NOMINAL_PEAK):
    """Scene-linear RGB [0, 1] (colour on the last axis) -> display light cd/m² [0, ``peak``]:
    F_D = peak * Y_S^(gamma - 1) * E (BT.2100, black level 0); 0 where Y_S <= 0."""
    xp = _lib(scene)
    e = as64(scene)
    ys = luminance(e)[..., None]
    gain = xp.where(ys > 0, xp.where(ys > 0, ys, 1.0) ** (hlg_system_gamma(peak) - 1), 0.0)
    return like(peak * gain * e, scene)


def hlg_inverse_ootf(nits, peak: float = HLG_NOMINAL_PEAK):
    """Display light cd/m² (colour on the last axis) -> scene-linear RGB: Y_S = (Y_D / peak)^(1/gamma),
    E = F_D / (peak * Y_S^(gamma - 1)); 0 where Y_D <= 0."""
    xp = _lib(nits)
    fd = as64(nits)
    gamma = hlg_system_gamma(peak)
    yd = luminance(fd)[..., None]
    ys = xp.where(yd > 0, yd, 1.0) / peak
    scale = peak * ys ** ((gamma - 1) / gamma)
    return like(xp.where(yd > 0, fd / scale, 0.0), nits)


# ------------------------------------------------------------------------------------------
# BT.2390 EETF (PQ domain, black level 0)
# ------------------------------------------------------------------------------------------
def eetf_knee(source_peak: float, target_peak: float) -> tuple[float, float, float]:
    """(PQ(source_peak), max_lum, KS): the source peak's PQ signal, the target peak relative to
    it in the PQ domain (min(1, PQ(target)/PQ(source))), and the knee start KS = 1.5 max_lum - 0.5."""
    lw = float(pq_inverse_eotf(np.float64(source_peak)))
    max_lum = min(1.0, float(pq_inverse_eotf(np.float64(target_peak))) / lw)
    return lw, max_lum, 1.5 * max_lum - 0.5


def bt2390_eetf(signal, source_peak: float, target_peak: float):
    """PQ signal of a ``source_peak`` (cd/m²) master -> PQ signal for a ``target_peak`` display.

    With E1 = E / PQ(source_peak): below KS unchanged; from KS the Hermite spline
    P(T) = (2T³-3T²+1) KS + (T³-2T²+T)(1-KS) + (-2T³+3T²) max_lum, T = (E1 - KS)/(1 - KS), which
    reaches max_lum (the target peak) at the source peak with slope 0. BT.2390 clips above the
    source peak; here the cubic (= KS + (1-max_lum)/2 ((T-1)³ + 1)) continues, still increasing,
    so signals above the peak render above the target peak and R stays invertible."""
    lw, m, ks = eetf_knee(source_peak, target_peak)
    xp = _lib(signal)
    e1 = as64(signal) / lw
    if m >= 1.0:
        return like(e1 * lw, signal)
    u = (e1 - ks) / (1 - ks) - 1  # T - 1
    p = ks + 0.5 * (1 - m) * (u * u * u + 1)  # the Hermite spline above, expanded
    return like(xp.where(e1 < ks, e1, p) * lw, signal)


def bt2390_inverse_eetf(signal, source_peak: float, target_peak: float):
    """The inverse of :func:`bt2390_eetf` (everywhere): from KS, T = 1 + cbrt(2 (P - KS)/(1 - max_lum) - 1)."""
    lw, m, ks = eetf_knee(source_peak, target_peak)
    xp = _lib(signal)
    e2 = as64(signal) / lw
    if m >= 1.0:
        return like(e2 * lw, signal)
    t = 1 + _cbrt(2 * (e2 - ks) / (1 - m) - 1)
    return like(xp.where(e2 < ks, e2, ks + t * (1 - ks)) * lw, signal)


def bt1886_inverse(light):
    """Relative display light [0, 1] -> SDR signal V = L^(1/2.4) (BT.1886, black 0; odd below 0)."""
    return like(_spow(as64(light), 1 / 2.4), light)


def bt1886(signal):
    """SDR signal V [0, 1] -> relative display light L = V^2.4 (BT.1886, black 0; odd below 0)."""
    return like(_spow(as64(signal), 2.4), signal)
