"""R, the SDR rendering the networks see of an HDR (PQ or HLG) face, and R⁻¹, how their change comes back.

An implementation of :class:`~vidinvert.video.rendering.Rendering` (the composite computes
x' = R⁻¹(R(x) + Δ)). R maps the source's non-linear R'G'B' (the decoded signal, [0, 1] of the
code range, BT.2020 primaries) to SDR R'G'B' (BT.709 primaries, for a 100 cd/m² BT.1886
display), per pixel:

1. signal -> display light (cd/m², BT.2020 RGB): PQ by the ST 2084 EOTF; HLG by the inverse
   OETF and the BT.2100 OOTF for its nominal 1000 cd/m² display (system gamma 1.2);
2. tone mapping: the BT.2390 EETF per R, G, B component in the PQ domain, from the source peak
   (PQ: the mastering display's max luminance, else MaxCLL, else 1000 cd/m²; HLG: 1000) to
   100 cd/m², black level 0; then / 100;
3. BT.2020 -> BT.709 in linear light (none when the source's primaries are BT.709);
4. the inverse BT.1886 EOTF (V = L^(1/2.4), black 0).

Every step is invertible (each curve is continued past its range oddly below 0, and the EETF's
cubic past the source peak), so :meth:`SdrRendering.forward` returns R **unclipped** and
R⁻¹(R(x)) = x for every signal (float64; the knee's inverse is a cube root, so R is computed
in float64 whatever the input). The networks see :meth:`SdrRendering.render`, R clipped to
[0, 1] (the "BT.2020 -> BT.709 with clipping" of the issue): **R's unclipped range** is the set
of signals whose R lies in [0, 1] (:meth:`SdrRendering.unclipped`): colours inside BT.709 after
the tone mapping, no component above the source peak. There the networks see R(x) exactly and
x' = R⁻¹(R(x) + Δ) is their change brought back; outside it the change is applied to the
unclipped value (the clipped part is kept from the source).

:func:`rendering_for` picks R from a probed clip (identity for SDR). Torch-free at import.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from vidinvert.video import hdr
from vidinvert.video.hdrmeta import PRIMARIES_BT2020, TRANSFER_NAMES, HdrInfo

DEFAULT_SOURCE_PEAK = 1000.0  # cd/m², when a PQ stream says nothing about its peak
SDR_PEAK = 100.0  # cd/m², the target of the tone mapping


@dataclass(frozen=True)
class RenderingSpec:
    """R's name and parameters, as ``info``, the report and ``run.json`` print them.

    ``transfer`` ``pq`` | ``hlg`` | ``sdr`` (identity); ``source_peak`` cd/m² and where it came
    from (``source_peak_from``); ``target_peak`` cd/m²; ``gamut`` ``bt2020->bt709`` | ``none``."""

    transfer: str = "sdr"
    source_peak: float | None = None
    source_peak_from: str | None = None
    target_peak: float | None = None
    tone_map: str | None = None
    gamut: str = "none"
    oetf: str | None = None
    hlg_system_gamma: float | None = None

    @property
    def name(self) -> str:
        """``sdr-identity`` for SDR, else e.g. ``pq-bt2390-1000to100-bt709-bt1886``."""
        if self.transfer == "sdr":
            return "sdr-identity"
        gamut = "-bt709" if self.gamut != "none" else ""
        return f"{self.transfer}-bt2390-{self.source_peak:g}to{self.target_peak:g}{gamut}-bt1886"

    @property
    def is_identity(self) -> bool:
        return self.transfer == "sdr"

    def describe(self) -> str:
        """One line: what the networks see."""
        if self.is_identity:
            return "identity (SDR source: the networks see the decoded RGB)"
        steps = [f"{TRANSFER_NAMES[self.transfer]} to light"]
        if self.hlg_system_gamma is not None:
            steps[0] += f" (HLG OOTF, {self.source_peak:g} cd/m² display, gamma {self.hlg_system_gamma:g})"
        steps.append(f"{self.tone_map} {self.source_peak:g} -> {self.target_peak:g} cd/m² "
                     f"(peak from {self.source_peak_from})")
        if self.gamut != "none":
            steps.append("BT.2020 -> BT.709 in linear light")
        steps.append(self.oetf)
        return f"{self.name}: " + ", ".join(steps) + "; the networks see it clipped to [0, 1]"

    def to_dict(self) -> dict:
        return {"name": self.name, **asdict(self), "description": self.describe()}


IDENTITY = RenderingSpec()


def spec_for(info: HdrInfo) -> RenderingSpec:
    """The :class:`RenderingSpec` for a stream's :class:`~vidinvert.video.hdrmeta.HdrInfo`."""
    if not info.is_hdr:
        return IDENTITY
    gamut = "bt2020->bt709" if info.primaries == PRIMARIES_BT2020 else "none"
    common = {"target_peak": SDR_PEAK, "tone_map": "BT.2390 EETF (PQ domain, per component, black 0)",
              "gamut": gamut, "oetf": "inverse BT.1886 (V = L^(1/2.4), black 0)"}
    if info.transfer == "hlg":
        return RenderingSpec("hlg", hdr.HLG_NOMINAL_PEAK, "BT.2100 HLG nominal display",
                             hlg_system_gamma=hdr.hlg_system_gamma(hdr.HLG_NOMINAL_PEAK), **common)
    md, cll = info.mastering, info.light_level
    if md is not None and md.max_luminance:
        peak, src = float(md.max_luminance), "mastering display"
    elif cll is not None and cll.max_cll:
        peak, src = float(cll.max_cll), "MaxCLL"
    else:
        peak, src = DEFAULT_SOURCE_PEAK, "default (no metadata)"
    return RenderingSpec("pq", min(peak, hdr.PQ_PEAK), src, **common)


