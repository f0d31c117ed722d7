"""``vidinvert eval`` end to end with the tiny models: a RAVDESS-like folder (one clip in both
modalities, one broken file), the output files, the metric wiring checked against scikit-image,
``--resume``, and a 2-process torchrun (gloo) run that must give the same summary."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.eval_fixtures import (
    astronaut_frames,
    make_ravdess_folder,
    save_random_alexnet,
    write_clip,
)
from vidinvert.cli.app import main

N_FRAMES = 4




def _env(home: Path) -> dict[str, str]:
    return {"VIDINVERT_HOME": str(home), "VIDINVERT_NO_USER_CACHE": "1"}


def _common_args(tiny_weights, weights_dir: Path) -> list[str]:
    return ["--encoder", str(tiny_weights["encoder"]), "--generator", str(tiny_weights["generator"]),
            "--weights-dir", str(weights_dir), "--device", "cpu"]


def _run_json(args: list[str]) -> tuple[int, dict | None]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(args)
    text = buf.getvalue()
    return rc, (json.loads(text) if rc == 0 and text.strip() else None)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_weights):
    """One single-process run of the whole command (shared by the tests below)."""
    root = tmp_path_factory.mktemp("eval_cli")
    files = make_ravdess_folder(root / "ravdess", n_frames=N_FRAMES)
    wdir = root / "weights"
    wdir.mkdir()
    save_random_alexnet(wdir / "alexnet-owt-7be5be79.pth")
    out = root / "out"
    with pytest.MonkeyPatch.context() as mp:
        for k, v in _env(root / "home").items():
            mp.setenv(k, v)
        rc, summary = _run_json(["eval", str(root / "ravdess"), "--out", str(out), "--json",
                                 *_common_args(tiny_weights, wdir)])
    assert rc == 0
    return {"root": root, "files": files, "weights": wdir, "out": out, "summary": summary}


def test_outputs_counts_and_modality_rule(evaluated):
    out, s, files = evaluated["out"], evaluated["summary"], evaluated["files"]
    for name in ("videos.csv", "summary.json", "table.md", "identity_consistency.png", "run.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert json.loads((out / "summary.json").read_text())["metrics"] == s["metrics"]

    c = s["counts"]
    assert (c["selected"], c["evaluated"], c["skipped"], c["unreadable"], c["no_face"]) == (3, 2, 1, 1, 0)
    assert c["frames_evaluated"] == 2 * N_FRAMES
    assert s["selection"]["files_found"] == 4 and s["selection"]["duplicates_dropped"] == 1
    assert [x["key"] for x in s["skipped"]] == ["Actor_02/02-02-04-01-01-02-02.mp4"]

    rows = _csv_rows(out / "videos.csv")
    # the clip held twice is evaluated once, from its video-only file; the other one falls back to audio-video
    assert set(rows) == {"Actor_01/02-01-03-01-01-01-01.mp4", "Actor_02/01-01-05-02-02-01-02.mp4",
                         "Actor_02/02-02-04-01-01-02-02.mp4"}
    assert rows["Actor_02/02-02-04-01-01-02-02.mp4"]["status"] == "unreadable"
    assert Path(rows["Actor_01/02-01-03-01-01-01-01.mp4"]["path"]).samefile(files["video_only"])
    assert len(list((out / "cache").glob("*.json"))) == 2  # finished videos only

    for m in ("ssim", "psnr", "mse", "lpips", "id", "ic_source", "ic_inversion"):
        assert s["metrics"][m]["n"] == 2, m
        per_video = [float(rows[k][m]) for k in rows if rows[k]["status"] == "ok"]
        assert s["metrics"][m]["mean"] == pytest.approx(np.mean(per_video), rel=1e-9)
    assert s["models"]["identity"] == "dlib-resnet128" and s["models"]["lpips"] == "lpips-alex-v0.1"
    # the source crops of one person are consistent
    assert s["metrics"]["ic_source"]["mean"] > 0.9
    table = (out / "table.md").read_text()
    assert "| Method | SSIM ↑ | PSNR ↑ | MSE ([-1,1]) ↓ | LPIPS ↓ | ID ↑ |" in table and "| tiny-encoder |" in table
    conv = s["conventions"]
    assert "[-1,1]" in conv["mse"] and "[0,1]" in conv["psnr"] and "lpips-alex" in conv["lpips"]
    assert conv["identity_network"] == "dlib-resnet128"
    # the temporal figures: warping errors of source and inversion; TL-ID / TG-ID need ArcFace
    for m in ("warp_source", "warp_inversion"):
        assert s["metrics"][m]["n"] == 2 and s["metrics"][m]["mean"] > 0, m
    assert "tl_id" not in s["metrics"] and "needs ArcFace" in conv["tl_id"]
    assert "| Temporal | TL-ID ↑ | TG-ID ↑ | Warping error, source ↓ | Warping error, inversion ↓ |" in table
    for key in ("Actor_01/02-01-03-01-01-01-01.mp4", "Actor_02/01-01-05-02-02-01-02.mp4"):
        assert (out / "figures" / f"{key}.png").stat().st_size > 0
        assert rows[key]["warp_inversion"] and float(rows[key]["warp_inversion"]) > 0
    run = json.loads((out / "run.json").read_text())
    assert run["command"] == "eval" and run["weights"]["lpips-alexnet"]["sha256"]


def test_per_frame_metrics_match_scikit_image_on_the_saved_crops(evaluated, tiny_weights):
    """Recompute one video's frames independently: crops and reconstructions as 8-bit images, SSIM and
    PSNR from scikit-image, MSE from numpy."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from vidinvert.convert import to_uint8
    from vidinvert.device import resolve_compute
    from vidinvert.engine import Inverter
    from vidinvert.face import FaceConfig, align_frames, warp_faces
    from vidinvert.video import open_video

    cache = next(p for p in (evaluated["out"] / "cache").glob("*.json") if "Actor_01" in p.name)
    per_frame = json.loads(cache.read_text())["result"]["per_frame"]
    inv = Inverter.from_files(tiny_weights["encoder"], tiny_weights["generator"], resolve_compute("cpu", "fp32"))
    aligned = [a for a in align_frames(open_video(evaluated["files"]["video_only"]), FaceConfig(detector="dlib"))]
    assert len(aligned) == N_FRAMES and all(a.quad is not None for a in aligned)
    crops = warp_faces([a.frame for a in aligned], np.stack([a.quad for a in aligned]), inv.size)
    src = to_uint8(crops).astype(np.float64) / 255
    rec = to_uint8(inv.synthesize(inv.invert(crops))).astype(np.float64) / 255
    for i in range(N_FRAMES):
        ref_ssim = structural_similarity(src[i], rec[i], gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False, data_range=1, channel_axis=2)
        assert per_frame["ssim"][i] == pytest.approx(ref_ssim, abs=1e-4)
        assert per_frame["psnr"][i] == pytest.approx(peak_signal_noise_ratio(src[i], rec[i], data_range=1), abs=1e-4)
        # the paper's MSE is on images in [-1,1]; PSNR on [0,1]: PSNR = 10 log10(4 / MSE) for every pair
        assert per_frame["mse"][i] == pytest.approx(np.mean(((src[i] * 2 - 1) - (rec[i] * 2 - 1)) ** 2), abs=1e-7)
        assert per_frame["psnr"][i] == pytest.approx(10 * np.log10(4 / per_frame["mse"][i]), abs=1e-6)


