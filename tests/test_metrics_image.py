"""Image metrics against independent references: scikit-image (SSIM, PSNR), hand values (MSE),
the lpips package's own network (LPIPS), and the identities of equal inputs."""

from __future__ import annotations

import copy
import math
import socket
import urllib.request

import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from vidinvert.errors import VidinvertError
from vidinvert.metrics.image import (
    LPIPSMetric,
    gaussian_window,
    load_lpips,
    mse,
    psnr,
    ssim,
    to_unit_interval,
)


def _t(img: np.ndarray) -> torch.Tensor:
    """HxWxC float in [0,1] -> [1,C,H,W]."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]


def _sk_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=1, channel_axis=2)


def _pairs():
    """(reference, distorted) HxWx3 float64 pairs in [0,1]: random and real images."""
    rng = np.random.default_rng(0)
    out = []
    a = rng.random((37, 52, 3))
    out.append(("random", a, np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)))
    b = rng.random((24, 24, 3))
    out.append(("random-unrelated", b, rng.random((24, 24, 3))))
    for name, img in (("astronaut", data.astronaut()[::4, ::4]), ("coffee", data.coffee()[::4, ::4]),
                      ("chelsea", data.chelsea()[::3, ::3])):
        x = img.astype(np.float64) / 255.0
        noisy = np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1)
        blurred = (x + np.roll(x, 1, 0) + np.roll(x, 1, 1)) / 3  # a different kind of distortion
        out.append((name + "-noise", x, noisy))
        out.append((name + "-blur", x, blurred))
    return out


@pytest.mark.parametrize("name,a,b", _pairs(), ids=[p[0] for p in _pairs()])
def test_ssim_and_psnr_match_scikit_image(name, a, b):
    ref = _sk_ssim(a, b)
    for backend in ("torch", "scipy"):  # CUDA tensors use the first, CPU tensors the second
        assert abs(float(ssim(_t(a), _t(b), backend=backend)[0]) - ref) < 1e-4, backend
    assert abs(float(ssim(_t(a).float(), _t(b).float(), dtype=torch.float32, backend="torch")[0]) - ref) < 1e-4
    ours_psnr = float(psnr(_t(a), _t(b))[0])
    assert abs(ours_psnr - peak_signal_noise_ratio(a, b, data_range=1)) < 1e-4


def test_ssim_batched_equals_one_by_one_and_float32_inputs():
    pairs = [p for p in _pairs() if p[1].shape == (37, 52, 3)] + [("again", *_pairs()[0][1:])]
    a = torch.cat([_t(p[1]) for p in pairs]).float()
    b = torch.cat([_t(p[2]) for p in pairs]).float()
    batched = ssim(a, b)
    assert batched.shape == (len(pairs),) and batched.dtype == torch.float64
    torch.testing.assert_close(ssim(a, b, chunk=1), batched, rtol=0, atol=1e-12)  # chunked = whole batch
    torch.testing.assert_close(ssim(a, b, backend="torch"), batched, rtol=0, atol=1e-10)
    for i, _ in enumerate(pairs):
        ref = _sk_ssim(a[i].double().permute(1, 2, 0).numpy(), b[i].double().permute(1, 2, 0).numpy())
        assert abs(float(batched[i]) - ref) < 1e-4


def test_ssim_single_channel_matches_scikit_image():
    x = data.camera()[::4, ::4].astype(np.float64) / 255.0
    y = np.clip(x + np.random.default_rng(3).normal(0, 0.08, x.shape), 0, 1)
    ref = structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)
    for backend in ("torch", "scipy"):
        ours = float(ssim(torch.from_numpy(x)[None, None], torch.from_numpy(y)[None, None], backend=backend)[0])
        assert abs(ours - ref) < 1e-4


def test_gaussian_window_is_scipys():
    from scipy.ndimage import gaussian_filter1d

    impulse = np.zeros(21)
    impulse[10] = 1.0
    ref = gaussian_filter1d(impulse, 1.5, truncate=3.5, mode="constant")[5:16]
    w = gaussian_window()
    assert w.numel() == 11
    np.testing.assert_allclose(w.numpy(), ref, atol=1e-12)


def test_ssim_rejects_too_small_images():
    with pytest.raises(ValueError):
        ssim(torch.rand(1, 3, 10, 30), torch.rand(1, 3, 10, 30))


def test_mse_and_psnr_on_known_inputs():
    a = torch.zeros(2, 3, 8, 8, dtype=torch.float64)
    b = torch.full_like(a, 0.5)
    b[1] = 0.0
    b[1, 0, 0, 0] = 1.0  # one element off by 1 in 192
    m = mse(a, b)
    assert m[0] == pytest.approx(0.25, abs=1e-15)
    assert m[1] == pytest.approx(1 / 192, abs=1e-15)
    p = psnr(a, b)
    assert p[0] == pytest.approx(10 * math.log10(4), abs=1e-12)
    assert p[1] == pytest.approx(10 * math.log10(192), abs=1e-12)


def test_identical_inputs_give_the_ideal_values(tmp_path):
    from tests.eval_fixtures import save_random_alexnet

    x = torch.rand(3, 3, 32, 32)
    assert torch.allclose(ssim(x, x), torch.ones(3, dtype=torch.float64), atol=1e-12)
    assert torch.equal(mse(x, x), torch.zeros(3, dtype=torch.float64))
    assert torch.isinf(psnr(x, x)).all()
    lp = LPIPSMetric.from_file(save_random_alexnet(tmp_path / "alexnet-owt-7be5be79.pth"))
    assert torch.equal(lp(x, x), torch.zeros(3, dtype=torch.float64))


def test_identity_of_identical_crops_is_one(astronaut_face):
    """Through the evaluation's suite: the same crop twice gives ID 1 and the ideal image metrics."""
    from vidinvert.convert import to_tensor
    from vidinvert.evaluate.suite import MetricSuite
    from vidinvert.imagefile import read_image

    suite = MetricSuite.load(None, torch.device("cpu"), lpips=False)
    assert suite.identity is not None
    face = to_tensor(read_image(astronaut_face))
    faces = torch.cat([face, torch.flip(face, dims=[3])])
    values, emb = suite.compare(faces, faces.clone())
    np.testing.assert_allclose(values["id"], 1.0, atol=1e-6)
    np.testing.assert_allclose(values["ssim"], 1.0, atol=1e-12)
    np.testing.assert_array_equal(values["mse"], 0.0)
    assert emb.shape[0] == 2