class SdrRendering:
    """R and R⁻¹ for one :class:`RenderingSpec` (see the module doc).

    Arrays: numpy (the composite: float64 ``[..., 3]``) or torch, colour on ``axis`` (RGB order):
    ``forward`` takes the source signal (PQ / HLG R'G'B', [0, 1] of the code range), returns SDR
    R'G'B' (unclipped; [0, 1] on R's unclipped range); ``inverse`` the reverse. Same shape and
    dtype out (float64 for integer input). Identity when SDR."""

    def __init__(self, spec: RenderingSpec) -> None:
        self.spec = spec
        self._gamut = spec.gamut != "none"

    @property
    def is_identity(self) -> bool:
        return self.spec.is_identity

    def _to_light(self, x):
        """Source signal (colour last, float64) -> tone-mapped relative light, BT.2020 [0, 1]."""
        s = self.spec
        if s.transfer == "hlg":
            x = hdr.pq_inverse_eotf(hdr.hlg_ootf(hdr.hlg_inverse_oetf(x), s.source_peak))
        return hdr.pq_eotf(hdr.bt2390_eetf(x, s.source_peak, s.target_peak)) / s.target_peak

    def _from_light(self, light):
        s = self.spec
        e = hdr.bt2390_inverse_eetf(hdr.pq_inverse_eotf(light * s.target_peak), s.source_peak, s.target_peak)
        if s.transfer == "hlg":
            e = hdr.hlg_oetf(hdr.hlg_inverse_ootf(hdr.pq_eotf(e), s.source_peak))
        return e

    @property
    def name(self) -> str:
        return self.spec.name

    def describe(self) -> str:
        return self.spec.describe()

    def forward(self, x, axis: int = -1):
        """Source signal -> SDR R'G'B', unclipped (in [0, 1] on R's unclipped range)."""
        if self.is_identity:
            return x
        light = self._to_light(hdr.channels_last(hdr.as64(x), axis))
        if self._gamut:
            light = hdr.apply_matrix(light, hdr.BT2020_TO_BT709)
        return hdr.like(hdr.channels_back(hdr.bt1886_inverse(light), axis), x)

    def render(self, x, axis: int = -1):
        """What the networks see: :meth:`forward` clipped to [0, 1]."""
        y = self.forward(x, axis)
        return hdr._lib(y).clip(y, 0.0, 1.0)

    def inverse(self, y, axis: int = -1):
        """SDR R'G'B' (unclipped) -> source signal: R⁻¹(R(x)) = x."""
        if self.is_identity:
            return y
        light = hdr.bt1886(hdr.channels_last(hdr.as64(y), axis))
        if self._gamut:
            light = hdr.apply_matrix(light, hdr.BT709_TO_BT2020)
        return hdr.like(hdr.channels_back(self._from_light(light), axis), y)

    def unclipped(self, x, axis: int = -1, tol: float = 1e-9):
        """Boolean mask (the shape without ``axis``): where R(x) lies in [0, 1], R's unclipped range."""
        y = hdr.channels_last(hdr.as64(self.forward(x, axis)), axis)
        ok = (y >= -tol) & (y <= 1 + tol)
        return ok.all(-1) if hdr._lib(y) is np else ok.all(dim=-1)


def rendering_for(info) -> SdrRendering:
    """R for a probed clip (a :class:`~vidinvert.video.probe.VideoInfo` with ``.hdr``, or an
    :class:`~vidinvert.video.hdrmeta.HdrInfo`): chosen by the transfer (PQ, HLG; identity else)."""
    hdr_info = info if isinstance(info, HdrInfo) else getattr(info, "hdr", None) or HdrInfo()
    return SdrRendering(spec_for(hdr_info))


def hdr_record(info) -> dict:
    """What the report and ``run.json`` say of a clip's HDR (``info`` a probed
    :class:`~vidinvert.video.probe.VideoInfo`): ``is_hdr``, ``signal`` (one line: transfer,
    primaries, metadata), ``metadata`` (mastering display, light level) and ``sdr_rendering``
    (:meth:`RenderingSpec.to_dict`: R's name, parameters and one-line description)."""
    h = getattr(info, "hdr", None) or HdrInfo()
    return {"is_hdr": h.is_hdr, "signal": h.describe(),
            "metadata": {"mastering_display": None if h.mastering is None else asdict(h.mastering),
                         "content_light_level": None if h.light_level is None else asdict(h.light_level)},
            "sdr_rendering": spec_for(h).to_dict()}
