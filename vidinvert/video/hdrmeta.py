"""HDR signalling of a stream: the transfer (PQ, HLG) and the static metadata that travels with it.

* :class:`MasteringDisplay` (SMPTE ST 2086: the mastering display's primaries, white point and
  luminance range) and :class:`ContentLightLevel` (CTA-861.3: MaxCLL / MaxFALL, cd/m²), read
  from a decoded frame's side data (FFmpeg's ``AVMasteringDisplayMetadata`` and
  ``AVContentLightMetadata``; HEVC SEI and Matroska/MP4 container boxes both reach the frame).
* :class:`HdrInfo`: what :func:`~vidinvert.video.probe.probe` reports (``VideoInfo.hdr``).
* :func:`x265_hdr_params`: the ``x265-params`` entries that write them back (``master-display``,
  ``max-cll``, ``hdr10``, ``repeat-headers``).

Torch-free (read by ``vidinvert info`` and the writer).
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from fractions import Fraction

log = logging.getLogger(__name__)

# FFmpeg's AVColorTransferCharacteristic / AVColorPrimaries values.
TRC_PQ = 16  # AVCOL_TRC_SMPTE2084 (SMPTE ST 2084, BT.2100 PQ)
TRC_HLG = 18  # AVCOL_TRC_ARIB_STD_B67 (ARIB STD-B67, BT.2100 HLG)
PRIMARIES_BT2020 = 9
TRANSFERS = {TRC_PQ: "pq", TRC_HLG: "hlg"}
TRANSFER_NAMES = {"pq": "PQ (SMPTE ST 2084)", "hlg": "HLG (ARIB STD-B67)"}
PRIMARIES_NAMES = {1: "BT.709", 5: "BT.601 625", 6: "BT.601 525", 9: "BT.2020", 11: "DCI-P3", 12: "Display P3"}

_MDCV_FORMAT = "<22i"  # display_primaries[3][2], white_point[2], min_luminance, max_luminance: AVRationals; 2 flags
_CLL_FORMAT = "<2I"  # MaxCLL, MaxFALL


def _ratio(num: int, den: int) -> float | None:
    return float(Fraction(num, den)) if den else None


@dataclass(frozen=True)
class MasteringDisplay:
    """The mastering display colour volume (SMPTE ST 2086).

    ``red``/``green``/``blue``/``white_point``: CIE 1931 (x, y) chromaticities (None when the
    stream gives no primaries); ``min_luminance``/``max_luminance``: cd/m² (None when absent)."""

    red: tuple[float, float] | None = None
    green: tuple[float, float] | None = None
    blue: tuple[float, float] | None = None
    white_point: tuple[float, float] | None = None
    min_luminance: float | None = None
    max_luminance: float | None = None

    @classmethod
    def from_side_data(cls, data: bytes) -> MasteringDisplay | None:
        """Parse FFmpeg's ``AVMasteringDisplayMetadata`` (88 bytes, primaries in R, G, B order)."""
        if len(data) < struct.calcsize(_MDCV_FORMAT):
            return None
        v = struct.unpack_from(_MDCV_FORMAT, data)
        has_primaries, has_luminance = v[20], v[21]
        if not (has_primaries or has_luminance):
            return None
        xy = [(_ratio(v[4 * i], v[4 * i + 1]), _ratio(v[4 * i + 2], v[4 * i + 3])) for i in range(4)]
        prim = [p if has_primaries and None not in p else None for p in xy]
        lum = (_ratio(v[16], v[17]), _ratio(v[18], v[19])) if has_luminance else (None, None)
        return cls(prim[0], prim[1], prim[2], prim[3], lum[0], lum[1])

    def x265_param(self) -> str | None:
        """``G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min)`` (chromaticities in 0.00002, luminance in 0.0001
        cd/m² units, as x265 ``--master-display`` wants), or None when a part is missing."""
        parts = (self.green, self.blue, self.red, self.white_point)
        if None in parts or self.max_luminance is None:
            return None
        xy = "".join(f"{k}({round(p[0] * 50000)},{round(p[1] * 50000)})" for k, p in zip(("G", "B", "R", "WP"), parts))
        return f"{xy}L({round(self.max_luminance * 10000)},{round((self.min_luminance or 0) * 10000)})"

    def describe(self) -> str:
        lum = (f"{self.min_luminance:g}-{self.max_luminance:g} cd/m²" if self.max_luminance is not None
               else "no luminance")
        return f"mastering display {lum}" + ("" if self.red else " (no primaries)")