def test_suite_mse_is_on_minus_one_one_and_psnr_is_10_log10_4_over_mse_per_pair():
    """The paper's convention: MSE on images in [-1,1], PSNR on [0,1], so every pair (not only the
    means) satisfies PSNR = 10 log10(4 / MSE); checked against numpy and scikit-image on 8-bit images."""
    from vidinvert.evaluate.suite import MetricSuite

    rng = np.random.default_rng(3)
    src = rng.integers(0, 256, (4, 24, 24, 3), dtype=np.uint8)
    noise = rng.integers(-40, 41, src.shape) * np.array([1, 2, 0, 3])[:, None, None, None]
    rec = np.clip(src.astype(int) + noise, 0, 255).astype(np.uint8)
    rec[2] = src[2]  # one identical pair
    suite = MetricSuite(lpips=None, identity=None)

    def as_input(u8: np.ndarray) -> torch.Tensor:  # uint8 NHWC -> [-1,1] NCHW, exactly on the 8-bit levels
        return torch.from_numpy(u8.transpose(0, 3, 1, 2).astype(np.float32)) / 127.5 - 1

    values, _ = suite.compare(as_input(src), as_input(rec))
    for i in range(4):
        a, b = src[i] / 255.0, rec[i] / 255.0
        assert values["mse"][i] == pytest.approx(np.mean(((2 * a - 1) - (2 * b - 1)) ** 2), rel=1e-6, abs=1e-12)
        if i == 2:
            assert values["mse"][i] == 0.0 and math.isinf(values["psnr"][i])
            continue
        assert values["psnr"][i] == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1), abs=1e-4)
        assert values["psnr"][i] == pytest.approx(10 * math.log10(4 / values["mse"][i]), abs=1e-9)
    conv = suite.conventions()
    assert "[-1,1]" in conv["mse"] and "[0,1]" in conv["psnr"] and "[0,1]" in conv["ssim"]
    assert conv["lpips"] == "not computed" and conv["id"] == "not computed"


