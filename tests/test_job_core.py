"""The job core: one typed request, one library call; inputs checked before any model loads;
every option honoured or refused; nothing lost or mixed (issues #10 and #17)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.face_clips import make_face_clip
from vidinvert.cli.app import main
from vidinvert.errors import VidinvertError
from vidinvert.pipeline.request import EditRequest, InvertRequest

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_face_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", n_frames=10)


def _models(tw):
    return ["--encoder", str(tw["encoder"]), "--generator", str(tw["generator"]), "--device", "cpu"]


# ------------------------------------------------------------------------------ one request, one call
def test_cli_defaults_are_the_request_defaults():
    """Every option of invert/edit has the default of the request field of the same name."""
    import typer.main

    from vidinvert.cli.app import app

    group = typer.main.get_command(app)
    for name, cls in (("invert", InvertRequest), ("edit", EditRequest)):
        defaults = cls.defaults()
        params = {p.name: p for p in group.commands[name].params}
        fields = set(defaults) - {"explicit", "inputs"}
        assert fields <= set(params), fields - set(params)
        for f in fields:
            got = params[f].default
            want = defaults[f]
            if isinstance(want, tuple) and not want:
                assert got in (None, (), []), f
            else:
                assert got == want, (name, f, got, want)


def test_library_call_equals_the_cli(tmp_path, tiny_weights, astronaut_face, direction):
    """run_edit(EditRequest) without the CLI writes the same bytes the command does."""
    from vidinvert import EditRequest as PublicRequest
    from vidinvert import run_edit

    a, b = tmp_path / "lib.png", tmp_path / "cli.png"
    req = PublicRequest(inputs=(str(astronaut_face),), output=a, no_align=True, direction=(direction,),
                        strength="2", encoder=str(tiny_weights["encoder"]), generator=str(tiny_weights["generator"]),
                        device="cpu")
    res = run_edit(req)
    assert res.exit_code == 0 and res.items[0].outputs == {"smile": a}
    assert main(["edit", str(astronaut_face), "--no-align", "--direction", str(direction), "--strength", "2",
                 "-o", str(b), *_models(tiny_weights)]) == 0
    assert a.read_bytes() == b.read_bytes()


def test_library_call_runs_a_clip_and_returns_its_report(tmp_path, tiny_weights, clip, direction):
    from vidinvert import run_edit

    out = tmp_path / "o.mkv"
    res = run_edit(EditRequest(inputs=(clip,), output=out, direction=(direction,), codec="ffv1",
                               encoder=str(tiny_weights["encoder"]), generator=str(tiny_weights["generator"]),
                               device="cpu", identity=False))
    item = res.items[0]
    assert item.ok and out.exists() and item.report["frames"]["total"] == 10
    assert json.loads((tmp_path / "o.run.json").read_text())["command"] == "edit"


# ------------------------------------------------------------------------------ inputs first
def test_all_bad_inputs_one_line_each_and_no_torch(tmp_path, direction):
    """A run whose inputs are all bad ends with one line per input, exit 1, without importing torch."""
    bad1, bad2 = tmp_path / "broken.mp4", tmp_path / "missing.mp4"
    bad1.write_bytes(b"not a video at all")
    code = ("import sys; from vidinvert.cli.app import main; rc = main(sys.argv[1:]); "
            "print('TORCH', 'torch' in sys.modules); sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code, "edit", str(bad1), str(bad2), "--direction", str(direction)],
                       capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert r.returncode == 1
    assert "TORCH False" in r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert any(str(bad1) in ln for ln in lines) and any(str(bad2) in ln for ln in lines)
    assert len(lines) == 3, lines  # one per input and the count
    assert "2 of 2 inputs failed" in lines[-1]


def test_bad_inputs_are_listed_first_and_the_rest_still_run(tmp_path, tiny_weights, clip, direction, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    rc = main(["edit", str(bad), str(clip), "--direction", str(direction), "--out-dir", str(tmp_path / "out"),
               "--codec", "ffv1", "--no-identity", *_models(tiny_weights)])
    assert rc == 1
    err = capsys.readouterr().err
    assert err.index(str(bad)) < err.index("1 of 2 inputs failed")
    assert (tmp_path / "out" / "clip.smile.mkv").exists() or (tmp_path / "out" / "clip.smile.mp4").exists()


def test_out_dir_is_created_but_a_file_is_refused(tmp_path, tiny_weights, astronaut_face, direction, capsys):
    out_dir = tmp_path / "new" / "deeper"
    assert main(["edit", str(astronaut_face), "--no-align", "--direction", str(direction), "--out-dir", str(out_dir),
                 *_models(tiny_weights)]) == 0
    assert (out_dir / "face.smile.png").exists()
    f = tmp_path / "afile"
    f.write_text("x")
    assert main(["edit", str(astronaut_face), "--no-align", "--direction", str(direction), "--out-dir", str(f),
                 *_models(tiny_weights)]) == 1
    assert "exists and is not a folder" in capsys.readouterr().err


def test_every_image_is_validated_before_anything_is_written(tmp_path, tiny_weights, astronaut_face, direction):
    """A non-square aligned image is reported before any output is written; the good one still runs."""
    from vidinvert import run_edit

    good = tmp_path / "a.png"
    good.write_bytes(astronaut_face.read_bytes())
    bad = tmp_path / "zbad.png"
    Image.fromarray(np.zeros((40, 64, 3), np.uint8)).save(bad)
    events = []

    def on_result(r):
        events.append((r.source.name, r.ok, (tmp_path / "a.smile.png").exists()))

    res = run_edit(EditRequest(inputs=(good, bad), no_align=True, direction=(direction,), device="cpu",
                               encoder=str(tiny_weights["encoder"]), generator=str(tiny_weights["generator"])),
                   on_result=on_result)
    assert events[0] == ("zbad.png", False, False)  # reported first, nothing written yet
    assert "not a square" in res.items[1].error and res.exit_code == 1
    assert res.items[0].ok and (tmp_path / "a.smile.png").exists()


@pytest.mark.parametrize("option", [
    ["--strength", "nan"], ["--strength", "0s:0,1s:inf"], ["--smooth-latents", "nan"], ["--max-gap", "nan"],
    ["--crop-sigma", "nan,4"], ["--crf", "nan"], ["--min-face", "inf"], ["--feature-keep", "nan"],
    ["--start", "nan"],
])
def test_non_finite_values_are_refused_before_any_work(tmp_path, clip, direction, option, capsys):
    rc = main(["edit", str(clip), "--direction", str(direction), *option, "--weights-dir", str(tmp_path)])
    assert rc == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "finite" in err or "invalid" in err
    assert "not found" not in err  # refused before the models are looked for


def test_request_refuses_nan_in_the_library_too(tmp_path):
    for kw in ({"smooth_latents": math.nan}, {"max_gap": math.inf}, {"crf": math.nan}):
        with pytest.raises(VidinvertError, match="finite"):
            InvertRequest(inputs=("x.mp4",), **kw).check()


# ------------------------------------------------------------------------------ options honoured or refused
@pytest.mark.parametrize("option, flag", [
    (["--side-by-side"], "--side-by-side"), (["--codec", "ffv1"], "--codec"), (["--paste", "full"], "--paste"),
    (["--start", "5"], "--start"), (["--paste", "delta"], "--paste"), (["--resume"], "--resume"),
])
def test_video_options_given_for_aligned_images_are_refused(tmp_path, tiny_weights, astronaut_face, direction,
                                                            option, flag, capsys):
    rc = main(["edit", str(astronaut_face), "--no-align", "--direction", str(direction), *option,
               "-o", str(tmp_path / "x.png"), *_models(tiny_weights)])
    assert rc == 1
    assert f"{flag} does not apply to aligned images" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_no_align_on_a_video_is_refused(tmp_path, clip, direction, capsys):
    assert main(["edit", str(clip), "--no-align", "--direction", str(direction)]) == 1
    assert "--no-align does not apply to videos" in capsys.readouterr().err


def test_report_for_aligned_images_gives_identity_to_the_source(tmp_path, tiny_weights, astronaut_face, direction):
    rep = tmp_path / "r.json"
    assert main(["edit", str(astronaut_face), "--no-align", "--direction", str(direction), "--report", str(rep),
                 "-o", str(tmp_path / "o.png"), *_models(tiny_weights)]) == 0
    data = json.loads(rep.read_text())
    ids = data["identity_to_source"]
    assert set(ids) == {"smile"} and 0.0 <= ids["smile"] <= 1.0
    assert data["identity_embedder"]


# ------------------------------------------------------------------------------ nothing lost, nothing mixed
def _latent_files(d):
    return {p.name: dict(np.load(p)) for p in sorted(d.glob("latents_*.npz"))}


def test_saved_latents_resumed_equal_uninterrupted_and_overwrite_leaves_no_stale_file(tmp_path, tiny_weights, clip,
                                                                                       direction, monkeypatch):
    from vidinvert.device import resolve_compute
    from vidinvert.edit.directions import EditSpec, load_direction
    from vidinvert.engine import Inverter
    from vidinvert.face.stage import FaceConfig
    from vidinvert.pipeline.video import OutputSpec, VideoConfig, VideoJob, VideoRun
    from vidinvert.pipeline.workdir import WorkDir

    inv = Inverter.from_files(tiny_weights["encoder"], tiny_weights["generator"], resolve_compute("cpu", "fp32"))
    d = load_direction(direction, inv.n_latent, inv.style_dim)

    def job(name, resume):
        cfg = VideoConfig(strength=2.0, batch_size=3, chunk_frames=4, codec="ffv1", resume=resume, overwrite=True)
        return VideoJob(source=clip, outputs=(OutputSpec("smile", tmp_path / f"{name}.mkv", EditSpec("smile", (d,), (1.0,))),),
                        config=cfg, face=FaceConfig(detector="dlib"), save_latents=tmp_path / f"lat_{name}")

    VideoRun(inv, job("ref", False)).run()
    ref = _latent_files(tmp_path / "lat_ref")
    assert len(ref) == 3 and sum(len(v["index"]) for v in ref.values()) == 10

    original, calls = VideoRun.render_chunk, {"n": 0}

    def dies_on_third(self, chunk, latents):
        calls["n"] += 1
        if calls["n"] == 3:
            raise VidinvertError("killed")
        return original(self, chunk, latents)

    monkeypatch.setattr(VideoRun, "render_chunk", dies_on_third)
    j = job("res", True)
    with pytest.raises(VidinvertError):
        VideoRun(inv, j, workdir=WorkDir.open(j, inv)).run()
    monkeypatch.setattr(VideoRun, "render_chunk", original)
    partial = _latent_files(tmp_path / "lat_res")
    assert 1 <= len(partial) < 3  # finished chunks' latents are on disk already
    VideoRun(inv, j, workdir=WorkDir.open(j, inv)).run()
    got = _latent_files(tmp_path / "lat_res")
    assert got.keys() == ref.keys()
    for name in ref:
        for key in ref[name]:
            np.testing.assert_array_equal(got[name][key], ref[name][key])

    stale = tmp_path / "lat_ref" / "latents_00099.npz"
    np.savez(stale, w=np.zeros(1))
    VideoRun(inv, job("ref", False)).run()
    assert not stale.exists() and _latent_files(tmp_path / "lat_ref").keys() == ref.keys()


def test_frames_are_written_through_a_temporary_name(tmp_path, monkeypatch):
    from vidinvert.pipeline import side_outputs

    seen = []
    real_save = Image.Image.save

    def spy(self, fp, *a, **k):
        seen.append(str(fp))
        return real_save(self, fp, *a, **k)

    monkeypatch.setattr(Image.Image, "save", spy)
    frames = {"smile": [np.full((4, 6, 3), 7, np.uint8), np.full((4, 6, 3), 9, np.uint8)]}
    side_outputs.write_frames(tmp_path, frames, [3, 4])
    assert sorted(p.name for p in (tmp_path / "smile").iterdir()) == ["000003.png", "000004.png"]
    assert seen and all(".partial-" in s for s in seen)
    assert np.asarray(Image.open(tmp_path / "smile" / "000004.png"))[0, 0, 0] == 9
