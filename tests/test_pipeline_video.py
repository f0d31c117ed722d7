"""End-to-end video runs with the tiny random models (meaningless faces, real plumbing).

Outputs use ffv1 in an RGB pixel format so decoded frames can be compared exactly.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from tests.container_fixtures import make_anamorphic
from tests.face_clips import face_frame, make_face_clip
from tests.video_fixtures import find_concealed_damage, make_corrupted, single_threaded_decoding
from vidinvert.cli.app import main


def _frames(path):
    """Decoded frames (uint8 RGB via vidinvert's reader) and their pts."""
    from vidinvert.video import open_video

    fr = list(open_video(path))
    return np.stack([f.rgb for f in fr]), [f.pts for f in fr], [f.time for f in fr]


def _audio_packets(path):
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return []
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return make_face_clip(d / "clip.mp4", n_frames=10)


def _models(tw):
    return ["--encoder", str(tw["encoder"]), "--generator", str(tw["generator"]), "--device", "cpu"]


def test_edit_keeps_frames_timestamps_audio_and_background(tmp_path, clip, tiny_weights, direction):
    out = tmp_path / "edited.mkv"
    rep_path = tmp_path / "report.json"
    rc = main(["edit", str(clip), "--direction", str(direction), "--strength", "3", "-o", str(out),
               "--codec", "ffv1", "--report", str(rep_path), *_models(tiny_weights)])
    assert rc == 0
    src, src_pts, src_t = _frames(clip)
    got, got_pts, got_t = _frames(out)
    assert got.shape == src.shape
    np.testing.assert_allclose(got_t, src_t, atol=1e-6)  # same timestamps (time bases may differ)
    assert _audio_packets(out) == _audio_packets(clip)  # audio copied byte for byte
    # background far from the face is bit-identical; the face changed
    assert np.array_equal(got[:, :, 150:], src[:, :, 150:])
    assert np.abs(got.astype(int) - src.astype(int)).sum() > 0
    rep = json.loads(rep_path.read_text())
    assert rep["frames"] == {"edited": 10, "detected": 10, "interpolated": 0, "passthrough": 0, "total": 10}
    assert rep["identity_embedder"] == "dlib-resnet128"
    assert 0 < rep["identity_consistency"]["source"] <= 1
    assert set(rep["identity_consistency"]) == {"source", "inversion", "smile"}
    assert rep["identity_measure"] == "share within 0.6 (dlib)"  # dlib: raw descriptors, the same person within 0.6
    assert set(rep["identity_distance"]) == {"source", "inversion", "smile"}
    assert len(rep["per_frame"]["id_distance_smile"]) == 10
    # TL-ID / TG-ID need ArcFace; the warping error does not; the picture lies beside the report
    assert rep["tl_id"] == {"inversion": None, "smile": None}
    assert rep["temporal_identity"]["reason"] == "needs ArcFace weights"
    assert all(v is not None and v > 0 for v in rep["warping_error"].values())
    assert rep["report_figure"] == str(tmp_path / "report.png") and (tmp_path / "report.png").stat().st_size > 0
    run = json.loads((tmp_path / "edited.run.json").read_text())
    assert run["weights"]["encoder"]["sha256"] and run["config"]["video"]["codec"] == "ffv1"
    # the temporal figures reach run.json as the report has them (per-frame series left out)
    assert run["report"]["warping_error"] == rep["warping_error"] and run["report"]["tl_id"] == rep["tl_id"]
    with av.open(str(out)) as c:
        assert "vidinvert" in c.metadata.get("comment", "").lower() or "vidinvert" in str(c.metadata).lower()


def test_strength_zero_delta_is_the_source_and_full_is_the_inversion(tmp_path, clip, tiny_weights, direction):
    d0, f0, inv = tmp_path / "d0.mkv", tmp_path / "f0.mkv", tmp_path / "inv.mkv"
    common = [*_models(tiny_weights), "--codec", "ffv1"]
    assert main(["edit", str(clip), "--direction", str(direction), "--strength", "0", "-o", str(d0), *common]) == 0
    assert main(["edit", str(clip), "--direction", str(direction), "--strength", "0", "--paste", "full",
                 "-o", str(f0), *common]) == 0
    assert main(["invert", str(clip), "-o", str(inv), *common]) == 0
    src = _frames(clip)[0]
    assert np.array_equal(_frames(d0)[0], src)
    inv_frames = _frames(inv)[0]
    assert np.array_equal(_frames(f0)[0], inv_frames)
    assert not np.array_equal(inv_frames, src)


def test_keyframed_strength_fades_in(tmp_path, clip, tiny_weights, direction):
    out = tmp_path / "fade.mkv"
    # strength 0 for frames 0..3, then ramping: frames before 4f equal the source (delta paste)
    assert main(["edit", str(clip), "--direction", str(direction), "--strength", "4f:0,9f:3", "-o", str(out),
                 "--codec", "ffv1", *_models(tiny_weights)]) == 0
    src, got = _frames(clip)[0], _frames(out)[0]
    assert all(np.array_equal(got[i], src[i]) for i in range(5))
    assert not np.array_equal(got[9], src[9])


def test_no_face_two_faces_rotation_vfr_odd_size(tmp_path, tiny_weights, direction):
    def gap_frame(i):  # frames 3..8 without a face: longer than --max-gap 0.1 s at 25 fps
        return face_frame(i) if not 3 <= i <= 8 else np.full((144, 176, 3), (90, 110, 130), np.uint8)

    clips = {
        "gap": (make_face_clip(tmp_path / "gap.mp4", n_frames=12, frame_fn=gap_frame), (12, 6)),
        "two": (make_face_clip(tmp_path / "two.mp4", n_frames=6, size=(240, 144),
                               frame_fn=lambda i: face_frame(i, (240, 144), faces=((10, 20), (130, 24)))), (6, 0)),
        "rot": (make_face_clip(tmp_path / "rot.mp4", n_frames=6, rotation=90), (6, 0)),
        "vfr": (make_face_clip(tmp_path / "vfr.mp4", pts=[0, 40, 70, 130, 150, 200, 260], time_base=Fraction(1, 1000)),
                (7, 0)),
        "odd": (make_face_clip(tmp_path / "odd.mp4", n_frames=6, size=(177, 143),
                               frame_fn=lambda i: face_frame(i, (177, 143)), codec="ffv1"), (6, 0)),
    }
    for name, (path, (total, passthrough)) in clips.items():
        out = tmp_path / f"{name}.out.mkv"
        rep = tmp_path / f"{name}.json"
        rc = main(["edit", str(path), "--direction", str(direction), "-o", str(out), "--codec", "ffv1",
                   "--max-gap", "0.1", "--report", str(rep), *_models(tiny_weights)])
        assert rc == 0, name
        r = json.loads(rep.read_text())
        assert r["frames"]["total"] == total and r["frames"]["passthrough"] == passthrough, (name, r["frames"])
        src, _, src_t = _frames(path)
        got, _, got_t = _frames(out)
        assert got.shape == src.shape, name  # displayed (upright) size kept, odd sizes too
        np.testing.assert_allclose(got_t, src_t, atol=1e-6)
        if name == "gap":  # frames of the long gap pass through untouched
            assert all(np.array_equal(got[i], src[i]) for i in range(4, 8))


def test_many_inputs_one_failing(tmp_path, clip, tiny_weights, direction, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    rc = main(["edit", str(clip), str(bad), "--direction", str(direction), "--out-dir", str(out_dir),
               "--codec", "ffv1", *_models(tiny_weights)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "bad.mp4" in err and "1 of 2 inputs failed" in err and "Traceback" not in err
    assert (out_dir / "clip.smile.mp4").exists() and not (out_dir / "bad.smile.mp4").exists()
    assert not [p for p in out_dir.iterdir() if "partial" in p.name]


def test_preview_estimates_the_whole_clip(tmp_path, clip, tiny_weights, direction, capsys):
    rc = main(["edit", str(clip), "--direction", str(direction), "--preview", "--end", "4f", "--out-dir",
               str(tmp_path), "--json", *_models(tiny_weights)])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    p = res["videos"][0]["preview"]
    assert p["frames_rendered"] == 4 and p["frames_total"] == 10 and p["estimated_seconds"] > 0
    assert (tmp_path / "clip.smile.preview.mp4").exists()
    assert len(_frames(tmp_path / "clip.smile.preview.mp4")[0]) == 4


def _job(clip, out, tw, direction, resume, chunk=4, codec="ffv1"):
    from vidinvert.device import resolve_compute
    from vidinvert.edit.directions import EditSpec, load_direction
    from vidinvert.engine import Inverter
    from vidinvert.face.stage import FaceConfig
    from vidinvert.pipeline.video import OutputSpec, VideoConfig, VideoJob

    inv = Inverter.from_files(tw["encoder"], tw["generator"], resolve_compute("cpu", "fp32"))
    d = load_direction(direction, inv.n_latent, inv.style_dim, name="smile")
    cfg = VideoConfig(strength=2.0, batch_size=3, chunk_frames=chunk, codec=codec, resume=resume,
                      latent_sigma=1.0, fine_mean=True)
    job = VideoJob(source=clip, outputs=(OutputSpec("smile", out, EditSpec("smile", (d,), (1.0,))),),
                   config=cfg, face=FaceConfig(detector="dlib"))
    return inv, job


def test_resume_after_interruption_equals_uninterrupted(tmp_path, clip, tiny_weights, direction, monkeypatch):
    from vidinvert.errors import VidinvertError
    from vidinvert.pipeline.video import VideoRun
    from vidinvert.pipeline.workdir import WorkDir

    ref_out = tmp_path / "ref.mkv"
    inv, job = _job(clip, ref_out, tiny_weights, direction, resume=False)
    ref_report = VideoRun(inv, job).run()

    out = tmp_path / "resumed.mkv"
    inv, job = _job(clip, out, tiny_weights, direction, resume=True)
    calls = {"n": 0}
    original = VideoRun.render_chunk

    def flaky(self, chunk, latents):
        calls["n"] += 1
        if chunk.number == 1:
            raise KeyboardInterrupt  # the user stops the run during the second chunk
        return original(self, chunk, latents)

    monkeypatch.setattr(VideoRun, "render_chunk", flaky)
    with pytest.raises(KeyboardInterrupt):
        VideoRun(inv, job, workdir=WorkDir.open(job, inv)).run()
    assert not out.exists()
    wd = WorkDir.open(job, inv)
    assert wd.done == {0}
    monkeypatch.setattr(VideoRun, "render_chunk", original)
    rendered = []
    monkeypatch.setattr(VideoRun, "render_chunk",
                        lambda self, c, lat: rendered.append(c.number) or original(self, c, lat))
    report = VideoRun(inv, job, workdir=wd).run()
    assert 0 not in rendered  # the finished chunk is not redone
    ref, ref_pts, ref_t = _frames(ref_out)
    got, got_pts, got_t = _frames(out)
    assert np.array_equal(got, ref) and got_pts == ref_pts
    assert report["identity_consistency"] == pytest.approx(ref_report["identity_consistency"])
    assert report["flicker"] == pytest.approx(ref_report["flicker"])
    # the warping error's state (the last frame's crops and flow input) is carried across chunks
    assert report["warping_error"] == pytest.approx(ref_report["warping_error"])
    assert report["warping_error_pairs"] == ref_report["warping_error_pairs"] == {"used": 9, "empty": 0}
    assert report["per_frame"]["warp_smile"] == pytest.approx(ref_report["per_frame"]["warp_smile"])

    # a different configuration refuses the work folder
    _, job2 = _job(clip, out, tiny_weights, direction, resume=True, chunk=5)
    with pytest.raises(VidinvertError, match="different configuration"):
        WorkDir.open(job2, inv)


@pytest.mark.slow
def test_full_size_official_layout_models_on_a_three_frame_clip(tmp_path, direction):
    """The 1024 models (random weights in the official layout) through the whole pipeline on CPU."""
    from vidinvert.models.fs_encoder import FeatureStyleEncoder
    from vidinvert.models.stylegan2 import Generator

    torch.manual_seed(0)
    gen = Generator(1024)
    enc = FeatureStyleEncoder()
    gp, ep = tmp_path / "stylegan2-ffhq-config-f.pt", tmp_path / "143_enc.pth"
    torch.save({"g_ema": gen.state_dict(), "latent_avg": torch.zeros(512)}, gp)
    torch.save(enc.state_dict(), ep)
    del gen, enc
    np.save(tmp_path / "w.npy", np.random.default_rng(0).standard_normal((512,)).astype(np.float32))
    clip = make_face_clip(tmp_path / "c.mp4", n_frames=3)
    out = tmp_path / "c.out.mp4"
    rep = tmp_path / "r.json"
    rc = main(["edit", str(clip), "--direction", str(tmp_path / "w.npy"), "-o", str(out), "--report", str(rep),
               "--encoder", str(ep), "--generator", str(gp), "--device", "cpu", "--batch-size", "3"])
    assert rc == 0
    r = json.loads(rep.read_text())
    assert r["frames"]["edited"] == 3
    assert len(_frames(out)[0]) == 3


def test_side_by_side_and_frames_dir(tmp_path, clip, tiny_weights, direction):
    out = tmp_path / "e.mkv"
    frames_dir = tmp_path / "frames"
    rc = main(["edit", str(clip), "--direction", str(direction), "-o", str(out), "--codec", "ffv1", "--side-by-side",
               "--frames-dir", str(frames_dir), *_models(tiny_weights)])
    assert rc == 0
    src = _frames(clip)[0]
    edited = _frames(out)[0]
    sbs = _frames(tmp_path / "e.side-by-side.mkv")[0]
    w = src.shape[2]
    assert sbs.shape == (len(src), src.shape[1], 3 * w, 3)
    assert np.array_equal(sbs[:, :, :w], src) and np.array_equal(sbs[:, :, 2 * w:], edited)
    assert not np.array_equal(sbs[:, :, w : 2 * w], src)  # the inversion, pasted in full
    pngs = sorted((frames_dir / "smile").glob("*.png"))
    assert len(pngs) == len(src)
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(pngs[3])), edited[3])


def test_flicker_never_spans_a_gap(tmp_path, tiny_weights, direction):
    """Frames 2..7 have no face: the source crops give 1 pair (0-1) + 3 pairs (8..11) = 4, whatever the
    batch and chunk boundaries (the gap here falls exactly between two batches of 2)."""
    def frame(i):
        return face_frame(i) if not 2 <= i <= 7 else np.full((144, 176, 3), (90, 110, 130), np.uint8)

    clip = make_face_clip(tmp_path / "g.mp4", n_frames=12, frame_fn=frame)
    rep = tmp_path / "r.json"
    assert main(["edit", str(clip), "--direction", str(direction), "-o", str(tmp_path / "o.mkv"), "--codec", "ffv1",
                 "--max-gap", "0.1", "--batch-size", "2", "--report", str(rep), *_models(tiny_weights)]) == 0
    r = json.loads(rep.read_text())
    assert r["frames"]["passthrough"] == 6
    assert r["flicker_pairs"] == 4


def test_concealed_damage_completes_and_is_in_the_report(tmp_path, clip, tiny_weights, capsys, monkeypatch):
    single_threaded_decoding(monkeypatch)
    bad, flagged = find_concealed_damage(clip, tmp_path / "damaged.mp4", packets=range(10))
    out, rep_path = tmp_path / "inv.mkv", tmp_path / "report.json"
    rc = main(["invert", str(bad), "-o", str(out), "--codec", "ffv1", "--report", str(rep_path),
               *_models(tiny_weights)])
    assert rc == 0
    rep = json.loads(rep_path.read_text())
    assert rep["frames"]["total"] == 10 and len(_frames(out)[0]) == 10
    assert rep["decode_damage"]["frames"] == len(flagged) >= 1
    assert f"damaged video data in {len(flagged)} frame(s)" in capsys.readouterr().err


@pytest.mark.parametrize("option, words", [
    (["--codec", "vp9"], "--codec vp9 is not one of"),
    (["--crf", "60"], "--crf 60 is out of range"),
    (["--preset", "quick"], "--preset quick is not one of"),
])
def test_bad_encoder_settings_fail_before_any_work(tmp_path, clip, tiny_weights, direction, capsys, option, words):
    out = tmp_path / "e.mp4"
    rc = main(["edit", str(clip), "--direction", str(direction), "-o", str(out), *option, *_models(tiny_weights)])
    err = capsys.readouterr().err
    assert rc == 1 and words in err
    assert "frames/s" not in err  # nothing rendered
    assert sorted(p.name for p in tmp_path.iterdir()) == ["smile.npy"]  # nothing written


def test_frames_dir_is_checked_before_rendering(tmp_path, clip, tiny_weights, direction, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    out = tmp_path / "e.mkv"
    base = ["edit", str(clip), "--direction", str(direction), "-o", str(out), "--codec", "ffv1",
            *_models(tiny_weights)]
    assert main([*base, "--frames-dir", str(a_file)]) == 1
    assert "is a file, not a folder" in capsys.readouterr().err
    old = tmp_path / "frames" / "smile"
    old.mkdir(parents=True)
    (old / "000000.png").write_bytes(b"earlier run")
    assert main([*base, "--frames-dir", str(tmp_path / "frames")]) == 1
    assert "already holds frames: pass --overwrite" in capsys.readouterr().err
    assert not out.exists() and (old / "000000.png").read_bytes() == b"earlier run"
    assert main([*base, "--frames-dir", str(tmp_path / "frames"), "--overwrite"]) == 0
    assert len(list(old.glob("*.png"))) == 10


def test_a_face_never_found_is_said(tmp_path, clip, tiny_weights, direction, capsys):
    rep = tmp_path / "r.json"
    rc = main(["edit", str(clip), "--direction", str(direction), "-o", str(tmp_path / "e.mkv"), "--codec", "ffv1",
               "--face", "3", "--report", str(rep), *_models(tiny_weights)])
    assert rc == 0
    assert json.loads(rep.read_text())["frames"]["edited"] == 0
    assert "no face 3 (counted from the left) was found in any frame" in capsys.readouterr().err


def test_no_identity_skips_the_embeddings(tmp_path, clip, tiny_weights, direction, monkeypatch):
    import vidinvert.metrics.identity as identity

    def refuse(*a, **k):
        raise AssertionError("no identity network may be built or run with --no-identity")

    monkeypatch.setattr(identity, "make_identity_embedder", refuse)
    monkeypatch.setattr(identity.DlibEmbedder, "embed", refuse)
    rep = tmp_path / "r.json"
    rc = main(["edit", str(clip), "--direction", str(direction), "-o", str(tmp_path / "e.mkv"), "--codec", "ffv1",
               "--no-identity", "--report", str(rep), *_models(tiny_weights)])
    assert rc == 0
    r = json.loads(rep.read_text())
    assert r["identity_embedder"] is None and set(r["identity_consistency"].values()) == {None}
    assert r["identity_to_source"] == {} and r["flicker"]["smile"] is not None
    assert r["temporal_identity"]["reason"] == "identity metrics off" and r["warping_error"]["smile"] is not None
    from vidinvert.pipeline.report_figure import report_figure

    panels = {ln.get_gid().split("/")[0] for ax in report_figure(r).axes for ln in ax.get_lines() if ln.get_gid()}
    assert panels == {"flicker", "warping", "strength"} and (tmp_path / "r.png").is_file()


def test_resumable_h264_run_keeps_vfr_timestamps(tmp_path, tiny_weights, direction):
    """--resume encodes each chunk as its own x264 segment (B-frames on) and joins them: frame
    count and timestamps equal the source's, also with frame gaps that change at the joins."""
    from vidinvert.pipeline.video import VideoRun
    from vidinvert.pipeline.workdir import WorkDir

    gaps = [10, 10, 10, 70, 70, 10, 10, 10, 60, 60, 10, 10, 10]  # dense before each 4-frame join, wide after
    pts = np.cumsum([0, *gaps]).tolist()
    src = make_face_clip(tmp_path / "vfr.mp4", pts=pts, time_base=Fraction(1, 1000))
    out = tmp_path / "resumable.mp4"
    inv, job = _job(src, out, tiny_weights, direction, resume=True, codec="libx264")
    VideoRun(inv, job, workdir=WorkDir.open(job, inv)).run()
    got, _, got_t = _frames(out)
    ref, _, src_t = _frames(src)
    assert len(got) == len(ref) == len(pts)
    np.testing.assert_allclose(got_t, src_t, atol=1e-6)
    with av.open(str(out)) as c:
        dts = [p.dts for p in c.demux(c.streams.video[0]) if p.size]
        assert all(b > a for a, b in zip(dts, dts[1:]))
        assert len(c.streams.audio) == 1


def test_output_problems_are_found_before_the_models_load(tmp_path, clip, direction, capsys):
    """No model file exists here: the error must be about the output, found first."""
    missing = ["--encoder", str(tmp_path / "nope.pth"), "--generator", str(tmp_path / "nope.pt"), "--device", "cpu"]
    existing = tmp_path / "clip.smile.mp4"
    existing.write_bytes(b"earlier result")
    rc = main(["edit", str(clip), "--direction", str(direction), "-o", str(existing), *missing])
    assert rc == 1 and "already exists: pass --overwrite" in capsys.readouterr().err
    rc = main(["edit", str(clip), "--direction", str(direction), "-o", str(tmp_path / "x.avi"), *missing])
    assert rc == 1 and "unsupported output type" in capsys.readouterr().err
    rc = main(["invert", str(clip), "-o", str(clip), *missing])
    assert rc == 1 and "refusing to write over the input" in capsys.readouterr().err
    assert existing.read_bytes() == b"earlier result"


def test_on_damage_conceal_finishes_a_damaged_clip_and_lists_the_frames(tmp_path, clip, tiny_weights, capsys):
    from vidinvert.video import open_video

    bad = make_corrupted(clip, tmp_path / "bad.mp4", at=0.5, n_bytes=2000)
    out, rep_path = tmp_path / "inv.mkv", tmp_path / "report.json"
    common = ["invert", str(bad), "-o", str(out), "--codec", "ffv1", *_models(tiny_weights)]
    assert main(common) == 1  # stop, the default: one line naming the file, the frame and the time
    err = capsys.readouterr().err
    assert re.search(r"bad\.mp4: corrupt or truncated video data at frame \d+ \(\d+\.\d{3} s\)", err)
    assert not out.exists()
    assert main([*common, "--on-damage", "conceal", "--report", str(rep_path)]) == 0
    rep = json.loads(rep_path.read_text())
    assert rep["frames"]["total"] == 10 and len(_frames(out)[0]) == 10  # the source's frame count
    reader = open_video(bad, on_damage="conceal")
    list(reader)
    want = [{"frame": d.index, "time": round(d.time, 6), "repair": d.repair} for d in reader.damaged]
    assert any(d["repair"] == "repeated" for d in want)
    assert rep["decode_damage"]["list"] == want and rep["decode_damage"]["frames"] == len(want)
    run = json.loads((tmp_path / "inv.run.json").read_text())
    assert run["report"]["decode_damage"]["list"] == want
    assert run["config"]["request"]["on_damage"] == "conceal"


def test_on_damage_is_refused_for_photos_and_a_folder_input_is_named(tmp_path, astronaut_face, tiny_weights, capsys):
    assert main(["invert", str(astronaut_face), "--on-damage", "conceal", *_models(tiny_weights)]) == 1
    assert "--on-damage does not apply to photos" in capsys.readouterr().err
    folder = tmp_path / "holiday.mp4"
    folder.mkdir()
    assert main(["invert", str(folder), *_models(tiny_weights)]) == 1
    err = capsys.readouterr().err
    assert f"{folder} is a folder" in err and "--out-dir" in err


def test_anamorphic_clip_keeps_its_displayed_size_and_the_edit_lands_on_the_face(tmp_path, tiny_weights, direction):
    """Frames stored 176 px wide, shown 192 px wide (pixel aspect 12:11, in the container only)."""
    import cv2

    from vidinvert.video import probe

    shown = [face_frame(i, size=(192, 144)) for i in range(6)]
    stored = [cv2.resize(f, (176, 144), interpolation=cv2.INTER_AREA) for f in shown]
    src = make_anamorphic(tmp_path / "wide.mkv", Fraction(12, 11), frames=stored)
    out, rep_path = tmp_path / "out.mkv", tmp_path / "r.json"
    assert main(["edit", str(src), "--direction", str(direction), "--strength", "4", "-o", str(out), "--codec", "ffv1",
                 "--report", str(rep_path), *_models(tiny_weights)]) == 0
    info = probe(out)
    assert (info.width, info.height, info.display_width, info.display_height) == (176, 144, 192, 144)
    assert json.loads(rep_path.read_text())["frames"]["detected"] == 6
    got, _, _ = _frames(out)
    changed = np.flatnonzero(np.abs(got.astype(int) - np.stack(stored).astype(int)).max(axis=(0, 1, 3)) > 2)
    display_cols = (changed + 0.5) * 192 / 176 - 0.5
    # the face patch spans x 40..136 (+ 2.5 px drift) on screen; the edit stays inside it
    assert changed.size and display_cols.min() >= 40 - 4 and display_cols.max() <= 136 + 2.5 + 4
