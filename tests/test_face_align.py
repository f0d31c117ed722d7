"""FFHQ quads and the batched alignment warp, against hand computation, OpenCV and a slow sampler."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from vidinvert.face import align
from vidinvert.face.types import landmarks5_from_68


def _synthetic_68(eye_l, eye_r, mouth_l, mouth_r, rng=None):
    """68 points whose eye means and mouth corners are the given points (others random)."""
    rng = rng or np.random.default_rng(0)
    lm = rng.random((68, 2)) * 50 + 100
    for sl, c in ((slice(36, 42), eye_l), (slice(42, 48), eye_r)):
        off = rng.normal(size=(6, 2)) * 4
        lm[sl] = np.asarray(c) + off - off.mean(0)
    lm[48], lm[54] = mouth_l, mouth_r
    return lm


def test_quad_from_68_matches_hand_computation():
    lm = _synthetic_68((100, 100), (160, 100), (110, 170), (150, 170))
    # eye_avg (130,100), eye_to_eye (60,0), eye_to_mouth (0,70): x = (60,0)+(70,0) -> unit (1,0),
    # scaled by max(60*2, 70*1.8) = 126; y = (0,126); centre = (130, 100 + 7)
    expected = np.array([[4, -19], [4, 233], [256, 233], [256, -19]], np.float64)
    np.testing.assert_allclose(align.quad_from_68(lm), expected, atol=1e-9)


def test_quad_is_similarity_equivariant_and_5_point_version_agrees():
    rng = np.random.default_rng(1)
    lm = _synthetic_68((100, 104), (157, 98), (112, 168), (149, 171), rng)
    q = align.quad_from_68(lm)
    th, s, t = np.deg2rad(23.0), 1.7, np.array([31.0, -12.0])
    r = s * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    np.testing.assert_allclose(align.quad_from_68(lm @ r.T + t), q @ r.T + t, atol=1e-9)
    np.testing.assert_allclose(align.quad_from_5(landmarks5_from_68(lm)), q, atol=1e-9)
    # a square: equal sides, right angles; params round trip
    e1, e2 = q[3] - q[0], q[1] - q[0]
    assert abs(np.dot(e1, e2)) < 1e-6 and abs(np.hypot(*e1) - np.hypot(*e2)) < 1e-9
    np.testing.assert_allclose(align.params_to_quad(align.quad_to_params(q)), q, atol=1e-9)
    m = align.crop_to_frame(q[None], 64)
    mi = align.frame_to_crop(q[None], 64)
    pts = rng.random((10, 2)) * 64
    np.testing.assert_allclose(align.apply_affine(mi[0], align.apply_affine(m[0], pts)), pts, atol=1e-9)


def _slow_bilinear_reflect(img: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """Obvious reference: per output pixel, map through ``m`` (crop->frame), reflect, bilinear."""
    h, w = img.shape[:2]
    out = np.zeros((size, size, img.shape[2]))

    def refl(i, n):  # BORDER_REFLECT on integer indices: ... 1 0 | 0 1 2 ... n-1 | n-1 n-2 ...
        i = i % (2 * n)
        return np.where(i >= n, 2 * n - 1 - i, i)

    for v in range(size):
        for u in range(size):
            x, y = m @ np.array([u, v, 1.0])
            x0, y0 = int(np.floor(x)), int(np.floor(y))
            fx, fy = x - x0, y - y0
            acc = 0.0
            for dy, wy in ((0, 1 - fy), (1, fy)):
                for dx, wx in ((0, 1 - fx), (1, fx)):
                    acc = acc + wy * wx * img[refl(y0 + dy, h), refl(x0 + dx, w)].astype(np.float64)
            out[v, u] = acc
    return out


def test_warp_matches_slow_sampler_and_opencv_with_reflection():
    rng = np.random.default_rng(2)
    img = (rng.random((57, 83, 3)) * 255).astype(np.uint8)
    # rotated square sticking out of the top-left corner (reflection) and a magnifying one inside
    quads = np.stack([align.params_to_quad(np.array([10.0, 14.0, 21.0, 9.0])),
                      align.params_to_quad(np.array([50.0, 30.0, 12.0, -5.0]))])
    size = 40
    out = align.warp_faces([img, img], quads, size, antialias=False).permute(0, 2, 3, 1).numpy()
    for i, q in enumerate(quads):
        m = align.crop_to_frame(q[None], size)[0]
        ref = _slow_bilinear_reflect(img, m, size) / 127.5 - 1
        np.testing.assert_allclose(out[i], ref, atol=2e-5)
        cv = cv2.warpAffine(img.astype(np.float32), m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_REFLECT) / 127.5 - 1
        np.testing.assert_allclose(out[i], cv, atol=1e-4)
    # a float tensor input on the "device" gives the same crops
    t = torch.from_numpy(np.stack([img, img])).permute(0, 3, 1, 2).float() / 127.5 - 1
    out_t = align.warp_faces(t, quads, size, antialias=False).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(out_t, out, atol=2e-5)


def test_antialiased_minification_is_an_area_filter():
    """Axis-aligned integer minification equals OpenCV's INTER_AREA exactly (box average)."""
    rng = np.random.default_rng(3)
    img = cv2.GaussianBlur((rng.random((256, 256, 3)) * 255).astype(np.uint8), (0, 0), 1.0)
    quad = np.array([[[-0.5, -0.5], [-0.5, 255.5], [255.5, 255.5], [255.5, -0.5]]])
    out = align.warp_faces([img], quad, 64).permute(0, 2, 3, 1).numpy()[0]
    ref = cv2.resize(img.astype(np.float32), (64, 64), interpolation=cv2.INTER_AREA) / 127.5 - 1
    np.testing.assert_allclose(out, ref, atol=1e-4)
    t = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1
    np.testing.assert_allclose(align.warp_faces(t, quad, 64).permute(0, 2, 3, 1).numpy()[0], ref, atol=1e-4)


@pytest.mark.parametrize("size", [64, 24])  # 24: scale > 4 also uses the area pre-downscale
def test_antialiasing_suppresses_aliasing_when_minifying(size):
    yy, xx = np.mgrid[0:600, 0:600]
    pattern = 127.5 + 120 * np.sin(2 * np.pi * 0.43 * xx) * np.sin(2 * np.pi * 0.41 * yy)
    img = np.repeat(pattern[..., None], 3, 2).round().astype(np.uint8)
    quad = align.params_to_quad(np.array([300.0, 300.0, 180.0, 40.0]))[None]  # rotated, ~370 px wide
    assert align.quad_scale(quad, size)[0] > 5
    mean = img.mean() / 127.5 - 1
    raw = align.warp_faces([img], quad, size, antialias=False)
    aa = align.warp_faces([img], quad, size, antialias=True)
    alias_raw = (raw - mean).pow(2).mean().sqrt().item()
    alias_aa = (aa - mean).pow(2).mean().sqrt().item()
    assert alias_raw > 0.1
    assert alias_aa < alias_raw / 8, (alias_raw, alias_aa)
    # tensor input path antialiases the same way
    t = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1
    np.testing.assert_allclose(align.warp_faces(t, quad, size).numpy(), aa.numpy(), atol=2e-3)
