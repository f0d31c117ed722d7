"""Layer specs and masks, conditional edits (against numpy.linalg.lstsq), the --attr listing."""

import numpy as np
import pytest
import torch

from vidinvert.edit.conditional import condition_direction, project_out
from vidinvert.edit.directions import (
    Direction,
    EditSpec,
    broadcast_direction,
    load_direction,
    resolve_attr,
)
from vidinvert.edit.layers import (
    default_strengths,
    layer_mask,
    mask_direction,
    mask_spec,
    nonzero_rows,
    parse_layers,
    row_step_strength,
)
from vidinvert.errors import VidinvertError


def _dir(name, array, n_latent=18, style_dim=512):
    return Direction(name, broadcast_direction(np.asarray(array, np.float32), n_latent, style_dim), name)


@pytest.mark.parametrize("spec, rows", [
    ("all", list(range(18))), ("coarse", [0, 1, 2, 3]), ("middle", [4, 5, 6, 7]), ("fine", list(range(8, 18))),
    ("0-17", list(range(18))), ("4-8", [4, 5, 6, 7, 8]), ("3,1,1,9", [1, 3, 9]), ("coarse,10-11", [0, 1, 2, 3, 10, 11]),
    (" Fine ", list(range(8, 18))),
])
def test_parse_layers(spec, rows):
    assert parse_layers(spec, 18) == rows
    assert layer_mask(spec, 18).tolist() == [r in rows for r in range(18)]


@pytest.mark.parametrize("spec", ["", "18", "5-3", "coarse;fine", "a-b", "-1", "2-18"])
def test_bad_layer_specs_are_refused(spec):
    with pytest.raises(VidinvertError):
        parse_layers(spec, 18)


def test_fine_on_a_small_generator():
    assert parse_layers("fine", 10) == [8, 9] and parse_layers("middle", 6) == [4, 5]
    with pytest.raises(VidinvertError, match="selects no row"):
        parse_layers("fine", 8)


def test_mask_zeroes_outside_and_keeps_inside_without_renormalising():
    rng = np.random.default_rng(0)
    d = _dir("x", rng.standard_normal((18, 512)))
    mask = layer_mask("4-8", 18)
    m = mask_direction(d, mask)
    v, orig = m.vector.numpy(), d.vector.numpy()
    assert np.all(v[[0, 1, 2, 3, 9, 10, 17]] == 0)
    assert np.array_equal(v[4:9], orig[4:9])  # bit for bit: no renormalisation
    assert np.linalg.norm(v) < 0.9
    spec = mask_spec(EditSpec("x", (d, d), (1.0, -0.5)), mask)
    delta = spec.delta().numpy()
    np.testing.assert_allclose(delta, 15 * 0.5 * orig * mask.numpy()[:, None], rtol=1e-6, atol=1e-7)
    with pytest.raises(VidinvertError, match="zero on the rows"):
        mask_direction(mask_direction(d, layer_mask("coarse", 18)), layer_mask("fine", 18))


def test_per_row_step_and_default_strengths(tmp_path):
    # A direction with k non-zero equal rows moves each row by 15 S / sqrt(k) under the one rule.
    v = np.zeros((18, 512), np.float32)
    v[4:8] = np.random.default_rng(1).standard_normal(512)
    np.save(tmp_path / "d.npy", v)
    d = load_direction(tmp_path / "d.npy", 18, 512)
    assert nonzero_rows(d.vector) == 4
    s = row_step_strength(4)
    assert s == pytest.approx(0.4)
    moved = torch.linalg.vector_norm(d.scaled(s), dim=1)
    np.testing.assert_allclose(moved[4:8].numpy(), 3.0, rtol=1e-5)
    assert default_strengths([d]) == (-0.4, -0.2, 0.0, 0.2, 0.4)


