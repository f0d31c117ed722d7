"""Colour conversion against a numpy implementation of the BT.601 / BT.709 equations (ITU-R)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.video_fixtures import make_clip, make_yuv_clip
from vidinvert.video import VideoWriter, open_video, probe
from vidinvert.video.colour import ColourSpec, FrameMaker, resolve_colour

KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}


def yuv_to_rgb_reference(y, u, v, matrix: str, full: bool, bits: int = 8) -> np.ndarray:
    """Float RGB in 0..255 from Y'CbCr samples (H.273 quantisation), clipped, not rounded."""
    kr, kb = KR_KB[matrix]
    kg = 1 - kr - kb
    s = 2 ** (bits - 8)
    y, u, v = (a.astype(np.float64) for a in (y, u, v))
    if full:
        m = 2**bits - 1
        ey, epb, epr = y / m, (u - 128 * s) / m, (v - 128 * s) / m
    else:
        ey, epb, epr = (y - 16 * s) / (219 * s), (u - 128 * s) / (224 * s), (v - 128 * s) / (224 * s)
    r = ey + 2 * (1 - kr) * epr
    b = ey + 2 * (1 - kb) * epb
    g = (ey - kr * r - kb * b) / kg
    return np.clip(np.stack([r, g, b], -1) * 255, 0, 255)


def rgb_to_yuv_reference(rgb, matrix: str, full: bool) -> np.ndarray:
    kr, kb = KR_KB[matrix]
    x = rgb.astype(np.float64) / 255
    y = kr * x[..., 0] + (1 - kr - kb) * x[..., 1] + kb * x[..., 2]
    pb, pr = (x[..., 2] - y) / (2 * (1 - kb)), (x[..., 0] - y) / (2 * (1 - kr))
    if full:
        return np.stack([255 * y, 128 + 255 * pb, 128 + 255 * pr])
    return np.stack([16 + 219 * y, 128 + 224 * pb, 128 + 224 * pr])


def _planes(bits: int, n: int = 2, h: int = 16, w: int = 24):
    rng = np.random.default_rng(bits)
    s = 2 ** (bits - 8)
    dtype = np.uint16 if bits > 8 else np.uint8
    out = []
    for _ in range(n):
        y = rng.integers(16 * s, 236 * s, (h, w)).astype(dtype)
        u = rng.integers(16 * s, 241 * s, (h, w)).astype(dtype)
        v = rng.integers(16 * s, 241 * s, (h, w)).astype(dtype)
        out.append((y, u, v))
    return out


def test_reference_matrices_differ():
    """The BT.601 and BT.709 references disagree on these samples, so the tests below can tell them apart."""
    (y, u, v), = _planes(8, 1)
    a = yuv_to_rgb_reference(y, u, v, "bt601", False)
    b = yuv_to_rgb_reference(y, u, v, "bt709", False)
    c = yuv_to_rgb_reference(y, u, v, "bt601", True)
    assert np.abs(a - b).max() > 20 and np.abs(a - c).max() > 10


@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
@pytest.mark.parametrize("rng_name", ["limited", "full"])
@pytest.mark.parametrize("bits", [8, 10])
def test_reader_matches_reference(tmp_path, matrix, rng_name, bits):
    planes = _planes(bits)
    pix_fmt = "yuv444p" if bits == 8 else "yuv444p10le"
    path = make_yuv_clip(tmp_path / "c.mkv", planes, pix_fmt=pix_fmt, colorspace=matrix, color_range=rng_name)
    info = probe(path)
    assert (info.colour.matrix, info.colour.range) == (matrix, rng_name)
    assert info.colour.matrix_tagged and info.colour.range_tagged and info.bit_depth == bits
    for f, (y, u, v) in zip(open_video(path), planes):
        ref = yuv_to_rgb_reference(y, u, v, matrix, rng_name == "full", bits)
        err = np.abs(f.rgb.astype(np.float64) - ref)
        # 8-bit: correctly rounded within one level; 10-bit (converted once, straight to rgb24):
        # FFmpeg quantises the full-range chroma scale slightly differently from H.273.
        assert err.max() <= (1.0 if bits == 8 else 1.5)
        assert err.mean() < 0.5


def test_untagged_stream_uses_documented_guess(tmp_path):
    planes = _planes(8, 1)
    path = make_yuv_clip(tmp_path / "u.mkv", planes, colorspace=None, color_range=None)
    info = probe(path)
    assert (info.colour.matrix, info.colour.range) == ("bt601", "limited")  # small frame: BT.601
    assert not info.colour.matrix_tagged and not info.colour.range_tagged
    (y, u, v), = planes
    f = next(iter(open_video(path)))
    assert np.abs(f.rgb - yuv_to_rgb_reference(y, u, v, "bt601", False)).max() <= 1.0
    # the guess for HD frames is BT.709, and yuvj formats are full range
    assert resolve_colour("yuv420p", 2, 0, 1080).matrix == "bt709"
    assert resolve_colour("yuvj420p", 2, 0, 480).range == "full"
    assert resolve_colour("gbrp", 0, 0, 480).matrix == "rgb"


@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
@pytest.mark.parametrize("rng_name", ["limited", "full"])
def test_writer_conversion_matches_reference(matrix, rng_name):
    rgb = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    frame = FrameMaker("yuv444p", ColourSpec(matrix, rng_name))(rgb)
    assert frame.colorspace == {"bt601": 6, "bt709": 1}[matrix]
    assert frame.color_range == {"limited": 1, "full": 2}[rng_name]
    got = frame.to_ndarray().astype(np.float64)  # (3, H, W) planes
    assert np.abs(got - rgb_to_yuv_reference(rgb, matrix, rng_name == "full")).max() <= 1.1


def test_round_trip_keeps_colour_tags(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", n_frames=3, colorspace="bt709", color_range="full")
    info = probe(clip.path)
    assert (info.colour.matrix, info.colour.range) == ("bt709", "full")
    with VideoWriter(tmp_path / "o.mp4", like=info) as w:
        for f in open_video(clip.path):
            w.write_frame(f)
    out = probe(tmp_path / "o.mp4")
    assert (out.colour.matrix, out.colour.range, out.colour.matrix_tagged) == ("bt709", "full", True)
