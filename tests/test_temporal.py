import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter1d

from vidinvert.edit.temporal import RunningFineMean, StreamingGaussian


def _stream(sm, x, chunks):
    outs = []
    i = 0
    for c in chunks:
        o = sm.push(x[i : i + c])
        i += c
        outs.append(o)
    f = sm.flush()
    if f is not None:
        outs.append(f)
    return torch.cat(outs)


@pytest.mark.parametrize("chunks", [[1] * 23, [5, 5, 5, 8], [23], [2, 9, 1, 11]])
def test_streaming_gaussian_matches_offline_reference(chunks):
    torch.manual_seed(0)
    x = torch.randn(23, 4, 3, dtype=torch.float64)
    sigma = 1.5
    got = _stream(StreamingGaussian(sigma), x, chunks)
    assert got.shape == x.shape  # no dropped first/last frames
    # independent reference: truncated, renormalised centred Gaussian, computed densely
    r = int(np.ceil(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    ref = np.zeros_like(x.numpy())
    for i in range(23):
        lo, hi = max(0, i - r), min(23, i + r + 1)
        w = taps[lo - i + r : hi - i + r]
        ref[i] = np.tensordot(w / w.sum(), x.numpy()[lo:hi], axes=1)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12, atol=1e-12)
    # interior frames equal scipy's Gaussian filter (same truncation)
    sp = gaussian_filter1d(x.numpy(), sigma, axis=0, truncate=r / sigma, mode="constant")
    np.testing.assert_allclose(got.numpy()[r:-r], sp[r:-r], rtol=1e-9, atol=1e-12)


def test_smoothing_has_no_lag_on_a_ramp():
    x = torch.linspace(0, 10, 40, dtype=torch.float64).view(40, 1)
    got = _stream(StreamingGaussian(2.0), x, [7] * 5 + [5])
    r = 6
    np.testing.assert_allclose(got[r:-r].numpy(), x[r:-r].numpy(), atol=1e-9)  # linear signals pass unchanged


def test_running_fine_mean():
    torch.manual_seed(1)
    w = torch.randn(10, 18, 8)
    m = RunningFineMean(start=9)
    out = torch.cat([m(w[:3]), m(w[3:])])
    assert torch.equal(out[:, :9], w[:, :9])
    for t in range(10):
        assert torch.allclose(out[t, 9:], w[: t + 1, 9:].mean(0), atol=1e-6)
    m.reset()
    assert torch.allclose(m(w[5:6])[0, 9:], w[5, 9:])
