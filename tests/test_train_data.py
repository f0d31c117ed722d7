"""Training data: global-index keyed sampling (the basis of 1-process == N-process training),
the held-out split, per-epoch orders, synthetic samples and image loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vidinvert.errors import VidinvertError
from vidinvert.train.data import (
    BatchLayout,
    RealOrder,
    SyntheticFaces,
    list_images,
    load_face,
    reconstruction_noise,
    split_images,
)


@pytest.mark.parametrize("world, accumulate", [(2, 1), (4, 1), (2, 2), (1, 4)])
def test_processes_and_micro_steps_partition_the_one_process_batch(world, accumulate):
    one = BatchLayout(8, 4, 1, 0, 1)
    for step in range(3):
        want_real = one.real_positions(step, 0)
        want_syn = one.synthetic_indices(step, 0)
        got_real, got_syn = [], []
        for micro in range(accumulate):
            for rank in range(world):
                lay = BatchLayout(8, 4, world, rank, accumulate)
                got_real += lay.real_positions(step, micro)
                got_syn += lay.synthetic_indices(step, micro)
        assert sorted(got_real) == want_real and len(got_real) == len(set(got_real))
        assert sorted(got_syn) == want_syn
    # consecutive steps never reuse a sample index
    assert one.real_positions(1, 0)[0] == one.real_positions(0, 0)[-1] + 1


def test_batch_that_does_not_divide_is_a_clear_error():
    with pytest.raises(VidinvertError, match="data.batch_real=1 does not divide into 2 process"):
        BatchLayout(1, 1, world_size=2, rank=0)


def test_real_order_is_a_seeded_permutation_per_epoch():
    order = RealOrder(7, seed=3)
    epoch0 = [order(p) for p in range(7)]
    epoch1 = [order(p) for p in range(7, 14)]
    assert sorted(epoch0) == list(range(7)) and sorted(epoch1) == list(range(7))
    assert epoch0 != epoch1
    assert epoch0 == [RealOrder(7, seed=3)(p) for p in range(7)]  # no hidden state
    assert epoch0 != [RealOrder(7, seed=4)(p) for p in range(7)]


def _write_faces(folder, n, side=32, non_square=False):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = []
    for i in range(n):
        a = rng.integers(0, 256, (side, side + (8 if non_square else 0), 3), dtype=np.uint8)
        Image.fromarray(a).save(folder / f"{i:03d}.png")
        arrays.append(a)
    return arrays


def test_split_is_deterministic_disjoint_and_holds_out_at_least_one(tmp_path):
    _write_faces(tmp_path / "a", 10)
    _write_faces(tmp_path / "a" / "sub", 3)  # recursive
    (tmp_path / "a" / "notes.txt").write_text("x")
    files = list_images(tmp_path / "a")
    assert len(files) == 13
    train, val = split_images(files, 0.1, seed=0)
    assert len(val) == 1 and not set(train) & set(val) and sorted(train + val) == files
    assert (train, val) == split_images(files, 0.1, seed=0)
    assert split_images(files, 0.0, seed=0) == (files, [])
    with pytest.raises(VidinvertError, match="no images"):
        list_images(_empty(tmp_path))


def _empty(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    return d


def test_load_face_values_crop_and_resize(tmp_path):
    arrays = _write_faces(tmp_path / "f", 1, side=32)
    x = load_face(tmp_path / "f" / "000.png", 32)
    want = torch.from_numpy(arrays[0]).permute(2, 0, 1).float() / 127.5 - 1
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    torch.testing.assert_close(x, want, rtol=0, atol=1e-6)
    arrays = _write_faces(tmp_path / "g", 1, side=32, non_square=True)
    y = load_face(tmp_path / "g" / "000.png", 16)
    assert y.shape == (3, 16, 16) and float(y.min()) >= -1 and float(y.max()) <= 1
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(VidinvertError, match="broken.png"):
        load_face(tmp_path / "broken.png", 16)


@pytest.fixture(scope="module")
def tiny_generator():
    from vidinvert.models import stylegan2

    return stylegan2.tiny(0)


def test_synthetic_sample_depends_only_on_its_global_index(tiny_generator):
    syn = SyntheticFaces(tiny_generator, seed=11)
    dev = torch.device("cpu")
    alone = syn.sample([5], dev)
    batch = syn.sample([3, 5], dev)
    # z and noise are drawn from the index's own seed (exact); w and the image go through batched
    # matmuls/convolutions (float32 rounding)
    torch.testing.assert_close(batch.w_plus[1:], alone.w_plus, rtol=1e-5, atol=1e-5)
    for a, b in zip(batch.noise, alone.noise):
        torch.testing.assert_close(a[1:], b, rtol=0, atol=0)
    torch.testing.assert_close(batch.images[1:], alone.images, rtol=1e-5, atol=1e-5)
    assert not torch.equal(batch.images[0], batch.images[1])
    # rendered with its own noise maps: re-rendering with them reproduces the image
    with torch.no_grad():
        torch.testing.assert_close(tiny_generator(alone.w_plus, noise=alone.noise), alone.images, rtol=1e-5, atol=1e-5)
    # w+ is mapping(z) broadcast to every row, without truncation
    assert torch.equal(alone.w_plus[:, 0], alone.w_plus[:, -1])
    # a pool of 4 repeats every 4 indices; another seed gives other samples
    pool = SyntheticFaces(tiny_generator, seed=11, pool=4)
    torch.testing.assert_close(pool.sample([6], dev).w_plus, pool.sample([2], dev).w_plus, rtol=0, atol=0)
    assert not torch.equal(SyntheticFaces(tiny_generator, seed=12).sample([5], dev).w_plus, alone.w_plus)


def test_reconstruction_noise_is_keyed_by_index_and_kind(tiny_generator):
    from vidinvert.train.data import noise_shapes

    shapes = noise_shapes(tiny_generator)
    dev = torch.device("cpu")
    a = reconstruction_noise(shapes, 0, [4, 9], 1, dev)
    b = reconstruction_noise(shapes, 0, [9], 1, dev)
    c = reconstruction_noise(shapes, 0, [9], 2, dev)
    assert [tuple(t.shape) for t in a] == [(2,) + s for s in shapes]
    assert all(torch.equal(x[1:], y) for x, y in zip(a, b))
    assert not torch.equal(b[0], c[0])
