"""The benchmarks' stand-in detector (for GPU machines without dlib's models) agrees with dlib."""

from __future__ import annotations

import numpy as np

from benchmarks.oracle_faces import make_patch_oracle
from tests.face_clips import face_frame
from vidinvert.face.detect import DlibDetector
from vidinvert.video import open_video


def test_patch_oracle_matches_dlib_on_a_benchmark_clip(tmp_path):
    from benchmarks.bench_pipeline import make_clip

    clip = make_clip(tmp_path / "c.mp4", (640, 360), 3)  # decoded: compression noise at the edges
    frames = [f.rgb for f in open_video(clip)]
    oracle, dlib = make_patch_oracle(), DlibDetector()
    for rgb in frames:
        (a,), (b, *_) = oracle.detect([rgb])[0], dlib.detect([rgb])[0]
        size = b.box[2] - b.box[0]
        assert np.abs(a.landmarks68 - b.landmarks68).mean() < 0.03 * size  # a few px on a ~120 px face
        assert np.abs(a.box - b.box).max() < 0.15 * size  # dlib quantises its boxes to its pyramid


def test_patch_oracle_handles_a_cut_patch_and_an_empty_frame():
    oracle = make_patch_oracle()
    full = face_frame(0, (320, 240), face_px=120, faces=((100, 60),), drift=0)
    cut = face_frame(0, (320, 240), face_px=120, faces=((-30, 60),), drift=0)  # left third off-frame
    (a,), (b,) = oracle.detect([full])[0], oracle.detect([cut])[0]
    np.testing.assert_allclose(b.landmarks68 - a.landmarks68, np.array([[-130.0, 0.0]]).repeat(68, 0), atol=1e-9)
    assert oracle.detect([np.full((240, 320, 3), (90, 110, 130), np.uint8)]) == [[]]
