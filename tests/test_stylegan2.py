"""StyleGAN2 generator: checkpoint layout, modulated-conv forms, feature injection, early exit, dtypes.

Uses the tiny 64 px generator (random weights, meaningless images) and meta-device full-size models.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import MANIFESTS
from vidinvert.models import ops
from vidinvert.models.stylegan2 import Generator, StyledConv, ToRGB, default_channels, tiny


def _manifest(name: str) -> dict:
    return json.loads((MANIFESTS / name).read_text())


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().double() - b.detach().double()).norm() / b.detach().double().norm())


@pytest.fixture(scope="module")
def g() -> Generator:
    return tiny(0)


@pytest.fixture(scope="module")
def w(g: Generator) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return 0.7 * torch.randn(3, g.n_latent, g.style_dim, generator=gen)


# ----------------------------------------------------------------------------- checkpoint layout
@pytest.mark.parametrize(
    ("manifest", "kwargs"),
    [("manifest_stylegan2_1024.json", dict(size=1024)),
     ("manifest_stylegan2_64_cm1.json", dict(size=64, channel_multiplier=1))],
)
def test_state_dict_matches_official_manifest(manifest, kwargs):
    m = _manifest(manifest)
    with torch.device("meta"):
        gen = Generator(**kwargs)
    sd = gen.state_dict()
    expected = [(k, list(s), d) for k, s, d in m["state_dict"]]
    got = [(k, list(v.shape), str(v.dtype).replace("torch.", "")) for k, v in sd.items()]
    assert got == expected  # same keys, same order, same shapes and dtypes
    assert len(sd) == m["state_dict_entries"]
    assert sum(p.numel() for p in gen.parameters()) == m["param_count"]
    assert gen.n_latent == 2 * int(math.log2(kwargs["size"])) - 2
    assert gen.num_layers == gen.n_latent - 1
    if "n_latent" in m:
        assert (gen.n_latent, gen.num_layers) == (m["n_latent"], m["num_layers"])


def test_outs_shapes_match_official_manifest():
    m = _manifest("manifest_stylegan2_64_cm1.json")
    with torch.device("meta"):
        gen = Generator(64, channel_multiplier=1)
        with torch.no_grad():
            img, outs = gen(torch.zeros(1, gen.n_latent, 512), return_features=True)
    assert [list(o.shape) for o in outs] == m["return_features_shapes_outs"]
    assert list(img.shape) == [1, 3, 64, 64]


def test_other_sizes_and_channel_tables():
    assert default_channels(1024, 2) == {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128,
                                         512: 64, 1024: 32}
    with torch.device("meta"):
        car = Generator(512, channel_multiplier=2)
        small = Generator(16, style_dim=32, n_mlp=1, channel_multiplier=1)
    assert car.n_latent == 16 and len(car.convs) == 14 and car.channels[512] == 64
    assert small.n_latent == 6 and small.stored_noise()[-1].shape == (1, 1, 16, 16)
    for bad in (0, 48, 2):
        with pytest.raises(ValueError, match="power of two"):
            Generator(bad)
    with pytest.raises(ValueError, match="missing"):
        Generator(64, channels={4: 8, 8: 8, 16: 8})


def test_strict_load_of_full_random_state_dict():
    m = _manifest("manifest_stylegan2_64_cm1.json")
    gen = torch.Generator().manual_seed(0)
    sd = {k: torch.randn(s, generator=gen) for k, s, _ in m["state_dict"]}
    model = Generator(64, channel_multiplier=1)
    model.load_state_dict(sd, strict=True)
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k
    bad = dict(sd)
    bad["convs.3.conv.weight"] = torch.zeros(1, 512, 512, 1, 1)
    with pytest.raises(RuntimeError, match="convs.3.conv.weight"):
        model.load_state_dict(bad, strict=True)
    del bad["convs.3.conv.weight"]
    with pytest.raises(RuntimeError, match="convs.3.conv.weight"):
        model.load_state_dict(bad, strict=True)


# ------------------------------------------------------------------------------------ FIR ops
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_fir_blur_and_upsample_match_upfirdn_reference(memory_format):
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 5, 9, 7, generator=gen, dtype=torch.float64).contiguous(memory_format=memory_format)
    k = torch.rand(4, 4, generator=gen, dtype=torch.float64)  # asymmetric: catches a missing flip
    assert torch.allclose(ops.blur2d(x, k, (1, 1)), ops.upfirdn2d_reference(x, k, pad=(1, 1)), atol=1e-12)
    assert torch.allclose(ops.blur2d(x, k, (2, 1)), ops.upfirdn2d_reference(x, k, pad=(2, 1)), atol=1e-12)
    up = ops.upsample2d(x, k)
    assert up.shape == (2, 5, 18, 14)
    assert torch.allclose(up, ops.upfirdn2d_reference(x, k, up=2, pad=(2, 1)), atol=1e-12)
    assert torch.allclose(ops.fir_kernel((1, 3, 3, 1), 4.0).sum(), torch.tensor(4.0))


def test_bias_noise_lrelu_inplace_and_out_of_place_match_formula():
    gen = torch.Generator().manual_seed(3)
    out = torch.randn(2, 4, 6, 6, generator=gen, dtype=torch.float64)
    bias, d = torch.randn(4, generator=gen), torch.rand(2, 4, generator=gen) + 0.5
    noise, strength = torch.randn(1, 1, 6, 6, generator=gen), torch.tensor([0.3])
    z = out * d[:, :, None, None] + 0.3 * noise + bias.reshape(1, -1, 1, 1)
    expected = torch.where(z > 0, z, 0.2 * z) * math.sqrt(2)
    kw = dict(dcoefs=d, noise=noise, noise_strength=strength)
    assert torch.allclose(ops.bias_noise_lrelu(out, bias, **kw), expected, atol=1e-6)
    assert torch.allclose(ops.bias_noise_lrelu(out.clone(), bias, inplace=True, **kw), expected, atol=1e-6)


# --------------------------------------------------------------------- modulated convolution forms
@pytest.mark.parametrize(
    ("kernel_size", "upsample", "demodulate"),
    [(3, False, True), (3, True, True), (3, False, False), (3, True, False), (1, False, True), (1, False, False)],
)
def test_nonfused_modulated_conv_equals_grouped_per_sample(kernel_size, upsample, demodulate):
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(3, 6, 8, 8, generator=gen, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(5, 6, kernel_size, kernel_size, generator=gen, dtype=torch.float64)
    styles = torch.randn(3, 6, generator=gen, dtype=torch.float64) + 0.5  # some negative styles
    kernel = ops.fir_kernel((1, 3, 3, 1), 4.0).double()
    ref = ops.modulated_conv2d_grouped(x, weight, styles, demodulate=demodulate, upsample=upsample,
                                       blur_kernel=kernel)
    out, d = ops.modulated_conv2d(x, weight, styles, demodulate=demodulate, upsample=upsample, blur_kernel=kernel)
    if demodulate:
        out = out * d[:, :, None, None]
    else:
        assert d is None
    assert out.shape == ref.shape == (3, 5, 16 if upsample else 8, 16 if upsample else 8)
    assert _rel(out, ref) < 1e-5
    # Per-sample reference computed one item at a time with plain convolutions.
    for b in range(3):
        wb = weight * styles[b][None, :, None, None]
        if demodulate:
            wb = wb / (wb.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8).sqrt()
        if upsample:
            yb = ops.upfirdn2d_reference(F.conv_transpose2d(x[b:b + 1], wb.transpose(0, 1), stride=2), kernel,
                                         pad=(1, 1))
        else:
            yb = F.conv2d(x[b:b + 1], wb, padding=kernel_size // 2)
        assert _rel(out[b:b + 1], yb) < 1e-5


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_torgb_folded_weights_equal_grouped(batch, memory_format):
    torch.manual_seed(5)
    layer = ToRGB(6, 8, upsample=True).double()
    for p in layer.parameters():
        p.data.normal_()
    x = torch.randn(batch, 6, 8, 8, dtype=torch.float64).contiguous(memory_format=memory_format)
    wl, skip = torch.randn(batch, 8, dtype=torch.float64), torch.randn(batch, 3, 4, 4, dtype=torch.float64)
    fast = layer(x, wl, skip)
    layer.conv.grouped = True
    ref = layer(x, wl, skip)
    assert _rel(fast, ref) < 1e-5


def test_generator_nonfused_equals_grouped_float64(w):
    g64 = tiny(0).double()
    with torch.no_grad():
        fast = g64(w[:2].double())
        g64.grouped_modconv = True
        ref = g64(w[:2].double())
    assert g64.grouped_modconv
    assert _rel(fast, ref) < 1e-5


# ---------------------------------------------------------------------- feature code and early exit
@pytest.mark.parametrize("index", [5, 2])
def test_injecting_gk_of_w_reproduces_g_of_w_exactly(g, w, index):
    with torch.no_grad():
        plain, outs = g(w, return_features=True)
        gk = g.forward_until(w, index=index)
        injected = g(w, gk, feature_index=index)
    assert torch.equal(gk, outs[index])
    assert torch.equal(injected, plain)


def test_forward_until_equals_outs_and_stops_early(g, w):
    with torch.no_grad():
        _, outs = g(w, return_features=True)
    assert len(outs) == g.n_latent
    calls: list[str] = []
    hooks = [m.register_forward_hook(lambda mod, a, o, name=name: calls.append(name))
             for name, m in g.named_modules() if isinstance(m, (StyledConv, ToRGB))]
    try:
        for k in (0, 3, 5, g.num_layers):
            calls.clear()
            with torch.no_grad():
                gk = g.forward_until(w, index=k)
            assert torch.equal(gk, outs[k].contiguous())
            expected = (["conv1"] if k >= 1 else []) + [f"convs.{i}" for i in range(k - 1)]
            assert calls == expected  # no later conv, no RGB branch
        calls.clear()
        with torch.no_grad():
            g(w)
        assert len(calls) == g.num_layers + len(g.to_rgbs) + 1
    finally:
        for h in hooks:
            h.remove()
    with pytest.raises(ValueError):
        g.forward_until(w, index=g.num_layers + 1)


def test_feature_replaces_input_of_conv_k_and_skip_keeps_w_path(g, w):
    feat = torch.randn(3, 64, 16, 16, generator=torch.Generator().manual_seed(6))
    seen: dict[str, torch.Tensor] = {}
    hooks = [g.convs[4].register_forward_pre_hook(lambda m, a: seen.__setitem__("conv_in", a[0].clone())),
             g.to_rgbs[1].register_forward_pre_hook(lambda m, a: seen.__setitem__("rgb16_in", a[0].clone()))]
    try:
        with torch.no_grad():
            _, outs = g(w, feat, return_features=True)
    finally:
        for h in hooks:
            h.remove()
    assert torch.equal(seen["conv_in"], feat)  # feature_scale 1: the 32 px conv sees F
    assert torch.equal(seen["rgb16_in"], outs[5])  # the 16 px RGB skip sees G_5(w)
    with torch.no_grad():
        assert torch.equal(outs[5], g.forward_until(w))


def test_feature_scale_zero_half_and_per_sample(g, w):
    feat = torch.randn(3, 64, 16, 16, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        plain = g(w)
        assert torch.equal(g(w, feat, feature_scale=0.0), plain)
        full, half = g(w, feat), g(w, feat, feature_scale=0.5)
        blend = 0.5 * g.forward_until(w) + 0.5 * feat
        assert torch.allclose(half, g(w, blend), atol=1e-5)
        assert not torch.allclose(full, plain, atol=1e-3)
        mixed = g(w, feat, feature_scale=torch.tensor([1.0, 0.0, 0.5]))
    assert torch.allclose(mixed[0], full[0], atol=1e-5)
    assert torch.allclose(mixed[1], plain[1], atol=1e-5)
    assert torch.allclose(mixed[2], half[2], atol=1e-5)
    with pytest.raises(ValueError, match="feature"):
        g(w, torch.zeros(3, 32, 16, 16))
    with pytest.raises(ValueError, match="feature_index"):
        g(w, feat, feature_index=g.num_layers)


def test_batch_equals_items_one_by_one(g, w):
    feat = torch.randn(3, 64, 16, 16, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        batch = g(w, feat)
        single = torch.cat([g(w[i:i + 1], feat[i:i + 1]) for i in range(3)])
        gk = g.forward_until(w)
        gk_single = torch.cat([g.forward_until(w[i:i + 1]) for i in range(3)])
    assert torch.allclose(batch, single, atol=1e-5, rtol=1e-5)
    assert torch.allclose(gk, gk_single, atol=1e-5, rtol=1e-5)


def test_grad_mode_matches_inference_and_gradients_flow(g, w):
    feat = torch.randn(3, 64, 16, 16, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        ref = g(w, feat)
    wg, fg = w.clone().requires_grad_(True), feat.clone().requires_grad_(True)
    out = g(wg, fg)
    assert torch.allclose(out, ref, atol=1e-5)
    out.square().mean().backward()
    assert torch.isfinite(wg.grad).all() and wg.grad[:, :5].abs().sum() > 0  # rows 0..4 drive the RGB skip
    assert torch.isfinite(fg.grad).all() and fg.grad.abs().sum() > 0


def test_latent_shape_checks(g, w):
    with torch.no_grad():
        assert torch.equal(g(w[:, 0]), g(w[:, :1].expand(-1, g.n_latent, -1)))
    with pytest.raises(ValueError, match=r"w\+ must be"):
        g(w[:, :4])


# ---------------------------------------------------------------------------------- noise, dtypes
def test_stored_noise_is_default_and_explicit_noise_changes_output(g, w):
    with torch.no_grad():
        default = g(w)
        stored = g(w, noise=g.stored_noise())
        fresh = g(w, noise=g.make_noise(3, torch.Generator().manual_seed(10)))
    assert torch.equal(default, stored)
    assert _rel(fresh, default) > 1e-3
    assert len(g.stored_noise()) == g.num_layers
    with pytest.raises(ValueError, match="noise"):
        g(w, noise=g.stored_noise()[:-1])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_output_finite_and_close_to_fp32(g, w, dtype):
    feat = torch.randn(3, 64, 16, 16, generator=torch.Generator().manual_seed(11))
    w, feat = w[:1], feat[:1]
    with torch.no_grad():
        ref = g(w, feat)
        with torch.autocast("cpu", dtype=dtype):
            low = g(w, feat)
            gk = g.forward_until(w)
    assert low.dtype == torch.float32 and torch.isfinite(low).all() and torch.isfinite(gk).all()
    assert _rel(low, ref) < 0.05


def test_float16_survives_huge_styles():
    big = tiny(1)
    with torch.no_grad():
        for m in big.modules():
            if isinstance(m, StyledConv):
                m.conv.modulation.bias.mul_(3000.0)  # x * style would overflow float16 unnormalised
        wl = torch.randn(2, big.n_latent, big.style_dim, generator=torch.Generator().manual_seed(12))
        ref = big(wl)
        with torch.autocast("cpu", dtype=torch.float16):
            low = big(wl)
    assert torch.isfinite(low).all()
    assert _rel(low, ref) < 0.05


# --------------------------------------------------------------------------- tiny and mean latent
def test_tiny_is_deterministic_per_seed_and_varies_with_w(w):
    a, b, c = tiny(3), tiny(3), tiny(4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["convs.0.conv.weight"], sc["convs.0.conv.weight"])
    assert (a.size, a.style_dim, a.n_latent, a.channels[16], a.channels[64]) == (64, 64, 10, 64, 16)
    assert not a.training
    with torch.no_grad():
        img = a(w)
    assert img.shape == (3, 3, 64, 64) and torch.isfinite(img).all()
    assert _rel(img[0], img[1]) > 0.05 and 0.05 < float(img.std()) < 5


def test_mean_latent_is_deterministic_and_is_the_mapping_mean(g):
    m1, m2, m3 = g.mean_latent(500, seed=3, chunk=128), g.mean_latent(500, seed=3), g.mean_latent(500, seed=4)
    assert m1.shape == (g.style_dim,) and m1.dtype == torch.float32
    assert torch.allclose(m1, m2, atol=1e-6) and not torch.allclose(m1, m3)
    z = torch.randn(500, g.style_dim, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.allclose(m1, g.mapping(z).mean(0), atol=1e-5)


def test_cached_weight_terms_follow_weight_updates(w):
    a, b = tiny(0), tiny(5)
    with torch.no_grad():
        a(w[:1])  # fills the per-layer caches (kernel square sums, transposed weights)
        a.load_state_dict(b.state_dict())
        after_load = a(w[:1])
        expected = b(w[:1])
        assert torch.equal(after_load, expected)
        a.convs[2].conv.weight.mul_(0.5)  # in-place edit of one weight
        b.grouped_modconv = True
        b.convs[2].conv.weight.mul_(0.5)
        assert _rel(a(w[:1]), b(w[:1])) < 1e-5


def test_meta_construction_then_assign_load_matches(w):
    ref = tiny(2)
    with torch.device("meta"):
        fast = Generator(64, style_dim=64, n_mlp=2, channels=ref.channels)
    fast.load_state_dict(ref.state_dict(), strict=True, assign=True)
    with torch.no_grad():
        assert torch.equal(fast.eval()(w[:1]), ref(w[:1]))
