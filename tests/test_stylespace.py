"""StyleSpace edits, the mechanism (tiny random models: no semantics, real arithmetic).

The layout against the generator's own modules (1024 official layout on the meta device); an S edit by
the affine image of a w+ direction reproduces the w+ edit; a single channel moves only its layer's
modulation; strength 0 is exact; F moves only through G_K (and not at all for layers after K or ToRGB);
the standard deviations against a float64 numpy reference, seeded and cached without pickles; S files
checked against the generator; ``--layers`` and ``--combine`` on S edits.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidinvert.device import resolve_compute
from vidinvert.edit.directions import EditSpec
from vidinvert.edit.stylespace import (
    affine_image,
    channel_direction,
    compute_style_stats,
    file_direction,
    load_style_stats,
    mask_style_rows,
    stats_path,
    style_vectors,
)
from vidinvert.engine import Inverter, Latents
from vidinvert.errors import VidinvertError
from vidinvert.models import tiny_pair
from vidinvert.models.stylegan2 import Generator, default_channels
from vidinvert.models.stylespace import (
    check_file_layout,
    generator_layout,
    layout_for,
    parse_channel,
    parse_channels,
    read_style_direction,
    write_style_direction,
)
from vidinvert.pipeline.edits import EditPlan


@pytest.fixture(scope="module")
def inv():
    gen, enc = tiny_pair(0)
    return Inverter(enc, gen, resolve_compute("cpu", "fp32"))


@pytest.fixture(scope="module")
def lat(inv):
    g = torch.Generator().manual_seed(1)
    return inv.invert(torch.rand(3, 3, 64, 64, generator=g) * 2 - 1)


@pytest.fixture(scope="module")
def std(inv):
    return compute_style_stats(inv.generator, samples=500, seed=0).std


def _flat(layout, layer, channel):
    return layout.flat_index(layer, channel)


# ------------------------------------------------------------------------------------- layout
def test_layout_of_the_1024_generator_is_stylespaces():
    with torch.device("meta"):
        g = Generator(1024)
    lay = generator_layout(g)
    mods = g.style_modules()
    assert [n.removesuffix(".conv") for _, n, _ in mods] == list(lay.names)  # synthesis order, ToRGB included
    assert [r for r, _, _ in mods] == [x.row for x in lay.layers]
    assert [m.in_ch for _, _, m in mods] == list(lay.sizes)
    assert (len(lay.layers), lay.conv_total, lay.total - lay.conv_total) == (26, 6048, 3040)
    assert sum(x.channels for x in lay.conv_layers(max_resolution=128)) == 5376  # StyleCLIP's fs3 rows
    six = lay.layers[6]
    assert (six.name, six.kind, six.row, six.resolution, six.channels) == ("convs.3", "conv", 4, 16, 512)
    assert [x.index for x in lay.layers if x.kind == "torgb"] == list(range(1, 26, 3))  # StyleSpace's i % 3 == 1
    assert lay.label(lay.flat_index(6, 501)) == "6_501" and lay.layers_of_rows([17])[-1].name == "to_rgbs.7"
    assert layout_for(1024, default_channels(1024)) == lay


def test_channel_grammar():
    assert parse_channel("6_501").amount == 1 and parse_channel(" 9_409=-2.5 ").amount == -2.5
    for bad in ("6-501", "6_", "x_1", "6_501=0", "6_501=inf", "6_501=a"):
        with pytest.raises(VidinvertError):
            parse_channel(bad)
    with pytest.raises(VidinvertError, match="twice"):
        parse_channels(["6_501", "6_501=2"])


# ---------------------------------------------------------------------------------- the edits
def test_affine_image_edit_reproduces_the_wplus_edit(inv, lat, tmp_path):
    gen = inv.generator
    d = torch.randn(inv.n_latent, inv.style_dim, generator=torch.Generator().manual_seed(2))
    d = 15 * d / d.norm()
    ds = affine_image(gen, d)
    with torch.no_grad():  # the independent reference: the difference of the styles themselves
        ref = style_vectors(gen, lat.w + 0.7 * d) - style_vectors(gen, lat.w)
    assert torch.allclose(0.7 * ds.expand_as(ref), ref, atol=1e-5)
    w_edit = inv.edit(lat, d, 1.5)
    path = write_style_direction(tmp_path / "same.npz", ds.numpy(), generator_layout(gen), units="style")
    s_dir = file_direction(read_style_direction(path), generator_layout(gen), None)
    s_edit = inv.edit(lat, None, 1.5, style_delta=s_dir.delta)
    assert torch.equal(s_edit.w, lat.w) and s_edit.ds is not None
    assert (inv.synthesize(w_edit) - inv.synthesize(s_edit)).abs().max() < 1e-5
    assert (w_edit.f - s_edit.f).abs().max() < 1e-5


def _recorded_styles(gen, fn):
    """Every modulated conv's styles (s * scale) while ``fn`` runs, in call order."""
    seen = []
    mods = [m for _, _, m in gen.style_modules()]
    for m in mods:
        original = type(m).styles

        def wrapper(w, style_offset=None, _m=m, _orig=original):
            out = _orig(_m, w, style_offset)
            seen.append((mods.index(_m), out.detach().clone()))
            return out

        m.styles = wrapper
    try:
        fn()
    finally:
        for m in mods:
            del m.styles
    return dict(seen)


