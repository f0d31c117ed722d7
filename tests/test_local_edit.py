"""Local and stronger feature edits: F~ = F + M(G_K(w~) - G_K(w)) - (1-B) rho M (F - G_K(w)).

Random weights show no semantics: these tests check the mechanism (exact reductions, where F
may change, the per-frame weight rho) against float64 numpy and the existing eq. (1) path.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidinvert.edit.latent import (
    apply_edit,
    check_feature_keep,
    edit_feature,
    edit_feature_local,
    edit_weight_rho,
    strength_peak,
)
from vidinvert.errors import VidinvertError
from vidinvert.timespec import parse_strength


def _codes(b=3, c=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, c, 16, 16, generator=g) for _ in range(3)]


def _reference(f, gk, ge, m, keep, rho):
    """The formula in float64 numpy, written out per element."""
    f, gk, ge = (x.double().numpy() for x in (f, gk, ge))
    m = np.ones((f.shape[0], 1, 16, 16)) if m is None else m.double().numpy()
    keep = np.broadcast_to(np.asarray(keep, np.float64), (f.shape[0],)).reshape(-1, 1, 1, 1)
    rho = np.asarray(rho, np.float64).reshape(-1, 1, 1, 1)
    return f + m * (ge - gk) - (1 - keep) * rho * m * (f - gk)


def test_defaults_are_eq1_bit_for_bit():
    f, gk, ge = _codes()
    unchanged = torch.tensor([False, True, False])
    ref = edit_feature(f, gk, ge, unchanged)
    assert torch.equal(edit_feature_local(f, gk, ge, unchanged), ref)
    assert torch.equal(edit_feature_local(f, gk, ge, unchanged, keep=torch.ones(3), rho=torch.rand(3)), ref)
    # an all-ones mask is the whole grid: eq. (1) again, exactly
    ones = torch.ones(3, 1, 16, 16)
    assert torch.equal(edit_feature_local(f, gk, ge, unchanged, mask16=ones), ref)


@pytest.mark.parametrize("keep", [1.0, 0.5, 0.0])
def test_formula_matches_float64_reference(keep):
    f, gk, ge = _codes(seed=1)
    m = torch.rand(3, 1, 16, 16)
    m[:, :, :5] = 0  # top rows outside the region
    rho = torch.tensor([1.0, 0.25, 0.0])
    out = edit_feature_local(f, gk, ge, mask16=m, keep=keep, rho=rho)
    np.testing.assert_allclose(out.double().numpy(), _reference(f, gk, ge, m, keep, rho), rtol=0, atol=1e-5)
    # per-frame B
    kb = torch.tensor([0.0, 0.3, 1.0])
    out = edit_feature_local(f, gk, ge, keep=kb, rho=rho)
    np.testing.assert_allclose(out.double().numpy(), _reference(f, gk, ge, None, kb.numpy(), rho), rtol=0, atol=1e-5)


def test_f_is_exactly_unchanged_outside_the_mask_support_and_at_strength_zero():
    f, gk, ge = _codes(seed=2)
    m = torch.zeros(3, 1, 16, 16)
    m[:, :, 9:13, 5:11] = torch.rand(3, 1, 4, 6) + 0.01
    unchanged = torch.tensor([False, False, True])  # frame 2 has strength 0
    for keep in (1.0, 0.4, 0.0):
        out = edit_feature_local(f, gk, ge, unchanged, mask16=m, keep=keep, rho=torch.tensor([1.0, 0.5, 0.0]))
        outside = (m == 0).expand_as(f)
        assert torch.equal(out[outside], f[outside])
        assert torch.equal(out[2], f[2])
        assert not torch.equal(out[0], f[0])
    # without a mask, strength 0 with any B leaves F exactly
    for keep in (0.0, 0.7):
        out = edit_feature_local(f, gk, ge, unchanged, keep=keep, rho=torch.tensor([1.0, 1.0, 0.0]))
        assert torch.equal(out[2], f[2])


def test_keep_zero_replaces_f_by_the_generator_feature_of_the_edited_latent():
    f, gk, ge = _codes(seed=3)
    out = edit_feature_local(f, gk, ge, keep=0.0, rho=torch.ones(3))
    torch.testing.assert_close(out, ge, rtol=0, atol=1e-5)  # F + (ge - gk) - (F - gk) = ge


def test_bad_shapes_and_values_are_refused():
    f, gk, ge = _codes()
    with pytest.raises(ValueError, match="mask16"):
        edit_feature_local(f, gk, ge, mask16=torch.ones(3, 1, 8, 8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        edit_feature_local(f, gk, ge, keep=1.5)
    check_feature_keep(0.0)
    check_feature_keep(parse_strength("0s:1,2s:0.2"))
    for bad in (-0.1, 1.01, float("nan")):
        with pytest.raises(VidinvertError, match="--feature-keep"):
            check_feature_keep(bad)
    with pytest.raises(VidinvertError):
        check_feature_keep(parse_strength("0f:1,10f:2"))


def test_rho_follows_strength_and_fades():
    pytest.importorskip("scipy")
    from vidinvert.face.smooth import SmoothConfig, StreamingQuadSmoother

    # a face track with a long gap in the middle: the smoother fades the edit out and back in
    cfg = SmoothConfig(max_gap=0.2, fade_frames=6)
    sm = StreamingQuadSmoother(cfg)
    out = []
    params = np.array([100.0, 100.0, 40.0, 0.0])
    for i in range(60):
        present = not (20 <= i < 35)
        out += sm.push(i, i / 30, params if present else None)
    out += sm.finish()
    fade = np.array([o.edit_weight for o in out])
    assert fade.min() == 0 and 0 < fade[(fade > 0) & (fade < 1)].size  # there is a fade
    keys = parse_strength("0f:0,30f:3,59f:-1.5")
    s = np.array([keys.value_at(i, i / 30) for i in range(60)])
    rho = edit_weight_rho(s, fade, peak=strength_peak(keys)).numpy()
    assert rho.dtype == np.float32 and rho.min() >= 0 and rho.max() <= 1
    assert strength_peak(keys) == 3.0 and strength_peak(-2.0) == 2.0
    np.testing.assert_allclose(rho, np.abs(s) / 3.0 * fade, atol=1e-7)
    assert (rho[fade == 0] == 0).all() and rho[0] == 0  # zero where the edit fades out and at S = 0
    # a constant strength: rho is the fade itself, whatever the strength's size or sign
    np.testing.assert_allclose(edit_weight_rho(np.full(60, -2.5), fade).numpy(), fade, atol=1e-7)
    assert (edit_weight_rho(np.zeros(60), fade).numpy() == 0).all()


def test_inverter_level_b1_equals_eq1_and_region_keeps_f():
    from vidinvert.device import resolve_compute
    from vidinvert.engine import Inverter
    from vidinvert.models import tiny_pair

    gen, enc = tiny_pair(0)
    inv = Inverter(enc, gen, resolve_compute("cpu", "fp32"))
    faces = torch.rand(2, 3, inv.size, inv.size) * 2 - 1
    lat = inv.invert(faces)
    delta = torch.randn(inv.n_latent, inv.style_dim) * 0.5
    s = torch.tensor([2.0, 0.0])
    eq1 = inv.edit(lat, delta, s)
    w_edit = torch.where((s == 0).view(-1, 1, 1), lat.w, apply_edit(lat.w, delta, s))
    assert torch.equal(w_edit, eq1.w)
    gk, ge = inv.feature_at_k(torch.cat([lat.w, w_edit])).chunk(2)  # one batch, as Inverter.edit runs it
    assert torch.equal(edit_feature_local(lat.f, gk, ge, s == 0), eq1.f)
    m = torch.zeros(2, 1, 16, 16)
    m[:, :, 8:, 4:12] = 1.0
    loc = edit_feature_local(lat.f, gk, ge, s == 0, mask16=m, keep=0.3, rho=edit_weight_rho(s, [1.0, 1.0]))
    assert torch.equal(loc[:, :, :8], lat.f[:, :, :8]) and torch.equal(loc[1], lat.f[1])
    assert not torch.equal(loc[0, :, 8:], lat.f[0, :, 8:])
