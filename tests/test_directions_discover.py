"""SeFa discovery against numpy.linalg.eigh of an independently built matrix; the w+ row -> layer
mapping against hooks on the forward pass; the early-exit RGB against a smaller generator."""

import json

import numpy as np
import pytest
import torch

from vidinvert.edit.discover import DiscoverRequest, factorize, run_discover
from vidinvert.errors import VidinvertError
from vidinvert.models.stylegan2 import EqualLinear, Generator, tiny


def _reference_matrix(state: dict, rows: list[int], num_layers: int, n_to_rgbs: int) -> np.ndarray:
    """A from the state dict's key names: conv1 <- row 0, convs.{r-1} <- row r, last ToRGB <- last row."""
    mats = []
    for r in rows:
        if r == 0:
            key = "conv1.conv.modulation.weight"
        elif r < num_layers:
            key = f"convs.{r - 1}.conv.modulation.weight"
        else:
            key = f"to_rgbs.{n_to_rgbs - 1}.conv.modulation.weight"
        mats.append(state[key].double().numpy())
    a = np.concatenate(mats, 0)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_style_rows_follow_the_forward_pass():
    g = tiny(0)
    names = {m: n for n, m in g.named_modules() if isinstance(m, EqualLinear) and n.endswith("modulation")}
    seen: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out: seen.__setitem__(names[mod], out.clone()))
             for m in names]
    w = torch.randn(1, g.n_latent, g.style_dim)
    with torch.no_grad():
        g(w)
        base = dict(seen)
        consumers = {}
        for r in range(g.n_latent):
            w2 = w.clone()
            w2[:, r] += 1.0
            g(w2)
            consumers[r] = sorted(n[: -len(".modulation")] for n in names.values() if not torch.equal(seen[n], base[n]))
    for h in hooks:
        h.remove()
    expected: dict[int, list[str]] = {r: [] for r in range(g.n_latent)}
    for row, name, _ in g.style_modules():
        expected[row].append(name)
    assert consumers == {r: sorted(v) for r, v in expected.items()}
    assert consumers[0] == ["conv1.conv"] and consumers[g.n_latent - 1] == [f"to_rgbs.{len(g.to_rgbs) - 1}.conv"]


@pytest.mark.parametrize("rows", [list(range(10)), [0, 1, 2, 3], [4, 9]])
def test_factorize_matches_numpy_eigh(rows):
    g = tiny(3)
    vals, dirs = factorize(g, rows)
    a = _reference_matrix(g.state_dict(), rows, g.num_layers, len(g.to_rgbs))
    ref_vals, ref_vecs = np.linalg.eigh(a.T @ a)
    ref_vals, ref_vecs = ref_vals[::-1], ref_vecs[:, ::-1]
    np.testing.assert_allclose(vals, ref_vals, rtol=1e-9, atol=1e-9)
    for k in range(5):  # leading eigenvectors: same up to sign, and the sign rule holds
        assert abs(abs(dirs[k] @ ref_vecs[:, k]) - 1) < 1e-8
        assert dirs[k][np.argmax(np.abs(dirs[k]))] > 0
        assert abs(np.linalg.norm(dirs[k]) - 1) < 1e-10


def test_planted_dominant_direction_is_recovered():
    g = tiny(1)
    u = torch.randn(g.style_dim, generator=torch.Generator().manual_seed(5))
    u /= u.norm()
    gen = torch.Generator().manual_seed(6)
    with torch.no_grad():
        for _, _, conv in g.style_modules():
            wt = conv.modulation.weight
            noise = torch.randn(wt.shape, generator=gen) * 0.3
            load = torch.randn(wt.shape[0], 1, generator=gen).sign()
            wt.copy_(noise + 2.0 * load * u[None])
    _, dirs = factorize(g, list(range(g.n_latent)))
    assert abs(float(dirs[0] @ u.double().numpy())) > 0.99


def test_run_discover_writes_files_and_index(tmp_path):
    g = tiny(0)
    out = tmp_path / "dirs"
    res = run_discover(g, DiscoverRequest(out, layers="coarse", count=3), source="tiny")
    assert [f.name for f in res.files] == ["sefa_L0-3_r00.npy", "sefa_L0-3_r01.npy", "sefa_L0-3_r02.npy"]
    _, dirs = factorize(g, [0, 1, 2, 3])
    for rank, f in enumerate(res.files):
        a = np.load(f)
        assert a.shape == (10, 64) and a.dtype == np.float32
        assert np.all(a[4:] == 0)
        np.testing.assert_allclose(a[:4], np.broadcast_to(dirs[rank], (4, 64)), atol=1e-6)
    with pytest.raises(VidinvertError, match="already exists"):
        run_discover(g, DiscoverRequest(out, layers="0-3", count=1))
    run_discover(g, DiscoverRequest(out, layers="fine", count=2))  # merged into the same index
    index = json.loads((out / "directions.json").read_text())["directions"]
    assert [e["file"] for e in index] == [f.name for f in res.files] + ["sefa_L8-9_r00.npy", "sefa_L8-9_r01.npy"]
    assert index[0]["layers"] == [0, 1, 2, 3] and index[0]["rank"] == 0
    assert index[0]["eigenvalue"] >= index[1]["eigenvalue"] >= index[2]["eigenvalue"] > 0
    with pytest.raises(VidinvertError, match="--count"):
        run_discover(g, DiscoverRequest(out, count=65))


def test_rgb_size_is_the_smaller_generator_output():
    """The skip RGB at 32 px of the 64-px tiny generator equals a 32-px generator with the same weights."""
    g = tiny(2)
    small = Generator(32, style_dim=64, n_mlp=2, channels={4: 64, 8: 64, 16: 64, 32: 32})
    ssd = small.state_dict()
    small.load_state_dict({k: g.state_dict()[k] for k in ssd}, strict=True)
    w = torch.randn(2, g.n_latent, g.style_dim)
    f = torch.randn(2, 64, 16, 16)
    with torch.no_grad():
        ours = g(w, f, rgb_size=32)
        ref = small.eval()(w[:, : small.n_latent].contiguous(), f)
        full = g(w, f)
        full_again = g(w, f, rgb_size=64)
    assert ours.shape == (2, 3, 32, 32)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    assert torch.equal(full, full_again)
    with pytest.raises(ValueError, match="rgb_size"):
        g(w, rgb_size=48)