def test_a_single_channel_moves_only_its_layers_modulation(inv, lat, std):
    gen, layout = inv.generator, inv.style_layout
    d = channel_direction([parse_channel("10_7=2")], layout, std)
    edited = inv.edit(lat, None, 3.0, style_delta=d.delta)
    base = _recorded_styles(gen, lambda: inv.synthesize(lat))
    moved = _recorded_styles(gen, lambda: inv.synthesize(edited))
    scale = gen.style_modules()[10][2].scale
    for i in base:
        diff = moved[i] - base[i]
        if i != 10:
            assert torch.equal(diff, torch.zeros_like(diff)), f"layer {i} moved"
        else:
            want = torch.zeros_like(diff)
            want[:, 7] = 3.0 * 2 * std[_flat(layout, 10, 7)] * scale
            assert torch.allclose(diff, want, atol=1e-6)


def test_strength_zero_is_exact(inv, lat, std):
    d = channel_direction([parse_channel("6_3")], inv.style_layout, std)
    zero = inv.edit(lat, None, 0.0, style_delta=d.delta)
    assert torch.equal(zero.w, lat.w) and torch.equal(zero.f, lat.f)
    assert torch.equal(inv.synthesize(zero), inv.synthesize(lat))
    mixed = inv.edit(lat, None, torch.tensor([0.0, 4.0, 0.0]), style_delta=d.delta)
    assert torch.equal(mixed.f[[0, 2]], lat.f[[0, 2]]) and not torch.equal(mixed.f[1], lat.f[1])
    assert torch.equal(inv.synthesize(mixed)[[0, 2]], inv.synthesize(lat)[[0, 2]])


def test_f_moves_only_through_g_k(inv, lat, std):
    gen, layout = inv.generator, inv.style_layout
    early = channel_direction([parse_channel("6_3")], layout, std)  # convs.3, its output is outs[5] = G_K
    edited = inv.edit(lat, None, 5.0, style_delta=early.delta)
    with torch.no_grad():
        off = (5.0 * early.delta)[None].expand(len(lat), -1)
        g_edit = gen.forward_until(lat.w, 5, noise=inv.noise, style_offset=off)
        g_base = gen.forward_until(lat.w, 5, noise=inv.noise)
    assert (g_edit - g_base).abs().max() > 1e-3
    assert torch.allclose(edited.f - lat.f, g_edit - g_base, atol=1e-5)
    for later in ("8_3", "7_3", "13_3"):  # convs.4 (after K), to_rgbs.1, the last ToRGB
        d = channel_direction([parse_channel(later)], layout, std)
        e = inv.edit(lat, None, 5.0, style_delta=d.delta)
        assert torch.equal(e.f, lat.f), later
        assert (inv.synthesize(e) - inv.synthesize(lat)).abs().max() > 1e-4, later


def test_combine_is_the_wplus_edit_then_s_on_the_edited_styles(inv, lat, std):
    gen = inv.generator
    d = torch.randn(inv.n_latent, inv.style_dim, generator=torch.Generator().manual_seed(4))
    d = 15 * d / d.norm()
    s_dir = channel_direction([parse_channel("3_5=-1"), parse_channel("12_2")], inv.style_layout, std)
    from vidinvert.edit.directions import Direction

    spec = EditSpec("both", (Direction("d", d / 15, "test"),), (1.0,), styles=(s_dir,))
    out = EditPlan(strength=2.0).edit_batch(inv, lat, [("both", spec)], [(0, 0.0)] * 3, [1.0] * 3)["both"]
    with torch.no_grad():  # the reference, written out: w~ = w + 2d, s~ = s(w~) + 2 ds, eq. (1)
        w_t, off = lat.w + 2 * d, (2 * s_dir.delta)[None].expand(3, -1)
        f_t = lat.f + gen.forward_until(w_t, 5, noise=inv.noise, style_offset=off) - gen.forward_until(
            lat.w, 5, noise=inv.noise)
        ref = gen(w_t, f_t, feature_index=5, noise=inv.noise, style_offset=off)
    assert (inv.synthesize(out) - ref).abs().max() < 1e-5


