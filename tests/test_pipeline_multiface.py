"""Every face in a clip (issue 12): the video job with several face tracks, tiny random models.

Clips are generated (the astronaut's head pasted at several positions and sizes, moving; see
``tests/multi_face_clips.py``), encoded losslessly (ffv1, RGB) so the exact template detector
finds the faces in the decoded frames, and the outputs are compared exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.face_clips import make_face_clip
from tests.multi_face_clips import Person, TemplateDetector, render

pytest.importorskip("skimage.data")


def _encode(path, people, n):
    frames, truth = render(people, n)
    make_face_clip(path, n_frames=n, size=(320, 240), frame_fn=lambda i: frames[i][2], codec="ffv1", audio=False)
    return np.stack([f[2] for f in frames]), truth


def _decoded(path):
    from vidinvert.video import open_video

    fr = list(open_video(path))
    return np.stack([f.rgb for f in fr]), [f.pts for f in fr]


def _run(clip, out, tw, direction, people, *, select="all", chunk=8, resume=False, latents=None, workdir=False,
         sigma=1.0, embedder=None):
    from vidinvert.device import resolve_compute
    from vidinvert.edit.directions import EditSpec, load_direction
    from vidinvert.engine import Inverter
    from vidinvert.face.stage import FaceConfig
    from vidinvert.face.track import TrackConfig
    from vidinvert.pipeline.video import OutputSpec, VideoConfig, VideoJob, VideoRun
    from vidinvert.pipeline.workdir import WorkDir

    torch.manual_seed(0)
    inv = Inverter.from_files(tw["encoder"], tw["generator"], resolve_compute("cpu", "fp32"))
    d = load_direction(direction, inv.n_latent, inv.style_dim, name="smile")
    cfg = VideoConfig(strength=3.0, batch_size=3, chunk_frames=chunk, codec="ffv1", resume=resume,
                      latent_sigma=sigma, fine_mean=True, overwrite=True)
    job = VideoJob(source=clip, outputs=(OutputSpec("smile", out, EditSpec("smile", (d,), (1.0,))),), config=cfg,
                   face=FaceConfig(track=TrackConfig(select=select)), save_latents=latents)
    det = TemplateDetector([p.patch() for p in people])
    wd = WorkDir.open(job, inv) if workdir else None
    return VideoRun(inv, job, detector=det, workdir=wd, embedder=embedder)


# A (small, behind) walks right and crosses behind B (larger, in front, walking left); C (another
# size) leaves for 16 frames (beyond max_gap) and comes back on its path.
A = Person(48, lambda i: (10 + 7 * i, 120))
B = Person(72, lambda i: (220 - 6 * i, 110))
C = Person(56, lambda i: None if 8 <= i < 24 else (240, 8 + i))
N3 = 30


@pytest.fixture(scope="module")
def three(tmp_path_factory, tiny_weights):
    d = tmp_path_factory.mktemp("multi")
    clip = d / "three.mkv"
    src, truth = _encode(clip, [A, B, C], N3)
    return clip, src, truth


def _face_box(person: Person, i: int, grow: float):
    pos = person.path(i)
    if pos is None:
        return None
    s = person.size
    return (int(pos[0] - grow * s), int(pos[1] - grow * s), int(pos[0] + (1 + grow) * s), int(pos[1] + (1 + grow) * s))


def test_three_faces_all_edited_outside_untouched_tracks_kept(three, tmp_path, tiny_weights, direction):
    clip, src, truth = three
    out, lat_dir = tmp_path / "out.mkv", tmp_path / "lat"
    pytest.importorskip("dlib")
    from vidinvert.metrics.identity import DlibEmbedder

    rep = _run(clip, out, tiny_weights, direction, [A, B, C], latents=lat_dir, embedder=DlibEmbedder()).run()
    got, _ = _decoded(out)
    assert got.shape == src.shape
    people = [A, B, C]
    for i in range(N3):
        outside = np.ones(src.shape[1:3], bool)
        for k, p in enumerate(people):
            box = _face_box(p, i, 0.5)
            if box is not None:
                x0, y0, x1, y1 = box
                outside[max(0, y0):y1, max(0, x0):x1] = False
            if truth[i][k] is not None:  # fully visible: edited around its eyes and nose
                cx, cy = truth[i][k].astype(int)
                r = p.size // 6
                assert (got[i, cy - r:cy + r, cx - r:cx + r] != src[i, cy - r:cy + r, cx - r:cx + r]).any(), (i, k)
        assert np.array_equal(got[i][outside], src[i][outside]), i  # bit-identical outside all faces

    # saved latents: one row per (frame, track), sorted, track ids stable through the absence
    rows = {k: np.concatenate([np.load(p)[k] for p in sorted(lat_dir.glob("latents_*.npz"))])
            for k in ("index", "track", "quad")}
    order = np.lexsort((rows["track"], rows["index"]))
    assert np.array_equal(order, np.arange(len(order))) and rows["track"].dtype == np.int32
    side = np.linalg.norm(rows["quad"][:, 1] - rows["quad"][:, 0], axis=1)
    assert set(rows["track"].tolist()) == {0, 1, 2}
    med = {t: float(np.median(side[rows["track"] == t])) for t in range(3)}
    for t in range(3):  # a track never changes person: the people differ in size (48, 56, 72 px)
        st = side[rows["track"] == t]
        assert st.max() / st.min() < 1.08, (t, st.min(), st.max())
    ta, tc, tb = sorted(med, key=med.get)
    assert np.bincount(rows["track"])[[ta, tb]].tolist() == [N3, N3]  # A is bridged while B hides it
    c_rows = np.flatnonzero(rows["track"] == tc)
    assert rows["index"][c_rows].tolist() == list(range(8)) + list(range(24, N3))  # C left, came back, same id
    centre = rows["quad"][c_rows].mean(1)
    truth_c = np.stack([truth[i][2] for i in rows["index"][c_rows]])
    assert np.linalg.norm(centre - truth_c, axis=1).max() < 0.3 * C.size

    # the report: one entry per track, today's keys as frame-weighted means
    tracks = rep["tracks"]
    assert [t["track"] for t in tracks] == [0, 1, 2]
    for t in tracks:
        n = int((rows["track"] == t["track"]).sum())
        assert t["measured_frames"] == n == t["frames"]["edited"] and t["flicker"]["smile"] is not None
    assert rep["frames"]["edited"] == len(rows["index"]) and rep["frames"]["total"] == N3
    n = np.array([t["measured_frames"] for t in tracks], float)
    for key in ("smile", "inversion", "source"):
        vals = np.array([t["flicker"][key] for t in tracks])
        assert rep["flicker"][key] == pytest.approx(float((vals * n).sum() / n.sum()))
    # identity per track (eq. 9 within each track): B and C are always visible, the same face
    # (dlib: within 0.6 of the track's first frame); per-frame lists run track after track
    for t in (tb, tc):
        assert tracks[t]["identity_consistency"]["source"] == 1.0
    pf = rep["per_frame"]
    by_track = np.lexsort((rows["index"], rows["track"]))
    assert pf["track"] == rows["track"][by_track].tolist() and pf["index"] == rows["index"][by_track].tolist()
    assert len(pf["id_distance_smile"]) == len(rows["index"])
    ic = np.array([t["identity_consistency"]["smile"] for t in tracks])
    assert rep["identity_consistency"]["smile"] == pytest.approx(float((ic * n).sum() / n.sum()))


def test_one_face_clip_all_equals_largest(tmp_path, tiny_weights, direction):
    solo = Person(80, lambda i: (60 + 4 * i, 50 + i))
    clip = tmp_path / "one.mkv"
    _encode(clip, [solo], 12)
    outs = {}
    for sel in ("largest", "all"):
        out = tmp_path / f"{sel}.mkv"
        outs[sel] = (_run(clip, out, tiny_weights, direction, [solo], select=sel, chunk=5,
                          latents=tmp_path / f"lat_{sel}").run(), _decoded(out))
    (ra, (fa, pa)), (rl, (fl, pl)) = outs["all"], outs["largest"]
    assert np.array_equal(fa, fl) and pa == pl
    assert ra["flicker"] == rl["flicker"] and ra["frames"] == rl["frames"] and len(ra["tracks"]) == 1
    assert "tracks" not in ra["frames"]
    for p in sorted((tmp_path / "lat_all").glob("*.npz")):
        a, b = np.load(p), np.load(tmp_path / "lat_largest" / p.name)
        assert all(np.array_equal(a[k], b[k]) for k in a.files) and not a["track"].any()


def test_two_faces_resume_equals_uninterrupted(tmp_path, tiny_weights, direction, monkeypatch):
    from vidinvert.pipeline.video import VideoRun

    a = Person(56, lambda i: (20 + 5 * i, 100))
    b = Person(64, lambda i: None if 5 <= i < 9 else (200, 40 + 2 * i))  # a short absence: interpolated
    clip = tmp_path / "two.mkv"
    _encode(clip, [a, b], 14)
    ref_out = tmp_path / "ref.mkv"
    ref = _run(clip, ref_out, tiny_weights, direction, [a, b], chunk=4, latents=tmp_path / "lref").run()
    assert len(ref["tracks"]) == 2

    out = tmp_path / "resumed.mkv"
    original = VideoRun.render_chunk

    def flaky(self, chunk, latents):
        if chunk.number == 2:
            raise KeyboardInterrupt
        return original(self, chunk, latents)

    monkeypatch.setattr(VideoRun, "render_chunk", flaky)
    with pytest.raises(KeyboardInterrupt):
        _run(clip, out, tiny_weights, direction, [a, b], chunk=4, resume=True, workdir=True,
             latents=tmp_path / "lres").run()
    monkeypatch.setattr(VideoRun, "render_chunk", original)
    run = _run(clip, out, tiny_weights, direction, [a, b], chunk=4, resume=True, workdir=True,
               latents=tmp_path / "lres")
    assert run.workdir.done == {0, 1}
    rep = run.run()
    got, ref_frames = _decoded(out), _decoded(ref_out)
    assert np.array_equal(got[0], ref_frames[0]) and got[1] == ref_frames[1]
    for key in ("flicker", "identity_consistency"):
        assert rep[key] == pytest.approx(ref[key])
    for t, r in zip(rep["tracks"], ref["tracks"]):
        assert t["flicker"] == pytest.approx(r["flicker"]) and t["measured_frames"] == r["measured_frames"]
        assert (t["first_frame"], t["last_frame"]) == (r["first_frame"], r["last_frame"])
    for p in sorted((tmp_path / "lref").glob("*.npz")):
        x, y = np.load(p), np.load(tmp_path / "lres" / p.name)
        assert all(np.array_equal(x[k], y[k]) for k in x.files)


def test_cli_face_all_on_a_clip_reports_each_track(tmp_path, tiny_weights, direction):
    """``edit --face all`` end to end (dlib finds two faces); the table has a row per track and stream."""
    import json

    from rich.console import Console

    from tests.face_clips import face_frame
    from vidinvert.cli.app import main
    from vidinvert.cli.render import report_table

    clip = make_face_clip(tmp_path / "two.mp4", n_frames=5, size=(240, 144),
                          frame_fn=lambda i: face_frame(i, (240, 144), faces=((10, 20), (130, 24))))
    out, rep_path = tmp_path / "two.out.mkv", tmp_path / "r.json"
    assert main(["edit", str(clip), "--direction", str(direction), "--face", "all", "-o", str(out), "--codec", "ffv1",
                 "--report", str(rep_path), "--no-identity", "--encoder", str(tiny_weights["encoder"]),
                 "--generator", str(tiny_weights["generator"]), "--device", "cpu"]) == 0
    rep = json.loads(rep_path.read_text())
    assert [t["frames"]["edited"] for t in rep["tracks"]] == [5, 5] and rep["frames"]["edited"] == 10
    src, got = _decoded(clip)[0], _decoded(out)[0]
    assert (got[:, :, :120] != src[:, :, :120]).any() and (got[:, :, 120:] != src[:, :, 120:]).any()
    console = Console(record=True, width=160)
    console.print(report_table(rep))
    text = console.export_text()
    assert "0: smile" in text and "1: smile" in text and "1: inversion" in text
    assert all(h in text for h in ("TL-ID", "TG-ID", "warping error (- source)"))
    row = next(line for line in text.splitlines() if "0: smile" in line)  # its warping cell is a number
    w = rep["tracks"][0]["warping_error"]["smile"]
    shown = float(row.split("│")[-2].split()[0])  # the last column: "3.18e-04 (+2.50e-04)"
    assert w is not None and abs(shown - w) <= 0.005 * abs(w), (row, w)
