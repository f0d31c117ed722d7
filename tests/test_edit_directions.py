import numpy as np
import pytest
import torch

from vidinvert.edit.directions import EDIT_STEP, broadcast_direction, load_direction, resolve_attr
from vidinvert.edit.latent import apply_edit, edit_feature
from vidinvert.errors import VidinvertError


def test_official_boundary_is_unchanged_by_the_rule():
    rng = np.random.default_rng(0)
    b = rng.standard_normal((1, 18 * 512)).astype(np.float32)
    b /= np.linalg.norm(b)
    d = broadcast_direction(b, 18, 512)
    # Exactly the official convention: w + 15*alpha*boundary.reshape(18,512)
    np.testing.assert_allclose(d.numpy(), b.reshape(18, 512), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("shape", [(512,), (1, 512)])
def test_w_space_direction_broadcasts_and_normalises(shape):
    v = np.arange(1, 513, dtype=np.float32).reshape(shape)
    d = broadcast_direction(v, 18, 512)
    assert d.shape == (18, 512)
    assert torch.linalg.norm(d) == pytest.approx(1.0, abs=1e-6)
    # every row is the same direction
    assert torch.allclose(d[0], d[17])
    cos = torch.nn.functional.cosine_similarity(d[3], torch.from_numpy(v.reshape(-1)), dim=0)
    assert cos == pytest.approx(1.0, abs=1e-6)


class _Direction:
    """A custom class instance saved whole instead of its tensor."""

    def __init__(self) -> None:
        self.vector = torch.ones(512)


def _touch(path: str) -> None:  # would run if the file were unpickled without weights_only
    open(path, "w").close()


class _TouchOnLoad:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (_touch, (self.path,))


@pytest.mark.parametrize("kind", ["instance", "function", "reduce"])
def test_direction_file_of_python_objects_is_refused_in_one_line(tmp_path, kind):
    marker = tmp_path / "ran.marker"
    payload = {"instance": _Direction(), "function": {"direction": _touch},
               "reduce": {"direction": _TouchOnLoad(str(marker))}}[kind]
    p = tmp_path / "smile.pt"
    torch.save(payload, p)
    with pytest.raises(VidinvertError) as info:
        load_direction(p, 18, 512)
    msg = str(info.value)
    assert "\n" not in msg and len(msg) < 300, msg  # not PyTorch's multi-line weights-only message
    assert f"{p} holds Python objects that a weights-only load refuses; not loaded" in msg
    assert not marker.exists()


def test_bad_directions(tmp_path):
    with pytest.raises(VidinvertError, match="does not fit"):
        broadcast_direction(np.ones((3, 7), np.float32), 18, 512)
    with pytest.raises(VidinvertError, match="zeros"):
        broadcast_direction(np.zeros(512, np.float32), 18, 512)
    p = tmp_path / "d.npy"
    p.write_bytes(b"not numpy")
    with pytest.raises(VidinvertError, match="cannot read"):
        load_direction(p, 18, 512)
    with pytest.raises(VidinvertError, match="not found"):
        load_direction(tmp_path / "missing.npy", 18, 512)
    ckpt = tmp_path / "encoder.pth"  # a model checkpoint passed as a direction
    torch.save({"a.weight": torch.ones(2), "b.weight": torch.ones(3)}, ckpt)
    with pytest.raises(VidinvertError, match="holds a dict, not one tensor"):
        load_direction(ckpt, 18, 512)
    single = tmp_path / "single.pt"  # one named tensor is accepted
    torch.save({"direction": torch.ones(512)}, single)
    assert load_direction(single, 18, 512).vector.shape == (18, 512)


def test_resolve_attr_aliases_and_listing(tmp_path):
    (tmp_path / "directions").mkdir()
    np.save(tmp_path / "Smiling_boundary.npy", np.ones((1, 9216), np.float32))
    np.save(tmp_path / "directions" / "age.npy", np.ones((512,), np.float32))
    name, path = resolve_attr("smile", tmp_path)
    assert name == "Smiling" and path.name == "Smiling_boundary.npy"
    assert resolve_attr("AGE", tmp_path)[1].name == "age.npy"
    with pytest.raises(VidinvertError) as e:
        resolve_attr("beard", tmp_path)
    msg = str(e.value)
    assert "beard" in msg and "Smiling" in msg and "age" in msg and "\n" not in msg


def test_apply_edit_per_frame_strength_and_exact_zero():
    w = torch.randn(3, 18, 512)
    d = torch.randn(18, 512)
    d = d / d.norm() * EDIT_STEP
    out = apply_edit(w, d, torch.tensor([0.0, 1.0, 2.0]))
    assert torch.equal(out[0], w[0])
    assert torch.allclose(out[2] - w[2], 2 * d, atol=1e-5)
    f = torch.randn(3, 8, 4, 4)
    gk, gk2 = torch.randn(3, 8, 4, 4), torch.randn(3, 8, 4, 4)
    fe = edit_feature(f, gk, gk2, unchanged=torch.tensor([True, False, False]))
    assert torch.equal(fe[0], f[0])
    assert torch.allclose(fe[1], f[1] + (gk2[1] - gk[1]), rtol=0, atol=1e-6)