def test_layers_keep_the_s_layers_of_those_rows(inv, std):
    layout = inv.style_layout
    d = channel_direction([parse_channel("6_3"), parse_channel("13_1")], layout, std)  # rows 4 and 9
    kept = mask_style_rows(d, layout, [4])
    assert kept.delta[_flat(layout, 6, 3)] == d.delta[_flat(layout, 6, 3)] and kept.delta[_flat(layout, 13, 1)] == 0
    with pytest.raises(VidinvertError, match="--layers"):
        mask_style_rows(d, layout, [0, 1, 2])
    full = file_direction(read_style_direction(write_style_direction(
        _tmp_npz(), np.ones(layout.total, np.float32), layout, units="std")), layout, std)
    coarse = mask_style_rows(full, layout, [0, 1, 2, 3])
    on = {layout.locate(i)[0] for i in torch.nonzero(coarse.delta).flatten().tolist()}
    assert on == {x.index for x in layout.layers if x.row <= 3}


def _tmp_npz():
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp()) / "all.npz"


# ------------------------------------------------------------------------------------ statistics
def test_std_matches_float64_numpy_and_the_seed(inv):
    gen = inv.generator
    a, b = compute_style_stats(gen, 300, seed=5), compute_style_stats(gen, 300, seed=5)
    assert torch.equal(a.std, b.std) and not torch.equal(a.std, compute_style_stats(gen, 300, seed=6).std)
    z = torch.randn(300, gen.style_dim, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        w = gen.mapping(z).double().numpy()
    rows = [np.asarray(w @ m.modulation.weight.double().numpy().T * m.modulation.scale
                       + m.modulation.bias.double().numpy()) for _, _, m in gen.style_modules()]
    ref = np.concatenate(rows, 1)
    np.testing.assert_allclose(a.std.numpy(), ref.std(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(a.mean.numpy(), ref.mean(0), rtol=1e-4, atol=1e-6)


def test_stats_are_cached_without_pickles(inv, tmp_path):
    first = load_style_stats(inv.generator, tmp_path, samples=400)
    path = stats_path(tmp_path, first.fingerprint, 400, 0)
    with np.load(path, allow_pickle=False) as d:  # plain arrays only
        assert d["std"].shape == (inv.style_layout.total,)
    again = load_style_stats(inv.generator, tmp_path, samples=400)
    assert again.seconds == 0 and torch.equal(again.std, first.std)
    path.write_bytes(b"not an npz")
    redone = load_style_stats(inv.generator, tmp_path, samples=400)
    assert redone.seconds > 0 and torch.equal(redone.std, first.std)


# --------------------------------------------------------------------------------------- files
def test_s_files_are_checked(inv, tmp_path):
    layout = inv.style_layout
    with torch.device("meta"):
        other = generator_layout(Generator(32, style_dim=64, channels={4: 64, 8: 64, 16: 64, 32: 32}))
    p = write_style_direction(tmp_path / "other.npz", np.ones(other.total), other, units="std")
    with pytest.raises(VidinvertError, match="another generator"):
        check_file_layout(read_style_direction(p), layout)
    np.savez(tmp_path / "keys.npz", delta=np.ones(3))
    good = dict(format=np.array("vidinvert.stylespace-direction.v1"), units=np.array("std"),
                layer_names=np.array(layout.names), layer_channels=np.array(layout.sizes))
    np.savez(tmp_path / "obj.npz", delta=np.array([1.0, None], dtype=object), **good)  # a pickle inside
    np.savez(tmp_path / "short.npz", delta=np.ones(5, np.float32), **good)
    np.savez(tmp_path / "nan.npz", delta=np.full(layout.total, np.nan, np.float32), **good)
    np.savez(tmp_path / "units.npz", delta=np.ones(layout.total, np.float32), **{**good, "units": np.array("px")})
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 truncated")
    for name, text in [("obj", "cannot read"), ("keys", "missing"), ("short", "float vector"), ("nan", "NaN"),
                       ("units", "units"), ("junk", "cannot read"), ("absent", "not found")]:
        with pytest.raises(VidinvertError, match=text) as err:
            read_style_direction(tmp_path / f"{name}.npz")
        assert "\n" not in str(err.value)


def test_latents_keep_their_style_offsets(inv, lat, std):
    d = channel_direction([parse_channel("6_3")], inv.style_layout, std)
    e = inv.edit(lat, None, 1.0, style_delta=d.delta)
    assert isinstance(e, Latents) and e.slice(slice(1, 2)).ds.shape == (1, inv.style_layout.total)
    assert torch.equal(e.cpu().ds, e.ds)
    with pytest.raises(VidinvertError, match="ds"):
        inv.synthesize(Latents(lat.w, lat.f, torch.zeros(3, 5)))
