"""Style from a reference (--style): row selection, w' = w + A M (w_ref - w), and the two
inversions check: A = 1 over all rows renders G(w_ref, F_t) exactly, A = 0 the inversion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidinvert.edit.layers import parse_layers, rows_mask
from vidinvert.edit.style import (
    check_style_strength,
    reference_crop,
    style_amounts,
    style_mix,
    style_tag,
)
from vidinvert.errors import VidinvertError
from vidinvert.timespec import parse_strength


@pytest.fixture(scope="module")
def inverter():
    from vidinvert.device import resolve_compute
    from vidinvert.engine import Inverter
    from vidinvert.models import tiny_pair

    gen, enc = tiny_pair(0)
    return Inverter(enc, gen, resolve_compute("cpu", "fp32"))


def test_parse_layers():
    assert parse_layers("all", 18) == list(range(18))
    assert parse_layers("0-17", 18) == list(range(18))
    assert parse_layers("coarse", 18) == [0, 1, 2, 3]
    assert parse_layers("middle", 18) == [4, 5, 6, 7]
    assert parse_layers("fine", 18) == list(range(8, 18))
    assert parse_layers(" 0-2, 5 ,fine", 10) == [0, 1, 2, 5, 8, 9]
    assert parse_layers("3,1,3", 18) == [1, 3]
    for bad, msg in [("0-18", "rows 0..17"), ("5-2", "must not exceed"), ("x", "bad --style-layers item"),
                     ("", "empty"), ("1-", "bad"), ("-1", "bad")]:
        with pytest.raises(VidinvertError, match=msg):
            parse_layers(bad, 18, what="--style-layers")
    with pytest.raises(VidinvertError, match="selects no row"):
        parse_layers("fine", 8)
    m = rows_mask((1, 3), 5)
    assert m.dtype == torch.bool and m.tolist() == [False, True, False, True, False]
    assert bool(rows_mask(None, 4).all())


def test_style_mix_ends_are_exact_and_rows_outside_untouched():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 18, 32, generator=g) * 3
    ref = torch.randn(1, 18, 32, generator=g) * 3
    assert torch.equal(style_mix(w, ref, 0.0), w)
    assert torch.equal(style_mix(w, ref, 1.0), ref.expand_as(w))
    fine = rows_mask(parse_layers("fine", 18), 18)
    out = style_mix(w, ref, torch.tensor([1.0, 0.5, 0.0, 0.25]), fine)
    assert torch.equal(out[:, :8], w[:, :8])  # coarse and middle rows are the frame's own
    assert torch.equal(out[0, 8:], ref[0, 8:]) and torch.equal(out[2], w[2])
    expected = w.double() + 0.5 * (ref.double() - w.double())  # float64 reference of the formula
    np.testing.assert_allclose(out[1, 8:].double().numpy(), expected[1, 8:].numpy(), atol=1e-5)
    per_frame_ref = torch.randn(4, 18, 32, generator=g)
    assert torch.equal(style_mix(w, per_frame_ref, 1.0), per_frame_ref)
    with pytest.raises(ValueError, match="does not match"):
        style_mix(w, ref[:, :17], 1.0)


def test_strength_checks_amounts_and_tag(tmp_path):
    check_style_strength(0.0)
    check_style_strength(parse_strength("0s:0,2s:1"))
    for bad in (1.5, -0.2, float("inf")):
        with pytest.raises(VidinvertError, match="--style-strength"):
            check_style_strength(bad)
    with pytest.raises(VidinvertError):
        check_style_strength(parse_strength("0f:0,10f:2"))
    a = style_amounts(parse_strength("0f:0,10f:1"), [(0, 0.0), (5, 0.2), (20, 0.8)])
    assert a.tolist() == [0.0, 0.5, 1.0]
    assert style_amounts(0.3, [(0, 0.0)] * 2).tolist() == pytest.approx([0.3, 0.3])
    assert style_tag(tmp_path / "Ref photo.v2.jpg") == "style-Ref_photo_v2"
    assert style_tag("ref.jpg") == "style-ref"


def test_style_at_one_renders_reference_latent_with_frame_feature(inverter):
    """Two independent inversions: frames and a reference. A=1 over all rows must give exactly
    G(w_ref, F_t), computed by synthesising the two inversions' codes directly."""
    from vidinvert.engine import Latents

    g = torch.Generator().manual_seed(1)
    s = inverter.size
    frames = torch.rand(3, 3, s, s, generator=g) * 2 - 1
    ref_img = torch.rand(1, 3, s, s, generator=g) * 2 - 1
    lat = inverter.invert(frames)
    w_ref = inverter.invert(ref_img).w
    f_before = lat.f.clone()

    expected = inverter.synthesize(Latents(w_ref.expand_as(lat.w).clone(), lat.f))
    styled = Latents(style_mix(lat.w, w_ref, 1.0, rows_mask(parse_layers("all", inverter.n_latent),
                                                                   inverter.n_latent)), lat.f)
    assert torch.equal(inverter.synthesize(styled), expected)
    assert torch.equal(lat.f, f_before)  # the style never touches F_t
    # A = 0 is the inversion itself
    assert torch.equal(inverter.synthesize(Latents(style_mix(lat.w, w_ref, 0.0), lat.f)),
                       inverter.synthesize(lat))
    # not a no-op: a different reference changes the output
    assert not torch.equal(expected, inverter.synthesize(lat))


def test_edit_on_top_of_style_follows_eq1_from_the_styled_latent(inverter):
    from vidinvert.engine import Latents

    g = torch.Generator().manual_seed(2)
    s = inverter.size
    lat = inverter.invert(torch.rand(2, 3, s, s, generator=g) * 2 - 1)
    w_ref = inverter.invert(torch.rand(1, 3, s, s, generator=g) * 2 - 1).w
    w_style = style_mix(lat.w, w_ref, torch.tensor([1.0, 0.5]), rows_mask(parse_layers("fine", 10), 10))
    delta = torch.randn(inverter.n_latent, inverter.style_dim, generator=g)
    out = inverter.edit(Latents(w_style, lat.f), delta, 1.5)
    w_e = w_style + 1.5 * delta
    expected_f = lat.f + inverter.feature_at_k(w_e) - inverter.feature_at_k(w_style)
    torch.testing.assert_close(out.f, expected_f, rtol=0, atol=1e-5)
    torch.testing.assert_close(out.w, w_e, rtol=0, atol=1e-6)


def test_reference_crop_aligned_and_unaligned(tmp_path):
    from PIL import Image

    skimage_data = pytest.importorskip("skimage.data")
    sq = tmp_path / "aligned.png"
    Image.fromarray(skimage_data.astronaut()[:256, 100:356]).save(sq)
    t = reference_crop(sq, 64, align=False)
    assert t.shape == (1, 3, 64, 64) and float(t.min()) >= -1 and float(t.max()) <= 1
    wide = tmp_path / "wide.png"
    Image.fromarray(skimage_data.astronaut()[:200]).save(wide)
    with pytest.raises(VidinvertError, match="not a square"):
        reference_crop(wide, 64, align=False)
    pytest.importorskip("dlib")
    from vidinvert.face.detect import DlibDetector

    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(skimage_data.astronaut()).save(photo)
    crop = reference_crop(photo, 64, detector=DlibDetector())
    assert crop.shape == (1, 3, 64, 64)
    cat = tmp_path / "cat.png"
    Image.fromarray(skimage_data.chelsea()).save(cat)
    with pytest.raises(VidinvertError, match="no face found"):
        reference_crop(cat, 64, detector=DlibDetector())
