"""Pixel format, colour range and YUV matrix: read from the stream, honoured in the conversion.

Decoded frames are converted to RGB **once**, by swscale, with the stream's own matrix and
range passed explicitly (10-bit and other formats go straight to ``rgb24``; the rounding error
against the exact BT.601/BT.709 formulas is at most one level in 8 bits). Untagged streams
follow what players do: the range is limited (full for the ``yuvj*`` formats and for RGB
formats), the matrix is BT.709 for frames at least 720 rows high and BT.601 below.

The writer uses the inverse conversion (``rgb24`` -> its pixel format) with the same names
and tags the output with them, so a clip keeps its range and matrix through a round trip.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, VideoReformatter

log = logging.getLogger(__name__)

# FFmpeg AVColorSpace values -> our matrix names (None: unspecified, resolved by a guess).
_AVCOL_SPC_TO_MATRIX = {
    0: "rgb",
    1: "bt709",
    2: None,
    4: "fcc",
    5: "bt601",  # BT470BG: same matrix as SMPTE 170M
    6: "bt601",  # SMPTE 170M
    7: "smpte240m",
    9: "bt2020",  # BT2020 non-constant luminance
}
# Our matrix names -> (swscale colourspace, the AVColorSpace value we tag outputs with).
_MATRIX = {
    "bt601": (Colorspace.ITU601, 6),
    "bt709": (Colorspace.ITU709, 1),
    "bt2020": (Colorspace.BT2020, 9),
    "smpte240m": (Colorspace.SMPTE240M, 7),
    "fcc": (Colorspace.FCC, 4),
}
_RANGE = {"limited": ColorRange.MPEG, "full": ColorRange.JPEG}


@dataclass(frozen=True)
class ColourSpec:
    """How a stream's samples map to RGB.

    ``matrix``: ``bt601`` | ``bt709`` | ``bt2020`` | ``smpte240m`` | ``fcc`` | ``rgb`` (RGB
    pixel formats); ``range``: ``limited`` | ``full``. ``*_tagged`` says whether the stream
    said so or the value is the documented guess. ``primaries`` and ``trc`` are FFmpeg's raw
    AVColorPrimaries / AVColorTransferCharacteristic values (2 = unspecified), carried to
    outputs as tags only (no gamut or transfer conversion is done).
    """

    matrix: str
    range: str
    matrix_tagged: bool = True
    range_tagged: bool = True
    primaries: int = 2
    trc: int = 2

    @property
    def avcol_matrix(self) -> int:
        """The AVColorSpace value for tagging (0 for RGB)."""
        return 0 if self.matrix == "rgb" else _MATRIX[self.matrix][1]

    @property
    def avcol_range(self) -> int:
        return int(_RANGE[self.range])


def format_is_rgb(pix_fmt: str) -> bool:
    fmt = av.VideoFormat(pix_fmt)
    return fmt.is_rgb or pix_fmt.startswith(("gbr", "rgb", "bgr", "argb", "abgr", "0rgb", "0bgr"))


def bit_depth(pix_fmt: str) -> int:
    """Largest bits per component of a pixel format (8 for yuv420p, 10 for yuv420p10le)."""
    comps = av.VideoFormat(pix_fmt).components
    return max((c.bits for c in comps), default=8)


def chroma_layout(pix_fmt: str) -> str:
    """``420`` | ``422`` | ``444`` | ``440`` | ``411`` | ``410`` for YUV, ``rgb``, ``gray``."""
    if format_is_rgb(pix_fmt):
        return "rgb"
    fmt = av.VideoFormat(pix_fmt, 64, 64)
    if len([c for c in fmt.components if not c.is_alpha]) < 3:
        return "gray"
    sx, sy = 64 // max(1, fmt.chroma_width()), 64 // max(1, fmt.chroma_height())
    return {(1, 1): "444", (2, 1): "422", (2, 2): "420", (1, 2): "440", (4, 1): "411", (4, 4): "410"}.get(
        (sx, sy), "420"
    )


def resolve_colour(
    pix_fmt: str, colorspace: int, color_range: int, height: int, primaries: int = 2, trc: int = 2
) -> ColourSpec:
    """Resolve a stream's tags (FFmpeg integer values) into a :class:`ColourSpec`.

    ``height`` is the stored (coded) frame height, used for the untagged-matrix guess.
    """
    if format_is_rgb(pix_fmt):
        return ColourSpec("rgb", "full", True, True, primaries, trc)
    matrix = _AVCOL_SPC_TO_MATRIX.get(int(colorspace), "unknown")
    matrix_tagged = matrix is not None
    if matrix is None:
        matrix = "bt709" if height >= 720 else "bt601"
    elif matrix == "unknown" or matrix == "rgb":
        guess = "bt709" if height >= 720 else "bt601"
        log.warning(
            "colour matrix %d of this stream is not supported by the converter; using %s", colorspace, guess
        )
        matrix, matrix_tagged = guess, False
    if int(color_range) in (1, 2):
        rng, range_tagged = ("limited" if int(color_range) == 1 else "full"), True
    else:
        rng, range_tagged = ("full" if pix_fmt.startswith("yuvj") else "limited"), False
    return ColourSpec(matrix, rng, matrix_tagged, range_tagged, int(primaries), int(trc))


class RGBConverter:
    """Converts decoded frames to RGB24 with a fixed :class:`ColourSpec` (one per stream).

    ``__call__(frame) -> np.ndarray`` HxWx3 uint8 RGB, full range, stored orientation
    (``out_format="rgb48le"``: uint16, 0..65535).
    """

    def __init__(self, spec: ColourSpec, out_format: str = "rgb24") -> None:
        self.spec = spec
        self.out_format = out_format
        self._sws = VideoReformatter()

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        if self.spec.matrix == "rgb":
            out = self._sws.reformat(frame, format=self.out_format, src_color_range=ColorRange.JPEG,
                                     dst_color_range=ColorRange.JPEG)
        else:
            out = self._sws.reformat(
                frame,
                format=self.out_format,
                src_colorspace=_MATRIX[self.spec.matrix][0],
                src_color_range=_RANGE[self.spec.range],
                dst_color_range=ColorRange.JPEG,
            )
        return out.to_ndarray()


class FrameMaker:
    """Builds encoder frames from RGB24 arrays in a pixel format, tagged with a :class:`ColourSpec`.

    ``__call__(rgb HxWx3 uint8) -> av.VideoFrame`` in ``pix_fmt`` (``uint16`` 0..65535: taken as
    ``rgb48le``). For RGB pixel formats (``bgr0``, ``gbrp``...) the conversion is a lossless
    re-packing and the tags say RGB/full.
    """

    def __init__(self, pix_fmt: str, spec: ColourSpec) -> None:
        self.pix_fmt = pix_fmt
        self.rgb_out = format_is_rgb(pix_fmt)
        self.spec = ColourSpec("rgb", "full", True, True, spec.primaries, spec.trc) if self.rgb_out else spec
        self._sws = VideoReformatter()

    def __call__(self, rgb: np.ndarray) -> av.VideoFrame:
        in_fmt = "rgb48le" if rgb.dtype == np.uint16 else "rgb24"
        src = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format=in_fmt)
        if self.rgb_out:
            frame = self._sws.reformat(src, format=self.pix_fmt, src_color_range=ColorRange.JPEG,
                                       dst_color_range=ColorRange.JPEG)
        else:
            frame = self._sws.reformat(
                src,
                format=self.pix_fmt,
                src_colorspace=_MATRIX[self.spec.matrix][0],
                dst_colorspace=_MATRIX[self.spec.matrix][0],
                src_color_range=ColorRange.JPEG,
                dst_color_range=_RANGE[self.spec.range],
            )
        if frame is src:  # swscale had nothing to do (pix_fmt == the input's)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format=in_fmt)
        frame.colorspace = self.spec.avcol_matrix
        frame.color_range = self.spec.avcol_range
        frame.color_primaries = self.spec.primaries
        frame.color_trc = self.spec.trc
        return frame


def sws_args(src: ColourSpec, dst: ColourSpec) -> dict:
    """swscale arguments converting between two specs (RGB specs: full range, no matrix)."""
    args: dict = {"src_color_range": _RANGE[src.range], "dst_color_range": _RANGE[dst.range]}
    if src.matrix != "rgb":
        args["src_colorspace"] = _MATRIX[src.matrix][0]
    if dst.matrix != "rgb":
        args["dst_colorspace"] = _MATRIX[dst.matrix][0]
    return args
