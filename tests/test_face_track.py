"""The streaming face stage on a synthetic clip: gaps, a second face, counts, selection."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data as skimage_data

from vidinvert.errors import VidinvertError
from vidinvert.face import FaceConfig, TrackConfig, align_frames, parse_face_select
from vidinvert.face.detect import DlibDetector

H, W, FPS = 300, 400, 25.0


@pytest.fixture(scope="module")
def patches():
    img = skimage_data.astronaut()
    patch = img[30:230, 120:330]                   # face ~87 px wide in a 200x210 patch
    a = cv2.resize(patch, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_AREA)      # face ~70 px
    b = cv2.resize(patch[:, ::-1], None, fx=1.05, fy=1.05, interpolation=cv2.INTER_AREA)  # mirrored, larger
    rng = np.random.default_rng(0)
    bg = cv2.resize((rng.random((30, 40, 3)) * 120 + 60).astype(np.uint8), (W, H), interpolation=cv2.INTER_CUBIC)
    return a, b, bg


def _paste(frame, patch, x, y):
    """Paste ``patch`` with its top-left at (x, y), clipped to the frame."""
    h, w = patch.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x1 > x0 and y1 > y0:
        frame[y0:y1, x0:x1] = patch[y0 - y:y1 - y, x0 - x:x1 - x]


def _face_centre(patch, x, y, scale):
    # the face centre in astronaut is ~(225, 125); the patch starts at (120, 30)
    return np.array([x + (225 - 120) * scale, y + (125 - 30) * scale])


def _clip(patches):
    a, b, bg = patches
    frames, truth = [], []
    for i in range(60):
        f = bg.copy()
        a_here = i < 12 or 14 <= i < 30 or i >= 48
        ax, ay = 10 + 2 * i if i < 30 else 70, 60
        b_here = i >= 6 and not 30 <= i < 48
        if b_here:  # B slides in from the right edge, then stays
            _paste(f, b, max(190, W - 12 * (i - 5)), 40)
        if a_here:
            _paste(f, a, ax, ay)
        frames.append((i, i / FPS, f))
        truth.append(_face_centre(a, ax, ay, 0.8) if a_here else None)
    return frames, truth


@pytest.mark.parametrize("batched", [False, True])
def test_clip_with_gaps_and_a_second_face(patches, batched):
    """``batched``: the path of detectors that search whole chunks at once (RetinaFace on a GPU),
    exercised here with dlib flagged as batched."""
    frames, truth = _clip(patches)
    cfg = FaceConfig(detector="dlib", min_face=0.15, chunk=8, track=TrackConfig(select="largest"))
    detector = DlibDetector(min_face=0.15)
    detector.batched = batched
    # the scenario is real: mid-clip both faces are detectable and B is the larger one
    both = DlibDetector(min_face=0.15).detect([frames[20][2]])[0]
    assert len(both) == 2 and max(both, key=lambda f: f.width).center[0] > 250
    stream = align_frames(iter(frames), cfg, detector=detector)
    out = list(stream)
    assert [o.index for o in out] == list(range(60))
    status = [o.status for o in out]
    assert status[12:14] == ["interpolated"] * 2          # 3/25 s gap < 0.5 s
    assert set(status[30:48]) == {"passthrough"}          # 19/25 s gap > 0.5 s
    assert stream.counts.as_dict() == {"edited": 42, "detected": 40, "interpolated": 2, "passthrough": 18,
                                       "total": 60}
    # the tracked face is A (chosen first as the only face), never the larger B that entered later
    for o, t in zip(out, truth):
        if o.status == "detected":
            assert np.linalg.norm(o.face.center - t) < 12, (o.index, o.face.center, t)
            assert np.linalg.norm(o.quad.mean(0) - t) < 25
    # fades around the long gap, full weight elsewhere
    w = np.array([o.edit_weight for o in out])
    assert 0 < w[29] < w[28] < 1 and 0 < w[48] < w[49] < 1 and w[20] == 1.0 and w[0] == 1.0
    tracker = stream.aligner.tracker
    if not batched:
        assert tracker.roi_detections > 30 and tracker.full_detections < 12  # tracked between detections


@pytest.mark.parametrize("select,expect_b", [("largest", True), (0, False), ("1", True), ("center", False)])
def test_face_selection(patches, select, expect_b):
    a, b, bg = patches
    frames = []
    for _ in range(4):
        f = bg.copy()
        _paste(f, a, 40, 60)       # A left (centre ~ (124, 136))
        _paste(f, b, 200, 40)      # B right, larger
        frames.append(f)
    cfg = FaceConfig(min_face=0.15, track=TrackConfig(select=select))
    out = list(align_frames(frames, cfg, detector=DlibDetector(min_face=0.15)))
    assert [o.status for o in out] == ["detected"] * 4
    xs = [o.face.center[0] for o in out]
    assert all((x > 200) == expect_b for x in xs), xs


def test_parse_face_select():
    from vidinvert.face.track import FaceSelect, FaceTracker

    assert parse_face_select("Largest") == FaceSelect("largest") and parse_face_select("2") == FaceSelect("numbers", (2,))
    assert parse_face_select("centre") == FaceSelect("center") and parse_face_select(3).numbers == (3,)
    assert parse_face_select("all") == FaceSelect("all") and not FaceSelect("all").single
    sel = parse_face_select(" 2, 0,2")
    assert sel.numbers == (0, 2) and str(sel) == "0,2" and parse_face_select(sel) is sel
    for bad in ("biggest", "1,x", "-1", ",", ""):
        with pytest.raises(VidinvertError, match="--face"):
            parse_face_select(bad)
    with pytest.raises(VidinvertError, match="follows one face"):
        FaceTracker(object.__new__(DlibDetector), TrackConfig(select="0,1"))


def test_optical_flow_refinement_removes_detector_jitter():
    from vidinvert.face.track import refine_landmarks_flow

    img = skimage_data.astronaut()
    face = DlibDetector().detect([img])[0][0]
    shift = np.array([2.3, -1.7])
    moved = cv2.warpAffine(img, np.array([[1, 0, shift[0]], [0, 1, shift[1]]], np.float64), (512, 512),
                           flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    truth = face.landmarks68 + shift
    noisy = truth + np.random.default_rng(0).normal(0, 1.5, truth.shape)
    refined = refine_landmarks_flow(img, moved, face.landmarks68, noisy, face.size)
    err_det = np.linalg.norm(noisy - truth, axis=1).mean()
    err_ref = np.linalg.norm(refined - truth, axis=1).mean()
    assert err_ref < 0.6 * err_det, (err_det, err_ref)
    # a real disagreement (a wrong previous position) leaves the detection alone
    far = refine_landmarks_flow(img, moved, face.landmarks68 + 25.0, truth, face.size)
    np.testing.assert_allclose(far, truth, atol=0.5)
