"""Feature-Style encoder and ArcFace IResNet: official key layout, strict loading, wiring, input prep.

Full-size models are only built on the meta device here (no memory, no compute); numerical checks use
width-reduced models. The value-by-value comparison with the official code is in
test_golden_encoder.py and test_golden_arcface.py.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import MANIFESTS
from vidinvert.models.fs_encoder import FeatureStyleEncoder, prepare_encoder_input, tiny
from vidinvert.models.iresnet import IResNet, iresnet50, prepare_arcface_input


def _manifest(name: str) -> dict:
    with open(MANIFESTS / name) as f:
        return json.load(f)


def _entries(model: torch.nn.Module) -> list[list]:
    return [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()]


def _meta(factory):
    with torch.device("meta"):
        return factory()


@pytest.fixture(scope="module")
def meta_encoder() -> FeatureStyleEncoder:
    return _meta(FeatureStyleEncoder)


@pytest.fixture(scope="module")
def meta_arcface() -> IResNet:
    return _meta(iresnet50)


# --- key / shape conformance ----------------------------------------------------------------------


def test_encoder_state_dict_is_the_official_layout(meta_encoder):
    man = _manifest("manifest_fs_encoder.json")
    assert _entries(meta_encoder) == man["state_dict"]  # keys, order, shapes, dtypes
    assert len(man["state_dict"]) == 517
    assert sum(p.numel() for p in meta_encoder.parameters()) == man["param_count"]
    assert "latent_avg" not in meta_encoder.state_dict()  # not in the official file


def test_arcface_state_dict_is_the_official_layout(meta_arcface):
    man = _manifest("manifest_arcface_iresnet50.json")
    assert _entries(meta_arcface) == man["state_dict"]
    assert sum(p.numel() for p in meta_arcface.parameters()) == man["param_count"]


def test_strict_load_accepts_the_official_entries_on_meta():
    cases = ((FeatureStyleEncoder, "manifest_fs_encoder.json"), (iresnet50, "manifest_arcface_iresnet50.json"))
    for factory, name in cases:
        sd = {k: torch.empty(shape, dtype=getattr(torch, dt), device="meta")
              for k, shape, dt in _manifest(name)["state_dict"]}
        fresh = _meta(factory)
        result = fresh.load_state_dict(sd, strict=True, assign=True)
        assert not result.missing_keys and not result.unexpected_keys


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda sd: sd.pop("styles.17.bias"), "styles.17.bias"),
        (lambda sd: sd.__setitem__("content_layer.1.weight", torch.empty(512, 128, 3, 3, device="meta")),
         "content_layer.1.weight"),
        (lambda sd: sd.__setitem__("block_3.0.downsample.9.weight", torch.empty(1, device="meta")),
         "block_3.0.downsample.9.weight"),
        (lambda sd: sd.__setitem__("latent_avg", torch.empty(18, 512, device="meta")), "latent_avg"),
    ],
    ids=["missing", "wrong-shape", "unexpected", "latent_avg-is-not-a-weight"],
)
def test_strict_load_names_the_bad_key(meta_encoder, mutate, key):
    sd = dict(meta_encoder.state_dict())
    mutate(sd)
    fresh = _meta(FeatureStyleEncoder)
    with pytest.raises(RuntimeError, match=key.replace(".", r"\.")):
        fresh.load_state_dict(sd, strict=True, assign=True)


def test_strict_load_copies_real_values_into_a_full_size_arcface():
    src = iresnet50()
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for t in src.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=gen))
    dst = iresnet50()
    dst.load_state_dict(src.state_dict(), strict=True)
    for (k, a), b in zip(src.state_dict().items(), dst.state_dict().values()):
        assert torch.equal(a, b), k


# --- tiny encoder ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_input() -> torch.Tensor:
    gen = torch.Generator().manual_seed(11)
    return torch.rand(3, 3, 256, 256, generator=gen) * 2 - 1


def test_tiny_shapes_and_sane_magnitudes(tiny_input):
    enc = tiny(seed=0)
    with torch.no_grad():
        w_plus, feat = enc(tiny_input)
    assert w_plus.shape == (3, 10, 64) and feat.shape == (3, 64, 16, 16)
    assert w_plus.dtype == feat.dtype == torch.float32
    assert torch.isfinite(w_plus).all() and torch.isfinite(feat).all()
    # the random init keeps activations O(1) through the trunk (no blow-up, no collapse)
    assert 0.05 < w_plus.std().item() < 5 and 0.05 < feat.std().item() < 5
    # different images give different codes
    assert (w_plus[0] - w_plus[1]).abs().max() > 1e-3


def test_tiny_is_deterministic_per_seed(tiny_input):
    x = tiny_input[:1]
    with torch.no_grad():
        a = tiny(seed=5)(x)
        b = tiny(seed=5)(x)
        c = tiny(seed=6)(x)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.allclose(a[0], c[0])


def test_batch_equals_one_by_one(tiny_input):
    enc = tiny(seed=1)
    with torch.no_grad():
        w, f = enc(tiny_input)
        singles = [enc(tiny_input[i : i + 1]) for i in range(tiny_input.shape[0])]
    torch.testing.assert_close(w, torch.cat([s[0] for s in singles]), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(f, torch.cat([s[1] for s in singles]), rtol=1e-4, atol=1e-5)


def test_channels_last_gives_the_same_codes(tiny_input):
    enc = tiny(seed=2)
    with torch.no_grad():
        w, f = enc(tiny_input)
        enc_cl = enc.to(memory_format=torch.channels_last)
        w_cl, f_cl = enc_cl(tiny_input.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(w_cl, w, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(f_cl, f, rtol=1e-4, atol=1e-5)


def test_autocast_bf16_stays_close(tiny_input):
    enc = tiny(seed=3)
    with torch.no_grad():
        w, f = enc(tiny_input[:1])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            w16, f16 = enc(tiny_input[:1])
    assert w16.dtype == torch.float32  # bf16 offsets + float32 latent_avg
    assert ((w16.float() - w).norm() / w.norm()).item() < 3e-2
    assert ((f16.float() - f).norm() / f.norm()).item() < 3e-2


def _reference_offsets(enc: FeatureStyleEncoder, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Slow, explicit latent branch: 3x3 adaptive bins by their index formula, channel-major flatten."""
    levels = []
    h = enc.conv(x)
    for stage in (enc.block_1, enc.block_2, enc.block_3, enc.block_4):
        h = stage(h)
        levels.append(h)
    feats = []
    for lv in levels:  # stage 1 first
        side = lv.shape[-1]
        pooled = torch.empty(lv.shape[0], lv.shape[1], 3, 3)
        for i in range(3):
            for j in range(3):
                r0, r1 = (i * side) // 3, math.ceil((i + 1) * side / 3)
                c0, c1 = (j * side) // 3, math.ceil((j + 1) * side / 3)
                pooled[:, :, i, j] = lv[:, :, r0:r1, c0:c1].mean(dim=(2, 3))
        feats.append(pooled)
    vec = torch.cat(feats, 1).reshape(x.shape[0], -1)  # index = c*9 + i*3 + j
    rows = [vec @ s.weight.T + s.bias for s in enc.styles]
    return torch.stack(rows, 1), enc.content_layer(levels[2])


