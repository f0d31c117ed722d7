"""A decoded frame's own samples: the planes at their depth and layout, and exact float RGB.

:class:`Planes` holds what the decoder gave, untouched: ``Y, U, V`` (YUV formats) or ``G, B, R``
(planar RGB formats, FFmpeg's plane order), numpy ``uint8`` (8-bit) or ``uint16`` (9..16-bit,
native endian, values 0 .. 2**depth - 1), each at its own size (chroma subsampled by ``sub``).
Supported: the planar formats without alpha (``yuv420p``, ``yuvj422p``, ``yuv444p10le``,
``yuv420p12le``, ``gbrp``, ``gbrp10le`` ...); other formats (packed RGB, NV12, gray) give None and
the pipeline keeps its RGB path for them.

Conversions (float64, exact formulas, no swscale): :meth:`Planes.to_rgb` gives signal RGB in
[0, 1] of a box, chroma upsampled by sample replication (each chroma sample covers its block);
:func:`rgb_delta_to_planes` turns an RGB change into each plane's change in code values with the
stream's matrix and range (linear, so it applies to deep sources without any 8-bit step).
Coefficients: BT.601 (Kr .299, Kb .114), BT.709 (.2126, .0722), BT.2020 NCL (.2627, .0593),
SMPTE 240M (.212, .087), FCC (.30, .11). Limited range: Y = (16 + 219 E'y) 2**(d-8),
C = (128 + 224 E'c) 2**(d-8); full range: Y = (2**d - 1) E'y, C = (2**d - 1) E'c + 2**(d-1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import av
import numpy as np

from vidinvert.video.colour import ColourSpec, format_is_rgb

_KRB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593),
        "smpte240m": (0.212, 0.087), "fcc": (0.30, 0.11)}


def planar_format(pix_fmt: str) -> tuple[int, tuple[int, int], tuple[int, int, int]] | None:
    """``(depth, (sx, sy), rgb_planes)`` for a supported planar format, else None.

    ``sx``/``sy`` the chroma subsampling factors (1 for RGB); ``rgb_planes`` the plane of R, G, B
    for RGB formats ((2, 0, 1) for gbrp*), (0, 1, 2) for YUV."""
    try:
        fmt = av.VideoFormat(pix_fmt, 64, 64)
    except (ValueError, av.FFmpegError):
        return None
    comps = list(fmt.components)
    if len(comps) != 3 or any(c.is_alpha for c in comps) or len({c.plane for c in comps}) != 3:
        return None
    bits = {c.bits for c in comps}
    if len(bits) != 1 or fmt.is_big_endian or pix_fmt.endswith("be"):
        return None
    depth = bits.pop()
    if depth > 16 or "f" in pix_fmt.removeprefix("gbr").removeprefix("yuv")[:2]:
        return None
    if format_is_rgb(pix_fmt):
        return depth, (1, 1), tuple(c.plane for c in comps)
    sx, sy = 64 // fmt.chroma_width(), 64 // fmt.chroma_height()
    return depth, (sx, sy), (0, 1, 2)


@dataclass(frozen=True, eq=False)
class Planes:
    """One frame's samples in the source's own layout (see the module doc).

    ``data``: the planes in FFmpeg's order, 2-D ``uint8``/``uint16`` arrays; ``spec`` the stream's
    matrix and range (RGB formats: ``rgb``/``full``); ``rgb_planes`` the plane index of R, G, B.
    """

    pix_fmt: str
    depth: int
    sub: tuple[int, int]
    data: tuple[np.ndarray, ...] = field(repr=False)
    spec: ColourSpec
    rgb_planes: tuple[int, int, int] = (0, 1, 2)

    @property
    def height(self) -> int:
        return int(self.data[0].shape[0])

    @property
    def width(self) -> int:
        return int(self.data[0].shape[1])

    @property
    def is_rgb(self) -> bool:
        return self.spec.matrix == "rgb"

    @property
    def peak(self) -> int:
        return (1 << self.depth) - 1

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.data)

    @classmethod
    def from_frame(cls, frame: av.VideoFrame, spec: ColourSpec) -> Planes | None:
        """The samples of a decoded frame (copied out of FFmpeg's buffers), None if unsupported."""
        fmt = planar_format(frame.format.name)
        if fmt is None:
            return None
        depth, sub, rgb_planes = fmt
        dtype = np.dtype(np.uint8) if depth <= 8 else np.dtype("<u2")
        data = []
        for plane in frame.planes:
            raw = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
            row = plane.width * dtype.itemsize
            data.append(np.array(raw[:, :row]).view(dtype).astype(_native(depth), copy=False))  # a copy
        if spec.matrix != "rgb" and format_is_rgb(frame.format.name):
            spec = ColourSpec("rgb", "full", True, True, spec.primaries, spec.trc)
        return cls(frame.format.name, depth, sub, tuple(data), spec, rgb_planes)

    def to_frame(self) -> av.VideoFrame:
        """A new ``av.VideoFrame`` in :attr:`pix_fmt` holding these samples, tagged with :attr:`spec`."""
        frame = av.VideoFrame(self.width, self.height, self.pix_fmt)
        for plane, arr in zip(frame.planes, self.data):
            dst = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
            src = arr.astype("<u2", copy=False).view(np.uint8) if self.depth > 8 else arr
            dst[:, : src.shape[1]] = src
        frame.colorspace = self.spec.avcol_matrix
        frame.color_range = self.spec.avcol_range
        frame.color_primaries = self.spec.primaries
        frame.color_trc = self.spec.trc
        return frame

    def with_data(self, data: tuple[np.ndarray, ...]) -> Planes:
        return Planes(self.pix_fmt, self.depth, self.sub, tuple(data), self.spec, self.rgb_planes)

    def copy(self) -> Planes:
        return self.with_data(tuple(p.copy() for p in self.data))

    def oriented(self, orientation) -> Planes | None:
        """The planes turned like the RGB frames (None when the turn would not keep the layout:
        a 90-degree turn of 4:2:2, an odd size in a subsampled direction); the identity returns ``self``."""
        if orientation.is_identity:
            return self
        sx, sy = self.sub
        h, w = self.height, self.width
        if (orientation.transpose and sx != sy) or (sx > 1 and w % sx) or (sy > 1 and h % sy):
            return None
        sub = (sy, sx) if orientation.transpose else (sx, sy)
        data = tuple(np.ascontiguousarray(orientation.apply(p[..., None])[..., 0]) for p in self.data)
        return Planes(self.pix_fmt, self.depth, sub, data, self.spec, self.rgb_planes)

    # -- float RGB --------------------------------------------------------------------------
    def to_rgb(self, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """Signal RGB ``[h,w,3]`` float64 in [0, 1] (unclipped) of ``box`` (x0, y0, x1, y1; frame
        pixels, exclusive end; None = the frame), exact formulas, chroma by sample replication."""
        x0, y0, x1, y1 = box if box is not None else (0, 0, self.width, self.height)
        sx, sy = self.sub
        ys, xs = np.arange(y0, y1), np.arange(x0, x1)
        full = [self.data[0][y0:y1, x0:x1].astype(np.float64)]
        for p in self.data[1:]:
            full.append(p[np.ix_(ys // sy, xs // sx)].astype(np.float64))
        if self.is_rgb:
            r, g, b = (full[i] / self.peak for i in self.rgb_planes)
            return np.stack([r, g, b], -1)
        kr, kb = _KRB[self.spec.matrix]
        (ys_, yo), (cs, co) = _code_scale(self.spec.range, self.depth)
        ey = (full[0] - yo) / ys_
        cb, cr = (full[1] - co) / cs, (full[2] - co) / cs
        r = ey + 2 * (1 - kr) * cr
        b = ey + 2 * (1 - kb) * cb
        g = (ey - kr * r - kb * b) / (1 - kr - kb)
        return np.stack([r, g, b], -1)


def _native(depth: int):
    return np.uint8 if depth <= 8 else np.uint16


def _code_scale(rng: str, depth: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """((Y scale, Y offset), (C scale, C offset)) in code values for ``depth`` bits."""
    if rng == "full":
        peak = float((1 << depth) - 1)
        return (peak, 0.0), (peak, float(1 << (depth - 1)))
    k = float(1 << (depth - 8))
    return (219 * k, 16 * k), (224 * k, 128 * k)


def rgb_delta_to_planes(planes: Planes, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An RGB change ``[h,w,3]`` float (signal units, [0, 1] scale) -> the change of each plane in
    code values at full resolution ``(dP0, dP1, dP2)`` in FFmpeg's plane order (float64)."""
    d = np.asarray(d, np.float64)
    dr, dg, db = d[..., 0], d[..., 1], d[..., 2]
    if planes.is_rgb:
        out: list[np.ndarray] = [np.empty(0)] * 3
        for c, p in zip((dr, dg, db), planes.rgb_planes):
            out[p] = c * planes.peak
        return out[0], out[1], out[2]
    kr, kb = _KRB[planes.spec.matrix]
    (ys, _), (cs, _) = _code_scale(planes.spec.range, planes.depth)
    dy = kr * dr + (1 - kr - kb) * dg + kb * db
    return dy * ys, (db - dy) / (2 * (1 - kb)) * cs, (dr - dy) / (2 * (1 - kr)) * cs


def block_box(planes: Planes, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """``box`` grown to whole chroma blocks (clipped to the frame)."""
    sx, sy = planes.sub
    x0, y0, x1, y1 = box
    return (x0 - x0 % sx, y0 - y0 % sy, min(planes.width, -(-x1 // sx) * sx), min(planes.height, -(-y1 // sy) * sy))


def add_rgb_delta(planes: Planes, box: tuple[int, int, int, int], d: np.ndarray, support: np.ndarray) -> None:
    """Add an RGB change to the samples of ``box`` (whole chroma blocks: :func:`block_box`), **in place**.

    ``d``: ``[h,w,3]`` float signal RGB change ([0, 1] scale) over the box; ``support``: ``[h,w]``
    bool, where the paste has weight. Full-resolution planes change where ``support`` holds:
    ``round(sample + delta)`` clipped to 0 .. 2**depth - 1; a subsampled plane's sample changes when
    any pixel of its block is in the support, by the block's mean change. Every other sample is
    left as it is (not even rewritten)."""
    x0, y0, x1, y1 = box
    sx, sy = planes.sub
    h, w = y1 - y0, x1 - x0
    for k, (plane, delta) in enumerate(zip(planes.data, rgb_delta_to_planes(planes, d))):
        if k == 0 or (sx, sy) == (1, 1):
            region = plane[y0:y1, x0:x1]
            new = np.clip(np.rint(region + delta), 0, planes.peak)
            region[support] = new[support]
            continue
        hb, wb = -(-h // sy), -(-w // sx)
        pad = np.zeros((hb * sy, wb * sx))
        pad[:h, :w] = delta
        count = np.zeros((hb * sy, wb * sx))
        count[:h, :w] = 1
        sup = np.zeros((hb * sy, wb * sx), bool)
        sup[:h, :w] = support
        mean = pad.reshape(hb, sy, wb, sx).sum((1, 3)) / count.reshape(hb, sy, wb, sx).sum((1, 3))
        touched = sup.reshape(hb, sy, wb, sx).any((1, 3))
        region = plane[y0 // sy : y0 // sy + hb, x0 // sx : x0 // sx + wb]
        new = np.clip(np.rint(region + mean), 0, planes.peak)
        region[touched] = new[touched]
