"""The working copy of an HDR frame: R(x) in 8 bits, what the face stage and the networks see.

The 8-bit copy of every frame of a PQ / HLG clip is R(x) (reader, random access, the composite's
8-bit copy: :func:`converter_for`, :func:`rgb_converter`); a writer given such 8-bit frames for an
HDR output (frames without planes, side-by-side panels) writes R⁻¹ of them (:func:`frame_maker_for`).

:func:`converter_for` gives the reader's frame converter for a probed clip: for SDR the plain
:class:`~vidinvert.video.colour.RGBConverter` (rgb24); for PQ / HLG an :class:`SdrRGBConverter`,
which converts the decoded frame to 16-bit signal RGB (swscale, the stream's matrix and range)
and renders it with R (:mod:`vidinvert.video.rendering_hdr`), clipped to [0, 1], to uint8.

The per-channel part of R goes through 65536-entry tables indexed by the 16-bit signal (PQ:
signal -> tone-mapped light; HLG: signal -> scene light, and the PQ-domain tone mapping indexed
at the PQ signal of the OOTF's output, interpolated), the rest is computed; the result is within one
8-bit level of ``round(255 * clip(R(x)))`` (tested). The deep composite does not use this copy:
it applies R and R⁻¹ exactly to the decoded samples.
"""

from __future__ import annotations

import numpy as np

from vidinvert.video import hdr
from vidinvert.video.colour import ColourSpec, FrameMaker, RGBConverter
from vidinvert.video.rendering import is_identity
from vidinvert.video.rendering_hdr import SdrRendering, rendering_for

_CODES = np.arange(65536, dtype=np.float64) / 65535.0


class SdrRGBConverter:
    """Decoded HDR frame -> HxWx3 uint8: R(x) clipped, full range, stored orientation (one per stream)."""

    def __init__(self, spec: ColourSpec, rendering: SdrRendering) -> None:
        self.spec = spec
        self.rendering = rendering
        self._rgb16 = RGBConverter(spec, out_format="rgb48le")
        s = rendering.spec
        grey = np.repeat(_CODES[:, None], 3, 1)
        if s.transfer == "pq":
            self._light = rendering._to_light(grey)[:, 0].astype(np.float32)
        else:  # HLG: scene light, then the tone mapping of the OOTF's PQ signal
            self._scene = hdr.hlg_inverse_oetf(_CODES).astype(np.float32)
            tone = hdr.pq_eotf(hdr.bt2390_eetf(_CODES, s.source_peak, s.target_peak)) / s.target_peak
            self._tone = tone.astype(np.float32)
        self._matrix = hdr.BT2020_TO_BT709.T.astype(np.float32) if rendering.spec.gamut != "none" else None

    def __call__(self, frame) -> np.ndarray:
        return self.render16(self._rgb16(frame))

    def render16(self, rgb16: np.ndarray) -> np.ndarray:
        """uint16 HxWx3 signal RGB (0..65535) -> uint8 HxWx3 of R, clipped to [0, 1]."""
        s = self.rendering.spec
        if s.transfer == "pq":
            light = self._light[rgb16]
        else:
            e = self._scene[rgb16]
            ys = np.maximum(hdr.luminance(e), 0.0)[..., None]
            fd = np.float32(s.source_peak) * ys ** np.float32(s.hlg_system_gamma - 1) * e
            pq = hdr.pq_inverse_eotf(fd.astype(np.float64))  # float64: the PQ foot is steep
            pos = np.clip(pq, 0.0, 1.0) * 65534.999
            i = pos.astype(np.int32)
            frac = (pos - i).astype(np.float32)
            light = self._tone[i] * (1 - frac) + self._tone[i + 1] * frac
        if self._matrix is not None:
            light = light @ self._matrix
        np.clip(light, 0.0, 1.0, out=light)
        return np.rint(light ** np.float32(1 / 2.4) * 255).astype(np.uint8)


class SdrFrameMaker:
    """Encoder frames for an HDR output from 8-bit working copies (frames without planes, side-by-side
    panels): ``__call__(rgb HxWx3 uint8 of R) -> av.VideoFrame``, the signal R⁻¹(rgb / 255) at 16 bits
    converted by :class:`~vidinvert.video.colour.FrameMaker` (tagged with the source's spec)."""

    def __init__(self, pix_fmt: str, spec: ColourSpec, rendering: SdrRendering) -> None:
        self.rendering = rendering
        self._maker = FrameMaker(pix_fmt, spec)
        self.spec = self._maker.spec
        self.pix_fmt = pix_fmt

    def __call__(self, rgb: np.ndarray):
        signal = self.rendering.inverse(np.asarray(rgb, np.float64) / 255.0)
        return self._maker(np.rint(np.clip(signal, 0.0, 1.0) * 65535).astype(np.uint16))


def rgb_converter(spec: ColourSpec, rendering) -> RGBConverter | SdrRGBConverter:
    """Decoded frames (or planes' frames) of ``spec`` -> the 8-bit working copy under ``rendering``."""
    if is_identity(rendering):
        return RGBConverter(spec)
    return SdrRGBConverter(spec, rendering)


def frame_maker_for(pix_fmt: str, spec: ColourSpec, info) -> FrameMaker | SdrFrameMaker:
    """The writer's RGB -> encoder-frame maker for an output like ``info``: R⁻¹ first for PQ / HLG."""
    rendering = rendering_for(info)
    if rendering.is_identity:
        return FrameMaker(pix_fmt, spec)
    return SdrFrameMaker(pix_fmt, spec, rendering)


def converter_for(info) -> RGBConverter | SdrRGBConverter:
    """The reader's frame converter for a probed clip: rgb24 for SDR, R's 8-bit rendering for PQ / HLG."""
    return rgb_converter(info.colour, rendering_for(info))