def test_latent_branch_matches_an_explicit_implementation(tiny_input):
    enc = tiny(seed=4)
    with torch.no_grad():
        w_delta, feat = enc.forward_offsets(tiny_input[:2])
        ref_w, ref_f = _reference_offsets(enc, tiny_input[:2])
    assert enc.styles[0].in_features == (8 + 16 + 32 + 64) * 9
    torch.testing.assert_close(w_delta, ref_w, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(feat, ref_f, rtol=1e-4, atol=1e-5)


def test_set_latent_avg_broadcasts_and_is_added():
    enc = tiny(seed=0, n_styles=18, style_dim=512)
    x = torch.zeros(1, 3, 256, 256)
    row = torch.linspace(-1, 1, 512)
    enc.set_latent_avg(row)
    assert enc.latent_avg.shape == (18, 512) and torch.equal(enc.latent_avg, row.expand(18, 512))
    full = torch.randn(18, 512, generator=torch.Generator().manual_seed(0))
    enc.set_latent_avg(full)
    assert torch.equal(enc.latent_avg, full)
    with torch.no_grad():
        w_plus, f1 = enc(x)
        w_delta, f2 = enc.forward_offsets(x)
    torch.testing.assert_close(w_plus - w_delta, full[None], rtol=0, atol=1e-6)
    assert torch.equal(f1, f2)
    for bad in (torch.zeros(511), torch.zeros(17, 512), torch.zeros(1, 18, 512)):
        with pytest.raises(ValueError, match="latent_avg"):
            enc.set_latent_avg(bad)
    enc.to(torch.float64)  # a buffer: follows .to()
    assert enc.latent_avg.dtype == torch.float64


def test_arcface_trunk_initialisation_copies_the_stages():
    arc = IResNet((1, 1, 1, 1), (8, 16, 32, 64), 32, input_size=64)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for t in arc.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=gen) * 0.5 + 0.5)
    arc.eval()
    enc = tiny(seed=0)
    enc.load_arcface_trunk(arc)
    x = torch.rand(1, 3, 64, 64, generator=gen) * 2 - 1
    with torch.no_grad():
        stages = arc.forward_features(x)[:4]
        h = enc.conv(x)
        ours = []
        for stage in (enc.block_1, enc.block_2, enc.block_3, enc.block_4):
            h = stage(h)
            ours.append(h)
    for a, b in zip(ours, stages):
        assert torch.equal(a, b)
    with pytest.raises(RuntimeError, match="size mismatch"):
        tiny(seed=0).load_arcface_trunk(IResNet((1, 1, 1, 1), (8, 16, 32, 128), 32))