def test_resume_skips_finished_videos_and_an_old_folder_is_protected(evaluated, tiny_weights, capfd):
    root, out = evaluated["root"], evaluated["out"]
    args = ["eval", str(root / "ravdess"), "--out", str(out), *_common_args(tiny_weights, evaluated["weights"])]
    assert main(args) == 1
    assert "--resume" in capfd.readouterr().err
    rc, s = _run_json([*args, "--resume", "--json"])
    assert rc == 0
    assert s["timing"]["items_from_cache"] == 2
    assert s["metrics"] == evaluated["summary"]["metrics"] and s["counts"] == evaluated["summary"]["counts"]


REL_F32 = 1e-4  # float32 results of different reduction orders (thread counts)


def _csv_rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as fh:
        return {r["key"]: r for r in csv.DictReader(fh)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_torchrun_two_processes_give_the_same_summary(evaluated, tiny_weights):
    root = evaluated["root"]
    out2 = root / "out_torchrun"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
           "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
           "-m", "vidinvert", "eval", str(root / "ravdess"), "--out", str(out2),
           *_common_args(tiny_weights, evaluated["weights"])]
    env = {**os.environ, **_env(root / "home"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("| Method | SSIM") == 1  # only rank 0 reports
    s1, s2 = evaluated["summary"], json.loads((out2 / "summary.json").read_text())
    assert s2["timing"]["world_size"] == 2
    assert s2["counts"] == s1["counts"] and s2["selection"] == s1["selection"] and s2["skipped"] == s1["skipped"]
    assert s2["metrics"].keys() == s1["metrics"].keys()
    # Counts, selection and items must be equal exactly; the floating numbers only to what float32
    # supports: the two runs use different thread counts (the 1-process run the test's, each rank one),
    # so the networks' sums are reduced in a different order (measured: 5e-5 relative on an SSIM std).
    # A per-item value may move by about 1e-6 relative (more where an 8-bit rounding flips); the std
    # of two items is |a - b| / 2, so its error is set by the size of the values (the mean), not its own.
    rows1, rows2 = (_csv_rows(o / "videos.csv") for o in (evaluated["out"], out2))
    assert rows1.keys() == rows2.keys()
    for key, r1 in rows1.items():
        r2 = rows2[key]
        exact = ("status", "path", "frames", "evaluated", "detected", "interpolated", "passthrough")
        assert [r2[k] for k in exact] == [r1[k] for k in exact], key
        for m in s1["metrics"]:
            if r1["status"] == "ok":
                assert float(r2[m]) == pytest.approx(float(r1[m]), rel=REL_F32, abs=1e-7), (key, m)
    for m in s1["metrics"]:
        a, b = s1["metrics"][m], s2["metrics"][m]
        assert (b["n"], b["non_finite"]) == (a["n"], a["non_finite"]), m
        assert b["mean"] == pytest.approx(a["mean"], rel=REL_F32, abs=1e-7), m
        assert b["std"] == pytest.approx(a["std"], abs=REL_F32 * abs(a["mean"]) + 1e-7), m
    # each rank cached its own videos in the shared folder
    assert len(list((out2 / "cache").glob("*.json"))) == 2


def test_video_without_a_face_is_skipped_and_counted(tmp_path, tiny_weights):
    from vidinvert.device import resolve_compute
    from vidinvert.engine import Inverter
    from vidinvert.evaluate.datasets import MediaItem
    from vidinvert.evaluate.suite import MetricSuite
    from vidinvert.evaluate.video import VideoEvalConfig, evaluate_video
    from vidinvert.face import FaceConfig

    frames = [np.full((96, 96, 3), 40 + 20 * i, np.uint8) for i in range(3)]
    clip = write_clip(tmp_path / "wall.mp4", frames)
    inv = Inverter.from_files(tiny_weights["encoder"], tiny_weights["generator"], resolve_compute("cpu", "fp32"))
    suite = MetricSuite(lpips=None, identity=None)
    cfg = VideoEvalConfig(batch_size=2, face=FaceConfig(detector="dlib"))
    res = evaluate_video(MediaItem(clip, "wall.mp4"), inv, suite, cfg)
    assert (res.status, res.frames, res.evaluated, res.passthrough) == ("no-face", 3, 0, 3)
    # --max-frames limits what is read; a face clip is evaluated without an identity network
    face = write_clip(tmp_path / "face.mp4", astronaut_frames(4))
    res = evaluate_video(MediaItem(face, "face.mp4"), inv, suite, VideoEvalConfig(batch_size=2, max_frames=3,
                                                                                  face=cfg.face))
    assert (res.status, res.frames, res.evaluated) == ("ok", 3, 3)
    assert res.ic_source is None and "id" not in res.metrics and len(res.per_frame["ssim"]) == 3


def test_image_mode(tmp_path, tiny_weights, astronaut_face, capfd):
    from PIL import Image
    from skimage.metrics import structural_similarity

    from vidinvert.convert import to_tensor, to_uint8
    from vidinvert.device import resolve_compute
    from vidinvert.engine import Inverter
    from vidinvert.imagefile import read_image

    faces = tmp_path / "faces"
    faces.mkdir()
    img = read_image(astronaut_face)
    Image.fromarray(img).save(faces / "00000.png")
    Image.fromarray(img[:, ::-1]).resize((128, 128)).save(faces / "00001.png")  # resized to 64 with a notice
    Image.fromarray(img[:40]).save(faces / "00002.png")  # not square
    (faces / "00003.png").write_bytes(b"broken")
    out = tmp_path / "out"
    rc, s = _run_json(["eval", "--images", str(faces), "--out", str(out), "--json", "--limit", "4",
                       *_common_args(tiny_weights, tmp_path)])
    assert rc == 0
    err = capfd.readouterr().err
    assert "LPIPS is left out" in err and "resized" in err
    c = s["counts"]
    assert (s["mode"], c["selected"], c["evaluated"], c["unreadable"]) == ("image", 4, 2, 2)
    assert {"ssim", "psnr", "mse", "id"} <= set(s["metrics"]) and "lpips" not in s["metrics"]
    assert "ic_source" not in s["metrics"] and not (out / "identity_consistency.png").exists()
    assert "Table 1" in (out / "table.md").read_text()
    rows = _csv_rows(out / "images.csv")
    inv = Inverter.from_files(tiny_weights["encoder"], tiny_weights["generator"], resolve_compute("cpu", "fp32"))
    x = to_tensor(img)
    rec = to_uint8(inv.synthesize(inv.invert(x)))[0].astype(np.float64) / 255
    ref = structural_similarity(img / 255.0, rec, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                data_range=1, channel_axis=2)
    assert float(rows["00000.png"]["ssim"]) == pytest.approx(ref, abs=1e-4)
    assert torch.isfinite(torch.tensor(float(rows["00001.png"]["psnr"])))


def test_bad_invocations_are_one_line_errors(tmp_path, capfd):
    assert main(["eval"]) == 1
    assert "exactly one" in capfd.readouterr().err
    assert main(["eval", str(tmp_path / "missing"), "--device", "cpu"]) == 1
    assert "not found" in capfd.readouterr().err
    assert main(["eval", str(tmp_path), "--modality", "audio", "--device", "cpu"]) == 1
    assert "modality" in capfd.readouterr().err
