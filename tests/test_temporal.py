import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter1d

from vidinvert.edit.temporal import FineMeanState, run_ids, smooth_window


def _reference(x: np.ndarray, valid: list[bool], sigma: float) -> np.ndarray:
    """Slow obvious version: per valid frame, a weighted least-squares line (np.polyfit) over its run's
    window, evaluated at the frame (a single-frame run keeps its value)."""
    r = int(np.ceil(3 * sigma))
    ids = run_ids(valid).numpy()
    out = x.copy()
    flat = x.reshape(len(x), -1)
    for i in range(len(x)):
        if not valid[i]:
            continue
        js = [j for j in range(max(0, i - r), min(len(x), i + r + 1)) if ids[j] == ids[i]]
        if len(js) == 1:
            continue
        o = np.array(js, float) - i
        g = np.exp(-0.5 * (o / sigma) ** 2)
        coef = np.polyfit(o, flat[js], 1, w=np.sqrt(g))  # minimises sum g (y - a - b o)^2
        out[i] = coef[1].reshape(x.shape[1:])
    return out


def test_run_ids_break_at_gaps():
    assert run_ids([True, True, False, True, False, False, True]).tolist() == [1, 1, -1, 2, -1, -1, 3]


@pytest.mark.parametrize("sigma", [0.8, 1.5, 3.0])
def test_smooth_window_matches_reference_and_respects_gaps(sigma):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 4, 3))
    valid = [not (10 <= i <= 12) for i in range(30)]
    got = smooth_window(torch.from_numpy(x), valid, range(30), sigma).numpy()
    np.testing.assert_allclose(got, _reference(x, valid, sigma), rtol=1e-9, atol=1e-9)
    # interior of a run equals scipy's Gaussian filter with the same truncation
    r = int(np.ceil(3 * sigma))
    sp = gaussian_filter1d(x[13:], sigma, axis=0, truncate=r / sigma, mode="constant")
    np.testing.assert_allclose(got[13 + r : 30 - r], sp[r : 17 - r], rtol=1e-9, atol=1e-12)
    # invalid frames are returned unchanged and never mixed into their neighbours
    assert np.array_equal(got[10:13], x[10:13])


def test_smooth_window_has_no_lag_even_at_the_ends():
    x = torch.linspace(0, 10, 40, dtype=torch.float64).view(40, 1)
    got = smooth_window(x, [True] * 40, range(0, 40), 2.0)
    np.testing.assert_allclose(got.numpy(), x.numpy(), atol=1e-9)  # a linear ramp passes unchanged everywhere
    part = smooth_window(x, [True] * 40, range(5, 15), 2.0)
    assert part.shape == (10, 1) and torch.allclose(part, got[5:15])
    # and noise is reduced
    noisy = x + 0.3 * torch.randn(40, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sm = smooth_window(noisy, [True] * 40, range(40), 2.0)
    assert (sm - x).abs().mean() < 0.6 * (noisy - x).abs().mean()


def test_fine_mean_state_is_a_running_mean_of_the_fine_rows():
    torch.manual_seed(1)
    w = torch.randn(10, 18, 8)
    st = FineMeanState()
    out = torch.stack([st.apply(w[t], 9) for t in range(10)])
    assert torch.equal(out[:, :9], w[:, :9])
    for t in range(10):
        assert torch.allclose(out[t, 9:], w[: t + 1, 9:].mean(0), atol=1e-6)
    st.reset()
    assert torch.allclose(st.apply(w[5], 9)[9:], w[5, 9:])
