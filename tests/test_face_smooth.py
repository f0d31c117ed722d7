"""Temporal smoothing of crops: jitter removal without lag, gaps, fades, bounded streaming."""

from __future__ import annotations

import numpy as np
import pytest

from vidinvert.face.align import params_to_quad
from vidinvert.face.smooth import (
    INTERPOLATED,
    PASSTHROUGH,
    SmoothConfig,
    StreamingQuadSmoother,
    local_linear,
)


def _true_track(n: int) -> np.ndarray:
    """Slow real motion: drift + a slow sway of the centre, slow zoom and rotation of the axes."""
    t = np.arange(n, dtype=np.float64)
    cx = 300 + 0.6 * t + 15 * np.sin(2 * np.pi * t / 160)
    cy = 200 - 0.3 * t + 8 * np.sin(2 * np.pi * t / 210 + 1)
    half = 120 + 0.15 * t
    ang = 0.1 * np.sin(2 * np.pi * t / 240)
    return np.stack([cx, cy, half * np.cos(ang), half * np.sin(ang)], 1)


def _run(params, times=None, cfg=SmoothConfig()):
    sm = StreamingQuadSmoother(cfg)
    times = np.arange(len(params)) / 25.0 if times is None else times
    out, max_buffer = [], 0
    for i, (t, p) in enumerate(zip(times, params)):
        out += sm.push(i, t, p)
        max_buffer = max(max_buffer, sm.buffered)
    out += sm.finish()
    return out, max_buffer


def test_local_linear_is_exact_for_lines_even_one_sided():
    off = np.arange(-7, 1, dtype=float)  # truncated window at the end of a run
    vals = np.stack([3.0 + 0.8 * off, -2.0 - 0.1 * off], 1)
    np.testing.assert_allclose(local_linear(vals, off, 3.0), [3.0, -2.0], atol=1e-9)
    # symmetric window: plain normalised Gaussian average
    off = np.arange(-4, 5, dtype=float)
    v = np.random.default_rng(0).normal(size=(9, 1))
    w = np.exp(-0.5 * (off / 2.0) ** 2)
    np.testing.assert_allclose(local_linear(v, off, 2.0), (w[:, None] * v).sum(0) / w.sum(), atol=1e-12)


def test_jitter_drops_5x_and_motion_is_followed_without_lag():
    n = 240
    truth = _true_track(n)
    rng = np.random.default_rng(0)
    noisy = truth + rng.normal(0, 2.0, truth.shape)  # detector jitter (px) on centre and axes
    cfg = SmoothConfig()
    out, max_buffer = _run(noisy, cfg=cfg)
    assert [o.index for o in out] == list(range(n))  # first and last frames kept, in order
    assert all(o.status == "detected" and o.edit_weight == 1.0 for o in out)
    sm_q = np.stack([o.quad for o in out])
    raw_q, true_q = params_to_quad(noisy), params_to_quad(truth)

    def jitter(q):  # frame-to-frame corner motion minus the true motion
        return np.sqrt(np.mean((np.diff(q, axis=0) - np.diff(true_q, axis=0)) ** 2))

    assert jitter(sm_q) * 5 <= jitter(raw_q), (jitter(raw_q), jitter(sm_q))
    # the same smoother on the clean track: no lag, anywhere (including the first/last frames)
    clean, _ = _run(truth, cfg=cfg)
    err = np.abs(np.stack([o.quad for o in clean]) - true_q).max(axis=(1, 2))
    assert err[cfg.window:-cfg.window].max() < 1.0
    assert err.max() < 1.0
    # bounded look-ahead: never more than the horizon (+1 being pushed) frames held
    assert max_buffer <= cfg.horizon + 1


def test_short_gap_interpolated_in_time_long_gap_passes_through_with_fades():
    cfg = SmoothConfig(sigma_center=0.0, sigma_axes=0.0, sigma_landmarks=0.0, max_gap=0.5, fade_frames=3)
    # variable frame rate: irregular timestamps
    rng = np.random.default_rng(1)
    times = np.cumsum(rng.uniform(0.03, 0.05, 80))
    params = [np.array([10.0 * t, 5.0, 50.0, 0.0]) for t in times]  # centre x moves linearly in *time*
    missing_short = range(20, 26)                   # ~0.24 s < 0.5 s
    missing_long = range(40, 60)                    # ~0.8 s > 0.5 s
    missing_lead, missing_tail = range(0, 3), range(77, 80)
    for r in (missing_short, missing_long, missing_lead, missing_tail):
        for i in r:
            params[i] = None
    out, max_buffer = _run(params, times, cfg)
    assert [o.index for o in out] == list(range(80))
    status = [o.status for o in out]
    for i in missing_short:
        assert status[i] == INTERPOLATED
        np.testing.assert_allclose(out[i].quad.mean(0)[0], 10.0 * times[i], atol=1e-9)
    for r in (missing_long, missing_lead, missing_tail):
        assert all(status[i] == PASSTHROUGH and out[i].quad is None and out[i].edit_weight == 0 for i in r)
    w = np.array([o.edit_weight for o in out])
    np.testing.assert_allclose(w[37:40], [0.75, 0.5, 0.25])   # fade out before the long gap
    np.testing.assert_allclose(w[60:63], [0.25, 0.5, 0.75])   # fade back in after it
    np.testing.assert_allclose(w[3:6], [0.25, 0.5, 0.75])     # after the leading passthrough
    assert w[36] == 1.0 and w[63] == 1.0 and np.all(w[missing_short] == 1.0)
    # bounded: the long gap held at most the frames of max_gap plus the horizon
    assert max_buffer <= cfg.horizon + int(np.ceil(cfg.max_gap / 0.03)) + 2


def test_streaming_output_does_not_depend_on_where_the_stream_is_cut():
    """Each frame's result depends only on its bounded neighbourhood: a clip and its prefix agree
    on all frames at least a horizon away from the prefix's end."""
    truth = _true_track(120) + np.random.default_rng(3).normal(0, 1.0, (120, 4))
    params = list(truth)
    for i in (30, 31, 70):
        params[i] = None
    cfg = SmoothConfig()
    full, _ = _run(params, cfg=cfg)
    part, _ = _run(params[:90], cfg=cfg)
    for a, b in zip(full[: 90 - cfg.horizon], part):
        assert a.status == b.status
        if a.quad is not None:
            np.testing.assert_allclose(a.quad, b.quad, atol=1e-9)


def test_push_after_finish_is_an_error():
    sm = StreamingQuadSmoother()
    sm.finish()
    with pytest.raises(RuntimeError):
        sm.push(0, 0.0, None)