def test_conditional_edit_is_orthogonal_to_every_kept_direction():
    rng = np.random.default_rng(2)
    k1 = rng.standard_normal(18 * 512)
    k2 = 0.7 * k1 + 0.3 * rng.standard_normal(18 * 512)  # strongly correlated, not orthogonal
    e = rng.standard_normal(18 * 512) + 2 * k1
    edit, keep1, keep2 = _dir("smile", e[None]), _dir("glasses", k1[None]), _dir("age", k2[None])
    assert abs(float((keep1.vector * keep2.vector).sum())) > 0.5
    out = condition_direction(edit, [keep1, keep2])
    # independent reference: residual of the least-squares fit of e by [k1 k2], renormalised
    kmat = np.stack([keep1.vector.numpy().ravel(), keep2.vector.numpy().ravel()], 1).astype(np.float64)
    ev = edit.vector.numpy().ravel().astype(np.float64)
    coef, *_ = np.linalg.lstsq(kmat, ev, rcond=None)
    ref = ev - kmat @ coef
    ref /= np.linalg.norm(ref)
    got = out.vector.numpy().ravel()
    np.testing.assert_allclose(got, ref, atol=2e-6)
    assert abs(np.linalg.norm(got) - 1) < 1e-5
    for k in (keep1, keep2):
        assert abs(float(got @ k.vector.numpy().ravel())) < 1e-5
    assert out.name == "smile"
    # project_out on raw tensors: the result keeps the input's norm
    raw = project_out(edit.vector * 3, [keep1.vector, keep2.vector])
    assert float(raw.norm()) == pytest.approx(3.0, rel=1e-5)


def test_conditional_with_a_mask_stays_in_the_rows_and_orthogonal():
    rng = np.random.default_rng(3)
    mask = layer_mask("coarse", 18)
    edit = mask_direction(_dir("e", rng.standard_normal((18, 512))), mask)
    keep = _dir("k", rng.standard_normal((18, 512)))
    out = condition_direction(edit, [keep], mask)
    v = out.vector.numpy()
    assert np.all(v[4:] == 0)
    assert abs(float((v * keep.vector.numpy()).sum())) < 1e-6
    assert np.linalg.norm(v) == pytest.approx(np.linalg.norm(edit.vector.numpy()), rel=1e-5)


def test_conditional_refuses_a_direction_inside_the_span():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal(512), rng.standard_normal(512)
    with pytest.raises(VidinvertError, match="span"):
        condition_direction(_dir("e", a + b), [_dir("a", a), _dir("b", b)])


def test_attr_error_lists_only_names_with_files(tmp_path):
    (tmp_path / "directions").mkdir()
    np.save(tmp_path / "directions" / "Smiling_boundary.npy", np.ones((1, 9216), np.float32))
    with pytest.raises(VidinvertError) as e:
        resolve_attr("age", tmp_path)
    msg = str(e.value)
    have = msg.split("names with a file here:")[1].split(";")[0]
    assert "Smiling" in have and "age" not in have and "gender" not in have and "Eyeglasses" not in have
    assert "smile" in have  # the alias that resolves to a present file
    assert "encoder4editing" in msg and "MIT" in msg and "directions discover" in msg and "\n" not in msg


def test_restrict_and_condition_then_combine(tmp_path):
    from vidinvert.edit.conditional import restrict_and_condition
    from vidinvert.edit.directions import load_named

    rng = np.random.default_rng(5)
    np.save(tmp_path / "Eyeglasses_boundary.npy", rng.standard_normal((1, 9216)).astype(np.float32))
    keep = load_named("glasses", 18, 512, tmp_path)  # by alias
    keep_file = load_named(tmp_path / "Eyeglasses_boundary.npy", 18, 512)
    assert torch.equal(keep.vector, keep_file.vector)
    a, b = _dir("a", rng.standard_normal((18, 512))), _dir("b", rng.standard_normal(512))
    out = restrict_and_condition([a, b], n_latent=18, layers="middle", keep=[keep])
    combined = EditSpec("a+b", tuple(out), (1.0, 1.0)).delta().numpy()
    assert np.all(combined[:4] == 0) and np.all(combined[8:] == 0)
    assert abs(float((combined * keep.vector.numpy()).sum())) < 1e-4
    assert restrict_and_condition([a], n_latent=18)[0] is a