# --- IResNet --------------------------------------------------------------------------------------


def test_iresnet_features_and_embedding():
    net = IResNet((1, 2, 1, 1), (8, 16, 32, 64), 32).eval()
    x = torch.rand(2, 3, 112, 112, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        feats = net.forward_features(x)
        emb = net(x)
        single = net(x[1:])
    shapes = [tuple(f.shape) for f in feats]
    assert shapes == [(2, 8, 56, 56), (2, 16, 28, 28), (2, 32, 14, 14), (2, 64, 7, 7), (2, 32)]
    assert torch.equal(feats[4], emb)
    torch.testing.assert_close(single, emb[1:], rtol=1e-4, atol=1e-5)
    assert net.fc.in_features == 64 * 7 * 7


def test_arcface_input_is_a_nearest_resize():
    x = torch.arange(4 * 448 * 448, dtype=torch.float32).reshape(1, 4, 448, 448)[:, :3]
    out = prepare_arcface_input(x)
    assert out.shape == (1, 3, 112, 112)
    assert torch.equal(out, x[:, :, ::4, ::4])  # nearest at factor 4 takes the top-left sample


# --- encoder input preparation --------------------------------------------------------------------


def _image(side: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_prepare_1024_is_two_official_bilinear_halvings():
    x = _image(1024)
    out = prepare_encoder_input(x)
    half = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
    official = F.interpolate(half, scale_factor=0.5, mode="bilinear", align_corners=False)
    assert out.shape == (1, 3, 256, 256)
    assert torch.equal(out, official)
    # invariant: a bilinear halving (align_corners=False) averages 2x2 blocks, so two of them are a
    # 4x4 box filter, for any image
    assert (out - F.avg_pool2d(x, 4)).abs().max() <= 1e-5


@pytest.mark.parametrize("side", [512, 2048])
def test_prepare_power_of_two_sides_are_box_filters(side):
    x = _image(side, seed=side)
    out = prepare_encoder_input(x)
    assert out.shape == (1, 3, 256, 256)
    assert (out - F.avg_pool2d(x, side // 256)).abs().max() <= 1e-5


def test_prepare_other_sides():
    x256 = _image(256)
    assert torch.equal(prepare_encoder_input(x256), x256)
    x768 = _image(768)
    expected = F.interpolate(F.avg_pool2d(x768, 2), size=(256, 256), mode="bilinear",
                             align_corners=False, antialias=True)
    torch.testing.assert_close(prepare_encoder_input(x768), expected, rtol=0, atol=1e-5)
    x128 = _image(128)
    up = prepare_encoder_input(x128)
    assert up.shape == (1, 3, 256, 256)
    torch.testing.assert_close(up, F.interpolate(x128, size=(256, 256), mode="bilinear", align_corners=False))
    with pytest.raises(ValueError, match="square"):
        prepare_encoder_input(torch.zeros(1, 3, 512, 256))