@dataclass(frozen=True)
class ContentLightLevel:
    """CTA-861.3 content light level: ``max_cll`` (brightest pixel) and ``max_fall`` (brightest
    frame average), cd/m²; 0 means unknown."""

    max_cll: int
    max_fall: int

    @classmethod
    def from_side_data(cls, data: bytes) -> ContentLightLevel | None:
        """Parse FFmpeg's ``AVContentLightMetadata`` (two unsigned 32-bit values)."""
        if len(data) < struct.calcsize(_CLL_FORMAT):
            return None
        return cls(*struct.unpack_from(_CLL_FORMAT, data))

    def x265_param(self) -> str:
        return f"{self.max_cll},{self.max_fall}"


@dataclass(frozen=True)
class HdrInfo:
    """A stream's HDR signalling: ``transfer`` ``pq`` | ``hlg`` (None: SDR or another transfer),
    ``primaries`` the raw AVColorPrimaries value, and the static metadata when the stream has it."""

    transfer: str | None = None
    primaries: int = 2
    mastering: MasteringDisplay | None = None
    light_level: ContentLightLevel | None = None

    @property
    def is_hdr(self) -> bool:
        """PQ or HLG transfer (whatever the primaries)."""
        return self.transfer is not None

    def describe(self) -> str:
        """One line for ``vidinvert info``: ``PQ (SMPTE ST 2084), BT.2020, mastering display ..., MaxCLL ...``."""
        if not self.is_hdr:
            return "no (SDR)"
        parts = [TRANSFER_NAMES[self.transfer], PRIMARIES_NAMES.get(self.primaries, f"primaries {self.primaries}")]
        if self.mastering is not None:
            parts.append(self.mastering.describe())
        if self.light_level is not None:
            parts.append(f"MaxCLL {self.light_level.max_cll}, MaxFALL {self.light_level.max_fall} cd/m²")
        if self.mastering is None and self.light_level is None:
            parts.append("no mastering or light-level metadata")
        return ", ".join(parts)


def read_hdr(frame) -> HdrInfo:
    """The :class:`HdrInfo` of a decoded ``av.VideoFrame`` (its transfer tag and side data)."""
    from av.sidedata.sidedata import Type

    mastering = light = None
    try:
        side = {sd.type: bytes(sd) for sd in frame.side_data}
    except (AttributeError, TypeError, ValueError):  # pragma: no cover - older PyAV
        side = {}
    if Type.MASTERING_DISPLAY_METADATA in side:
        mastering = MasteringDisplay.from_side_data(side[Type.MASTERING_DISPLAY_METADATA])
    if Type.CONTENT_LIGHT_LEVEL in side:
        light = ContentLightLevel.from_side_data(side[Type.CONTENT_LIGHT_LEVEL])
    return HdrInfo(TRANSFERS.get(int(frame.color_trc or 2)), int(frame.color_primaries or 2), mastering, light)


def x265_hdr_params(hdr: HdrInfo) -> list[str]:
    """``x265-params`` entries carrying ``hdr`` (empty for SDR): ``hdr10=1`` for PQ, the SEIs
    repeated at every keyframe (``repeat-headers=1``) and ``master-display`` / ``max-cll`` when
    the source has them. The transfer, primaries and matrix travel as the codec's colour tags."""
    if not hdr.is_hdr:
        return []
    params = ["repeat-headers=1"] + (["hdr10=1"] if hdr.transfer == "pq" else [])
    md = hdr.mastering.x265_param() if hdr.mastering is not None else None
    if md:
        params.append(f"master-display={md}")
    if hdr.light_level is not None:
        params.append(f"max-cll={hdr.light_level.x265_param()}")
    return params


def dropped_metadata(hdr: HdrInfo) -> list[str]:
    """The names of ``hdr``'s static metadata an encoder without HDR SEI support drops."""
    names = []
    if hdr.mastering is not None:
        names.append("mastering display (SMPTE ST 2086)")
    if hdr.light_level is not None:
        names.append("content light level (MaxCLL/MaxFALL)")
    return names


_NOTICED: set[tuple[str, str]] = set()


def notice_dropped(codec: str, hdr: HdrInfo, source) -> bool:
    """Log, once per (source, codec), which of ``hdr``'s static metadata ``codec`` cannot carry
    (only libx265 writes them). True when something is dropped."""
    names = dropped_metadata(hdr)
    if not names:
        return False
    key = (str(source), str(codec))
    if key not in _NOTICED:
        _NOTICED.add(key)
        log.warning("%s: %s cannot carry the HDR %s: dropped (the transfer, primaries and matrix tags are kept; "
                    "use --codec libx265 to keep them)", getattr(source, "name", source), codec, " and ".join(names))
    return True
