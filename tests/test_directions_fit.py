"""``vidinvert directions fit``: an InterFaceGAN SVM normal recovers a known hyperplane.

Synthetic latents lie near a random 24-dimensional subspace of W+ (as encoder latents lie near a
low-dimensional manifold; isotropic 9216-d latents would need ~10^5 samples), labels are the side
of a known hyperplane inside it; the fitted unit normal must have cosine > 0.95 with the true
one, in W+ (1, L*D) and in W (1, D) form.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

from vidinvert.edit.fit import LatentStore, fit_direction, fit_from_files, read_labels
from vidinvert.errors import VidinvertError

L, D, K, N = 18, 512, 24, 600


@pytest.fixture
def main():
    """``vidinvert.cli.app.main`` with the ``directions`` group registered."""
    from vidinvert.cli import app as cli

    if not any(g.name == "directions" for g in cli.app.registered_groups):
        from vidinvert.cli import train_cmd

        train_cmd.register(cli.app)
    return cli.main


def _subspace_latents(rng, n=N):
    basis, _ = np.linalg.qr(rng.standard_normal((L * D, K)))  # orthonormal [9216, K]
    coords = rng.standard_normal((n, K))
    # off-subspace noise of norm ~0.1 against a signal of norm ~5 (at 10x this noise and C=1 the
    # SVM fits the noise: cosine 0.71; --svm-c 0.01 then gives 0.97)
    w = coords @ basis.T + 0.001 * rng.standard_normal((n, L * D))
    return w.reshape(n, L, D).astype(np.float32), basis


def _cos(a, b):
    a, b = np.ravel(a), np.ravel(b)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_wplus_direction_recovers_known_hyperplane():
    rng = np.random.default_rng(0)
    w, basis = _subspace_latents(rng)
    normal = basis @ rng.standard_normal(K)
    normal /= np.linalg.norm(normal)
    labels = (w.reshape(N, -1) @ normal > 0.1).astype(int)
    res = fit_direction(w, labels, "wplus")
    assert res.direction.shape == (1, L * D) and res.direction.dtype == np.float32
    assert abs(np.linalg.norm(res.direction) - 1) < 1e-5
    assert _cos(res.direction, normal) > 0.95  # sign included: points towards label 1
    assert res.accuracy > 0.97


def test_w_direction_recovers_known_hyperplane_on_row_means():
    rng = np.random.default_rng(1)
    # W-space latents: one 512-d w per sample (low-dimensional), rows differ by small offsets.
    basis, _ = np.linalg.qr(rng.standard_normal((D, K)))
    w = rng.standard_normal((N, K)) @ basis.T
    w_plus = w[:, None, :] + 0.02 * rng.standard_normal((N, L, D))
    normal = basis @ rng.standard_normal(K)
    normal /= np.linalg.norm(normal)
    labels = (w @ normal > -0.2).astype(int)
    res = fit_direction(w_plus.astype(np.float32), labels, "w")
    assert res.direction.shape == (1, D)
    assert _cos(res.direction, normal) > 0.95


def _write_chunks(tmp_path, w):
    """Two chunk files with frame indices (as the video pipeline writes) + one plain file."""
    n = len(w)
    idx = np.arange(n) + 100
    np.savez(tmp_path / "clip.000.npz", w=w[: n // 2], index=idx[: n // 2], time=idx[: n // 2] / 25.0)
    np.savez(tmp_path / "clip.001.npz", w=w[n // 2 :], index=idx[n // 2 :], time=idx[n // 2 :] / 25.0)
    return idx


def test_fit_from_chunked_files_and_csv_via_cli(tmp_path, main):
    rng = np.random.default_rng(2)
    w, basis = _subspace_latents(rng, n=400)
    normal = basis @ rng.standard_normal(K)
    normal /= np.linalg.norm(normal)
    side = (w.reshape(len(w), -1) @ normal > 0).astype(int)
    chunks = tmp_path / "chunks"
    chunks.mkdir()
    idx = _write_chunks(chunks, w)
    # a second "clip" as a single file without an index (frames = rows), labelled in reverse order
    np.savez(tmp_path / "other.npz", w=w[:50])
    labels = tmp_path / "labels.csv"
    with labels.open("w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["latent_file", "frame_index", "label"])
        for i in range(len(w)):
            wr.writerow(["chunks", int(idx[i]), "true" if side[i] else "false"])
        for i in reversed(range(50)):
            wr.writerow(["other.npz", i, side[i]])
    out = tmp_path / "dir.npy"
    code = main(["directions", "fit", str(chunks), str(tmp_path / "other.npz"), "--labels", str(labels),
                 "--out", str(out)])
    assert code == 0
    d = np.load(out)
    assert d.shape == (1, L * D) and d.dtype == np.float32
    assert _cos(d, normal) > 0.95
    # the library path gives the same direction
    res = fit_from_files([chunks, tmp_path / "other.npz"], labels, "wplus")
    assert np.allclose(res.direction, d)
    # refuses to overwrite without --overwrite; W form works on the same files
    assert main(["directions", "fit", str(chunks), "--labels", str(labels), "--out", str(out)]) != 0
    out_w = tmp_path / "dir_w.npy"
    only_chunks = tmp_path / "labels_chunks.csv"
    only_chunks.write_text("\n".join(labels.read_text().splitlines()[: len(w) + 1]) + "\n")
    assert main(["directions", "fit", str(chunks), "--labels", str(only_chunks), "--out", str(out_w),
                 "--space", "w"]) == 0
    assert np.load(out_w).shape == (1, D)


def test_errors_are_clear(tmp_path):
    rng = np.random.default_rng(3)
    w = rng.standard_normal((10, 2, 4)).astype(np.float32)
    np.savez(tmp_path / "a.npz", w=w)
    bad = tmp_path / "bad.csv"
    bad.write_text("file,frame,label\na.npz,0,1\n")
    with pytest.raises(VidinvertError, match="latent_file, frame_index, label"):
        read_labels(bad)
    one_class = tmp_path / "one.csv"
    one_class.write_text("latent_file,frame_index,label\na.npz,0,1\na.npz,1,1\n")
    with pytest.raises(VidinvertError, match="both classes"):
        fit_from_files([tmp_path / "a.npz"], one_class)
    missing = tmp_path / "missing.csv"
    missing.write_text("latent_file,frame_index,label\nb.npz,0,1\n")
    with pytest.raises(VidinvertError, match="'b.npz'"):
        fit_from_files([tmp_path / "a.npz"], missing)
    no_frame = tmp_path / "noframe.csv"
    no_frame.write_text("latent_file,frame_index,label\na.npz,99,1\n")
    with pytest.raises(VidinvertError, match="no frame 99"):
        fit_from_files([tmp_path / "a.npz"], no_frame)
    np.savez(tmp_path / "nokey.npz", x=w)
    with pytest.raises(VidinvertError, match="no 'w' array"):
        LatentStore([tmp_path / "nokey.npz"])