def test_to_unit_interval_is_the_8bit_conversion():
    from vidinvert.convert import to_uint8

    x = torch.linspace(-1.2, 1.2, 3 * 5 * 7).reshape(1, 3, 5, 7)
    levels = torch.from_numpy(to_uint8(x)).permute(0, 3, 1, 2).double()
    ours = to_unit_interval(x).double()
    assert torch.equal(torch.round(ours * 255.0), levels)
    assert torch.allclose(ours, levels / 255.0, atol=1e-7, rtol=0)
    assert float(to_unit_interval(x, quantize=False).min()) == 0.0


# ------------------------------------------------------------------------------------------------
# LPIPS
# ------------------------------------------------------------------------------------------------
def test_lpips_equals_the_lpips_package_with_the_same_trunk(monkeypatch, tmp_path):
    """The reference is the lpips package building its own slices from a torchvision AlexNet
    that holds the same (random) weights."""
    import lpips
    import lpips.pretrained_networks as pn
    import torchvision

    from tests.eval_fixtures import random_alexnet_features

    state = random_alexnet_features(7)
    net = torchvision.models.alexnet()
    net.load_state_dict(state, strict=False)
    ours = LPIPSMetric.from_alexnet_state(net.state_dict())  # full torchvision keys, classifier included

    with monkeypatch.context() as m:
        m.setattr(pn.tv, "alexnet", lambda *a, **k: copy.deepcopy(net))
        ref = lpips.LPIPS(net="alex", version="0.1", verbose=False).eval()  # pretrained trunk = `net`
    g = torch.Generator().manual_seed(1)
    a = torch.rand(3, 3, 64, 64, generator=g)
    b = (a + 0.2 * torch.randn(3, 3, 64, 64, generator=g)).clamp(0, 1)
    with torch.no_grad():
        expected = ref(a * 2 - 1, b * 2 - 1).reshape(-1).double()
    got = ours(a, b)
    assert (got > 0).all()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)

    # the same through a file holding only the trunk's weights
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(state, path)
    torch.testing.assert_close(LPIPSMetric.from_file(path)(a, b), expected, rtol=1e-5, atol=1e-7)
    # and another trunk gives other distances (the weights are really used)
    other = LPIPSMetric.from_alexnet_state(random_alexnet_features(8))(a, b)
    assert not torch.allclose(other, expected, rtol=1e-3)


def test_lpips_builds_without_any_download(monkeypatch, tmp_path):
    from tests.eval_fixtures import save_random_alexnet

    save_random_alexnet(tmp_path / "alexnet-owt-7be5be79.pth")  # found through VIDINVERT_HOME below
    hub = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(hub))

    def refuse(*a, **k):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("VIDINVERT_HOME", str(tmp_path))
    metric = load_lpips(None, "cpu")
    assert metric is not None
    assert float(metric(torch.zeros(1, 3, 32, 32), torch.ones(1, 3, 32, 32))[0]) > 0
    assert not hub.exists() or not any(hub.rglob("*"))


def test_lpips_missing_backbone_is_a_notice_and_wrong_file_an_error(tmp_path, caplog):
    with caplog.at_level("WARNING", logger="vidinvert"):
        assert load_lpips(tmp_path, "cpu") is None
    assert "alexnet-owt-7be5be79.pth" in caplog.text and str(tmp_path) in caplog.text
    bad = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, bad)
    with pytest.raises(VidinvertError, match="AlexNet"):
        LPIPSMetric.from_file(bad)
