"""The image form of ``invert`` / ``edit`` on tiny random models (meaningless images, real plumbing)."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from vidinvert.cli.app import main
from vidinvert.convert import to_tensor
from vidinvert.edit.directions import EDIT_STEP
from vidinvert.models.fs_encoder import prepare_encoder_input


def _common(tw):
    return ["--encoder", str(tw["encoder"]), "--generator", str(tw["generator"]), "--device", "cpu", "--no-align"]


def test_invert_writes_reconstruction_and_latents(tmp_path, tiny_weights, astronaut_face):
    out, lat = tmp_path / "recon.png", tmp_path / "lat.npz"
    rc = main(["invert", str(astronaut_face), "-o", str(out), "--save-latents", str(lat), *_common(tiny_weights)])
    assert rc == 0
    recon = np.asarray(Image.open(out))
    assert recon.shape == (64, 64, 3) and recon.dtype == np.uint8
    z = np.load(lat)
    assert z["w"].shape == (1, 10, 64) and z["f"].shape == (1, 64, 16, 16)
    # w includes latent_avg: equals the encoder's offsets + latent_avg computed directly
    enc = tiny_weights["enc"]
    x = to_tensor(np.asarray(Image.open(astronaut_face).convert("RGB")))
    with torch.no_grad():
        w_delta, f = enc.forward_offsets(prepare_encoder_input(x))
    np.testing.assert_allclose(z["w"], (w_delta + enc.latent_avg).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(z["f"], f.numpy(), rtol=1e-5, atol=1e-5)
    assert (tmp_path / "recon.png").exists() and not list(tmp_path.glob(".*partial*"))


def test_edit_strength_zero_is_the_reconstruction(tmp_path, tiny_weights, astronaut_face):
    d = np.random.default_rng(0).standard_normal((64,)).astype(np.float32)
    np.save(tmp_path / "dir.npy", d)
    recon, e0, e2 = tmp_path / "r.png", tmp_path / "e0.png", tmp_path / "e2.png"
    assert main(["invert", str(astronaut_face), "-o", str(recon), *_common(tiny_weights)]) == 0
    assert main(["edit", str(astronaut_face), "--direction", str(tmp_path / "dir.npy"), "--strength", "0",
                 "-o", str(e0), *_common(tiny_weights)]) == 0
    lat = tmp_path / "e2.npz"
    assert main(["edit", str(astronaut_face), "--direction", str(tmp_path / "dir.npy"), "--strength", "2",
                 "-o", str(e2), "--save-latents", str(lat), *_common(tiny_weights)]) == 0
    a, b, c = (np.asarray(Image.open(p)) for p in (recon, e0, e2))
    assert np.array_equal(a, b)
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 0.5
    z = np.load(lat)
    unit = np.broadcast_to(d, (10, 64)) / np.linalg.norm(np.broadcast_to(d, (10, 64)))
    np.testing.assert_allclose(z["w_edit"][0, 0] - z["w"][0], EDIT_STEP * 2 * unit, atol=1e-4)


def test_several_edits_give_one_output_each(tmp_path, tiny_weights, astronaut_face):
    rng = np.random.default_rng(1)
    for n in ("smile", "age"):
        np.save(tmp_path / f"{n}.npy", rng.standard_normal((64,)).astype(np.float32))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    rc = main(["edit", str(astronaut_face), "--attr", "smile", "--attr", "age", "--weights-dir", str(tmp_path),
               "--out-dir", str(out_dir), *_common(tiny_weights)])
    assert rc == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["face.age.png", "face.smile.png"]


def test_bad_inputs_one_line_nonzero(tmp_path, tiny_weights, astronaut_face, capsys):
    cases = [
        ["invert", str(tmp_path / "missing.png"), "-o", str(tmp_path / "x.png")],
        ["edit", str(astronaut_face), "--attr", "nonexistent", "-o", str(tmp_path / "y.png")],
    ]
    for args in cases:
        rc = main([*args, *_common(tiny_weights)])
        err = capsys.readouterr().err.strip()
        assert rc != 0 and err.count("\n") == 0 and err.startswith("error:"), err
    existing = tmp_path / "exists.png"
    existing.write_bytes(b"keep")
    rc = main(["invert", str(astronaut_face), "-o", str(existing), *_common(tiny_weights)])
    assert rc != 0 and existing.read_bytes() == b"keep"
    assert "--overwrite" in capsys.readouterr().err
    rect = tmp_path / "rect.png"
    Image.fromarray(np.zeros((40, 64, 3), np.uint8)).save(rect)
    assert main(["invert", str(rect), "-o", str(tmp_path / "r.png"), *_common(tiny_weights)]) != 0
    assert "not a square" in capsys.readouterr().err


def test_subprocess_error_has_no_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "vidinvert", "invert", str(tmp_path / "nope.png"), "--no-align",
                        "--encoder", str(tmp_path / "e.pth"), "--generator", str(tmp_path / "g.pt")],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_version_and_doctor(capsys):
    from vidinvert import __version__

    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out
    assert main(["doctor", "--json"]) == 0
    import json

    rep = json.loads(capsys.readouterr().out)
    assert rep["torch"] == torch.__version__
    assert "fs-encoder" in rep["weights"] and rep["weights"]["fs-encoder"] is None
    assert "libx264 (encoder)" in rep["codecs"]


@pytest.mark.parametrize("cmd", [[], ["invert"], ["edit"], ["doctor"], ["weights"], ["info"]])
def test_help_on_every_command(cmd, capsys):
    assert main([*cmd, "--help"]) == 0
    assert "Usage" in capsys.readouterr().out


def test_invert_and_edit_share_every_option():
    """The two commands parse the same shared options with the same defaults; edit adds only the edit's."""
    import typer.main

    from vidinvert.cli.app import app
    from vidinvert.cli.jobs import VIDEO_OPTIONS

    group = typer.main.get_command(app)
    params = {name: {p.name: (tuple(p.opts), p.default) for p in group.commands[name].params}
              for name in ("invert", "edit")}
    extra = set(params["edit"]) - set(params["invert"])
    from vidinvert.pipeline.request import PANELS

    assert extra == set(PANELS["Edit"])  # attr, direction, strength, combine and the edit-shaping options
    assert all(params["edit"][k] == v for k, v in params["invert"].items())
    assert set(VIDEO_OPTIONS) <= set(params["invert"])  # every forwarded video option is parsed
    assert params["invert"]["codec"] == (("--codec",), "libx264")
