"""Training losses against independent references (the lpips package, the official golden
identity loss, torchvision normalisation) and their per-sample / offline properties."""

from __future__ import annotations

import importlib.util
import socket

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import GOLDEN, requires_golden
from vidinvert.errors import VidinvertError
from vidinvert.train.losses import (
    IdentityLoss,
    ParsingLoss,
    build_bisenet,
    build_lpips,
    halve,
    l2_loss,
    tiny_identity_network,
)


def _images(n=3, side=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, side, side, generator=g) * 2 - 1


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_multiscale_lpips_equals_the_lpips_package_summed_over_halvings(no_network):
    net = build_lpips("random", scales=2, seed=1)  # builds offline: random trunk, no download
    x, y = _images(3, 64, 0), _images(3, 64, 1)
    ours = net(x, y)
    ref = sum(net.lpips(halve(x, k), halve(y, k)).flatten() for k in range(2))  # lpips.LPIPS.forward
    assert ours.shape == (3,)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-7)
    # bilinear x0.5 halving (the official downscale) is a 2x2 average
    torch.testing.assert_close(halve(x, 1), F.avg_pool2d(x, 2), rtol=0, atol=1e-6)
    # per sample: a sample's value does not depend on the rest of the batch
    torch.testing.assert_close(net(x[1:2], y[1:2]), ours[1:2], rtol=1e-5, atol=1e-7)
    # random heads are made non-negative, so the distance is a (pseudo-)distance
    assert all(bool((p >= 0).all()) for lin in net.lpips.lins for p in lin.parameters())
    assert float(net(x, x).abs().max()) < 1e-6


def test_lpips_smallest_scale_is_checked():
    net = build_lpips("random", scales=3)
    net.check_size(128)
    with pytest.raises(VidinvertError, match="loss.lpips_scales=3.*16 px.*at least 32"):
        net.check_size(64)


def test_lpips_alexnet_trunk_loads_torchvision_weights(tmp_path, no_network):
    import torchvision

    tv = torchvision.models.alexnet(weights=None)
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(tv.state_dict(), path)
    net = build_lpips("alex", path, scales=1)
    x = _images(2, 64)
    scaled = net.lpips.scaling_layer(x)
    # the five lpips taps are the ReLU outputs after conv1..conv5 of torchvision's AlexNet
    taps, h = [], scaled
    for i, layer in enumerate(tv.features):
        h = layer(h)
        if i in (1, 4, 7, 9, 11):
            taps.append(h)
    outs = net.lpips.net(scaled)
    for a, b in zip(outs, taps):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.save({"features.0.weight": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(VidinvertError, match="not a torchvision AlexNet"):
        build_lpips("alex", tmp_path / "bad.pth")


def _official_idloss(arcface, x, y):
    """The official Trainer.IDloss (multi_layer_idloss), written out."""
    x1, x2 = F.interpolate(x, (112, 112)), F.interpolate(y, (112, 112))
    cos = torch.nn.CosineSimilarity(dim=1, eps=1e-6)
    f1, f2 = arcface.forward_features(x1), arcface.forward_features(x2)
    return sum(1 - cos(a.flatten(start_dim=1), b.flatten(start_dim=1)) for a, b in zip(f1, f2))


def test_identity_loss_matches_the_official_formula_on_a_tiny_network():
    net = tiny_identity_network(3).eval()
    loss = IdentityLoss(net)
    x, y = _images(2, 96, 0), _images(2, 96, 1)
    with torch.no_grad():
        torch.testing.assert_close(loss(x, y), _official_idloss(net, x, y), rtol=1e-5, atol=1e-6)
        assert float(loss(x, x).abs().max()) < 1e-5
    assert not any(p.requires_grad for p in net.parameters())
    xr = x.clone().requires_grad_()
    loss(xr, y).sum().backward()
    assert xr.grad is not None and float(xr.grad.abs().sum()) > 0


@requires_golden
@pytest.mark.golden
def test_identity_loss_matches_official_golden_values():
    spec = importlib.util.spec_from_file_location("golden_make_weights", GOLDEN / "make_weights.py")
    mw = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mw)
    from vidinvert.models.iresnet import iresnet50

    gold = np.load(GOLDEN / "golden_arcface.npz")
    arc = iresnet50()
    arc.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in mw.arcface_state_dict("golden-v1").items()})
    loss = IdentityLoss(arc.eval())
    x112 = torch.from_numpy(gold["x112"]).float()
    x112_recon = torch.from_numpy(gold["x112_recon"]).float()
    with torch.no_grad():
        fx, fy = loss.features(x112_recon), loss.features(x112)  # nearest 112 -> 112 is the identity
        terms = [float(1 - F.cosine_similarity(a.flatten(1), b.flatten(1), eps=1e-6)) for a, b in zip(fx, fy)]
        total = float(loss.distance(fx, fy))
    np.testing.assert_allclose(terms, gold["idloss_terms"], atol=1e-4)
    assert abs(total - float(gold["idloss"][0])) < 1e-4


def test_parsing_loss_input_and_formula():
    net = build_bisenet(None, seed=0).eval()
    loss = ParsingLoss(net, size=64)
    x, y = _images(2, 128, 0), _images(2, 128, 1)
    # input: (x+1)/2 clamped, bilinear resize, ImageNet normalisation (torchvision's formula)
    import torchvision.transforms.functional as TF

    ref_in = TF.normalize(F.interpolate(((x + 1) / 2).clamp(0, 1), size=(64, 64), mode="bilinear",
                                        align_corners=False), [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    torch.testing.assert_close(loss.prepare(x), ref_in, rtol=1e-6, atol=1e-6)
    with torch.no_grad():
        outs_x, outs_y = net(ref_in), net(loss.prepare(y))
        ref = sum(1 - F.cosine_similarity(a.flatten(1), b.flatten(1), eps=1e-6) for a, b in zip(outs_x, outs_y))
        torch.testing.assert_close(loss(x, y), ref, rtol=1e-5, atol=1e-6)
        assert float(loss(x, x).abs().max()) < 1e-5


def test_bisenet_loader_accepts_both_layouts_and_names_the_supported_files(tmp_path):
    ref = build_bisenet(None, seed=5).eval()
    sd = ref.state_dict()
    plain, wrapped = tmp_path / "parsing_bisenet.pth", tmp_path / "79999_iter.pth"
    torch.save(sd, plain)
    torch.save({"module." + k: v for k, v in sd.items()}, wrapped)  # DataParallel-saved
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        want = ref(x)[0]
        for p in (plain, wrapped):
            torch.testing.assert_close(build_bisenet(p).eval()(x)[0], want)
    import torchvision

    bad = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), bad)
    with pytest.raises(VidinvertError, match="does not fit a BiSeNet.*19 classes.*parsing_bisenet.pth.*79999_iter.pth"):
        build_bisenet(bad)


def test_l2_is_per_sample_mean():
    x, y = _images(3, 8, 0), _images(3, 8, 1)
    torch.testing.assert_close(l2_loss(x, y), ((x - y) ** 2).mean(dim=(1, 2, 3)))
    torch.testing.assert_close(l2_loss(x, y).mean(), F.mse_loss(x, y))  # the official nn.MSELoss
