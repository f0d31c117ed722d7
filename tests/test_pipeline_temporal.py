"""TL-ID / TG-ID, the warping error and the report picture through the real video job (tiny models).

TL-ID / TG-ID need cosine embeddings (ArcFace, whose weights cannot be had here): a fixed random
projection of the crop stands in for the network, the metric itself is the real one and is checked
against the direct loop on the embeddings the run kept."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.face_clips import face_frame, make_face_clip
from tests.temporal_reference import direct
from vidinvert.cli.app import main


class ProjectionEmbedder:
    """Unit embeddings ``[B,32]`` of crops ``[B,3,S,S]``: a seeded projection of the 8x8-pooled crop."""

    name = "projection-test"
    measure = "cosine"

    def __init__(self) -> None:
        self.w = torch.randn(3 * 64, 32, generator=torch.Generator().manual_seed(0))

    def embed(self, faces: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(faces.float().cpu(), 8).flatten(1)
        return F.normalize((x + 1.0) @ self.w, dim=1)


def _frame(i: int) -> np.ndarray:
    """No face at frames 4..6 (a gap with --max-gap 0.05 s: two runs)."""
    return face_frame(i) if not 4 <= i <= 6 else np.full((144, 176, 3), (90, 110, 130), np.uint8)


def test_video_run_feeds_the_paste_masks_and_scores_per_run(tmp_path, tiny_weights, direction, monkeypatch):
    from vidinvert.device import resolve_compute
    from vidinvert.edit.directions import EditSpec, load_direction
    from vidinvert.engine import Inverter
    from vidinvert.face import masks as face_masks
    from vidinvert.face.smooth import SmoothConfig
    from vidinvert.face.stage import FaceConfig
    from vidinvert.pipeline.state import TrackState
    from vidinvert.pipeline.video import OutputSpec, VideoConfig, VideoJob, VideoRun

    clip = make_face_clip(tmp_path / "g.mp4", n_frames=11, frame_fn=_frame)
    inv = Inverter.from_files(tiny_weights["encoder"], tiny_weights["generator"], resolve_compute("cpu", "fp32"))
    d = load_direction(direction, inv.n_latent, inv.style_dim, name="smile")
    job = VideoJob(source=clip, outputs=(OutputSpec("smile", tmp_path / "o.mkv", EditSpec("smile", (d,), (1.0,))),),
                   config=VideoConfig(strength=2.0, batch_size=3, chunk_frames=4, codec="ffv1"),
                   face=FaceConfig(detector="dlib", smooth=SmoothConfig(max_gap=0.05)))
    masks_made, masks_fed = [], []
    outline = face_masks.outline_masks
    monkeypatch.setattr(face_masks, "outline_masks", lambda *a, **k: masks_made.append(1) or outline(*a, **k))
    feed = TrackState.feed
    monkeypatch.setattr(TrackState, "feed", lambda self, c, e, fr, mask, **k: masks_fed.append(mask) or
                        feed(self, c, e, fr, mask, **k))
    run = VideoRun(inv, job, embedder=ProjectionEmbedder())
    rep = run.run()

    assert rep["frames"]["passthrough"] == 3 and rep["frames"]["edited"] == 8
    # the warping error's valid set is the paste's own mask: one mask per batch, none made for the metrics
    assert all(m is not None and m.shape[1:] == (1, 256, 256) for m in masks_fed)
    assert len(masks_made) == 4  # batches: frames 0-2, 3, 7-9, 10 (chunks of 4, batches of 3)
    st = run.state.track(0)
    src = st.source.matrix()
    runs = [0] * 4 + [1] * 4
    for name in ("inversion", "smile"):
        out = st.edits[name].matrix() if name != "inversion" else st.inversion.matrix()
        tl, tg, (tl_used, tl_skip), (tg_used, tg_skip) = direct(src, out, runs)
        assert rep["tl_id"][name] == pytest.approx(tl, rel=1e-6)
        assert rep["tg_id"][name] == pytest.approx(tg, rel=1e-6)
    ti = rep["temporal_identity"]
    assert ti["reason"] is None and ti["tl_pairs"]["total"] == 6 and ti["tg_pairs"]["total"] == 12
    assert ti["tl_pairs"]["used"] == tl_used and ti["tg_pairs"]["skipped"] == tg_skip
    assert rep["warping_error_pairs"]["used"] + rep["warping_error_pairs"]["empty"] == 6  # no pair spans the gap
    assert set(rep["warping_error"]) == {"source", "inversion", "smile"}
    pf = rep["per_frame"]
    assert pf["index"] == [0, 1, 2, 3, 7, 8, 9, 10] and pf["warp_smile"][4] is None
    assert rep["clip"] == {"first_frame": 0, "start": 0.0, "last_frame": 10, "end": 0.4}


@pytest.fixture()
def keep_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_corpus_mirrors_the_picture_for_clips_not_photos_and_records_the_figures(tmp_path, tiny_weights, direction,
                                                                                 monkeypatch, keep_threads):
    from PIL import Image

    from vidinvert.pipeline import manifest as mf

    monkeypatch.setenv("VIDINVERT_CPU_THREADS", "2")
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    make_face_clip(corpus / "sub" / "clip.mkv", n_frames=4, codec="ffv1")
    Image.fromarray(face_frame(0)).save(corpus / "photo.png")
    out, reports = tmp_path / "out", tmp_path / "reports"
    rc = main(["edit", str(corpus), "--out-dir", str(out), "--report", str(reports), "--direction", str(direction),
               "--no-identity", "--codec", "ffv1", "--encoder", str(tiny_weights["encoder"]),
               "--generator", str(tiny_weights["generator"]), "--device", "cpu"])
    assert rc == 0
    clip_rep = reports / "sub" / "clip.report.json"
    assert (reports / "sub" / "clip.report.png").stat().st_size > 0
    assert (reports / "photo.report.json").is_file() and not (reports / "photo.report.png").exists()
    rep = json.loads(clip_rep.read_text())
    assert rep["report_figure"] == str(reports / "sub" / "clip.report.png")
    recs = {r["input"]: r for r in mf.read_records(out / mf.MANIFEST)}
    clip = recs["sub/clip.mkv"]
    assert clip["warping_error"] == pytest.approx(rep["warping_error"]["smile"])
    assert clip["tl_id"] is None and clip["tg_id"] is None
    assert clip["temporal"]["reason"] == "identity metrics off"
    assert set(clip["temporal"]["warping_error"]) == {"source", "inversion", "smile"}
    assert not {"tl_id", "warping_error", "temporal"} & set(recs["photo.png"])
    summary = json.loads((out / mf.SUMMARY).read_text())
    assert summary["warping_error_mean"] == pytest.approx(clip["warping_error"]) and summary["tl_id_mean"] is None
