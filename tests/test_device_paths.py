"""The compute-device paths end to end with bf16 autocast, the way users run vidinvert on a GPU.

They run on CUDA when a GPU is present (a lent GPU machine: see docs/benchmarks.md, "Running the
GPU figures and tests") and on the CPU otherwise (CI), where bf16 autocast exercises the same
code; ``VIDINVERT_TEST_DEVICE`` forces one. They need neither dlib nor real weights: faces are
found by the benchmarks' patch oracle, and the identity and LPIPS networks hold random weights.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from tests.face_clips import make_face_clip

DEVICE = os.environ.get("VIDINVERT_TEST_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
pytestmark = pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(),
                                reason="VIDINVERT_TEST_DEVICE asks for CUDA but no GPU is visible")


@pytest.fixture()
def weights_dir(tmp_path):
    """Random ArcFace IResNet-50 and LPIPS AlexNet in their official file layouts."""
    from tests.eval_fixtures import save_random_alexnet
    from vidinvert.models.iresnet import iresnet50

    d = tmp_path / "weights"
    d.mkdir()
    torch.save(iresnet50().state_dict(), d / "backbone.pth")
    save_random_alexnet(d / "alexnet-owt-7be5be79.pth")
    return d


@pytest.fixture()
def oracle_faces(monkeypatch):
    import vidinvert.face.stage as stage
    from benchmarks.oracle_faces import make_patch_oracle

    monkeypatch.setattr(stage, "make_detector", lambda *a, **k: make_patch_oracle())


def _models(tw):
    return ["--encoder", str(tw["encoder"]), "--generator", str(tw["generator"])]


def test_inverter_in_bf16_on_the_device_matches_fp32_on_the_cpu(tiny_weights, astronaut_face):
    from vidinvert.convert import to_tensor
    from vidinvert.device import resolve_compute
    from vidinvert.engine import Inverter
    from vidinvert.imagefile import read_image

    x = to_tensor(read_image(astronaut_face))
    ref = Inverter.from_files(tiny_weights["encoder"], tiny_weights["generator"], resolve_compute("cpu", "fp32"))
    dev = Inverter.from_files(tiny_weights["encoder"], tiny_weights["generator"], resolve_compute(DEVICE, "bf16"))
    assert dev.compute.device.type == torch.device(DEVICE).type and dev.compute.dtype == torch.bfloat16
    d = torch.randn(ref.n_latent, ref.style_dim)
    outs = []
    for inv in (ref, dev):
        lat = inv.invert(x)
        assert lat.w.dtype == lat.f.dtype == torch.float32  # latents stay float32 under autocast
        edited = inv.edit(lat, d, torch.tensor([1.5]))
        outs.append([t.float().cpu() for t in (lat.w, lat.f, edited.f, inv.synthesize(edited))])
    for a, b in zip(*outs):
        rel = float((a - b).norm() / a.norm())
        assert rel < 5e-2, rel  # bf16 has 8 bits of mantissa


def test_video_edit_on_the_device_with_every_output(tmp_path, tiny_weights, weights_dir, oracle_faces):
    from vidinvert.cli.app import main
    from vidinvert.video import open_video

    clip = make_face_clip(tmp_path / "clip.mp4", n_frames=12)
    direction = tmp_path / "smile.npy"
    np.save(direction, np.random.default_rng(0).standard_normal(64).astype(np.float32))
    outs = {}
    for device, dtype in (("cpu", "fp32"), (DEVICE, "bf16")):
        out, rep, lat = (tmp_path / f"{device}-{dtype}{s}" for s in (".mkv", ".json", "-latents"))
        rc = main(["edit", str(clip), "--direction", str(direction), "-o", str(out), "--codec", "ffv1",
                   "--device", device, "--dtype", dtype, "--weights-dir", str(weights_dir), "--report", str(rep),
                   "--save-latents", str(lat), "--smooth-latents", "1", "--fine-mean", "--side-by-side",
                   *_models(tiny_weights)])
        assert rc == 0, (device, dtype)
        r = json.loads(rep.read_text())
        assert r["identity_embedder"].startswith("arcface") and r["frames"]["edited"] == 12
        assert r["identity_consistency"]["smile"] is not None
        assert r["dtype_reason"] == f"--dtype {dtype}"  # the precision and why, in the report and run.json
        run = json.loads(out.with_name(out.stem + ".run.json").read_text())
        assert run["compute"] == {"device": r["device"], "dtype": dtype, "dtype_reason": f"--dtype {dtype}"}
        z = np.load(next(lat.glob("*.npz")))
        assert z["w"].shape == (12, 10, 64) and z["w"].dtype == np.float16
        outs[device, dtype] = np.stack([f.rgb for f in open_video(out)])
    a, b = outs.values()
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    assert 10 * np.log10(255 ** 2 / max(mse, 1e-12)) > 30  # the same edit, up to bf16 rounding


def test_eval_images_on_the_device(tmp_path, tiny_weights, weights_dir, astronaut_face):
    from PIL import Image

    from vidinvert.cli.app import main
    from vidinvert.imagefile import read_image

    faces = tmp_path / "faces"
    faces.mkdir()
    img = read_image(astronaut_face)
    for i in range(3):
        Image.fromarray(np.roll(img, 2 * i, axis=1)).save(faces / f"{i:05d}.png")
    out = tmp_path / "eval"
    rc = main(["eval", "--images", str(faces), "--out", str(out), "--device", DEVICE, "--dtype", "bf16",
               "--weights-dir", str(weights_dir), *_models(tiny_weights)])
    assert rc == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["counts"]["evaluated"] == 3
    for m in ("ssim", "psnr", "mse", "lpips", "id"):
        assert s["metrics"][m]["mean"] is not None, m


def test_training_steps_on_the_device(tmp_path):
    from tests.conftest import ROOT
    from vidinvert.train.config import load_config
    from vidinvert.train.loop import train

    cfg = load_config(ROOT / "configs" / "tiny.yaml",
                      [f"device={DEVICE}", "dtype=bf16", "data.batch_real=0", "data.batch_synthetic=2",
                       "schedule.iterations=3", "schedule.checkpoint_every=3", "log.val_every=3"])
    summary = train(cfg, tmp_path / "run")
    assert summary["iteration"] == 3 and summary["finished"]
    assert summary["losses"] and all(np.isfinite(v) for v in summary["losses"].values())
    assert (tmp_path / "run" / "encoder.pth").is_file()
