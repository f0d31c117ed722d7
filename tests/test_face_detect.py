"""Face detection backends: dlib on real images, RetinaFace plumbing with random weights."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from skimage import data as skimage_data

from vidinvert.errors import VidinvertError
from vidinvert.face import align, detect
from vidinvert.face.dlib_models import dlib_face_embedding
from vidinvert.face.types import landmarks5_from_68


@pytest.fixture(scope="module")
def astronaut():
    return skimage_data.astronaut()


@pytest.fixture(scope="module")
def dlib_detector():
    return detect.DlibDetector()


def test_dlib_finds_astronaut_with_68_points(astronaut, dlib_detector):
    faces = dlib_detector.detect([astronaut])[0]
    assert len(faces) == 1
    f = faces[0]
    # The face is in the upper middle of the image (rows ~80-170, cols ~180-270).
    assert 150 < f.center[0] < 300 and 60 < f.center[1] < 200
    assert f.landmarks68.shape == (68, 2)
    # every landmark lies in (a slightly grown) box, eyes above the mouth, left eye left of right eye
    grown = f.box + np.array([-0.3, -0.5, 0.3, 0.4]) * f.width
    assert (f.landmarks68[:, 0] > grown[0]).all() and (f.landmarks68[:, 0] < grown[2]).all()
    lm5 = f.landmarks5
    assert lm5[0, 0] < lm5[1, 0] and lm5[3, 0] < lm5[4, 0]
    assert lm5[:2, 1].max() < lm5[2, 1] < lm5[3:, 1].min()
    np.testing.assert_allclose(lm5, landmarks5_from_68(f.landmarks68))


def test_68_point_quad_agrees_with_mtcnn_5_point_quad(astronaut, dlib_detector):
    """Two independent detectors (dlib 68 points, MTCNN 5 points) give nearly the same FFHQ crop."""
    facenet = pytest.importorskip("facenet_pytorch")
    mtcnn = facenet.MTCNN(keep_all=True, device="cpu")
    boxes, probs, points = mtcnn.detect(astronaut, landmarks=True)
    assert boxes is not None and len(boxes) == 1
    q5 = align.quad_from_5(np.asarray(points[0], np.float64))
    q68 = align.quad_from_68(dlib_detector.detect([astronaut])[0][0].landmarks68)
    side = np.hypot(*(q68[3] - q68[0]))
    corner_err = np.linalg.norm(q68 - q5, axis=1)
    centre_err = np.linalg.norm(q68.mean(0) - q5.mean(0))
    # measured: corners 4.9-6.2 px, centre ~1 px, on a 175 px quad
    assert corner_err.max() < 8.0, corner_err
    assert centre_err < 3.0
    assert corner_err.max() / side < 0.05


def test_small_face_in_qcif_frame_is_found(astronaut, dlib_detector):
    """A 50 px wide face in a 176x144 frame (detection upsamples the frame)."""
    crop = astronaut[40:220, 135:315]  # face ~87 px wide in 180 px
    small = cv2.resize(crop, (103, 103), interpolation=cv2.INTER_AREA)  # face ~50 px
    rng = np.random.default_rng(0)
    frame = (rng.random((144, 176, 3)) * 40 + 100).astype(np.uint8)
    frame[20:123, 40:143] = small
    assert dlib_detector.auto_scale(frame.shape) > 1.5
    faces = dlib_detector.detect([frame])[0]
    assert len(faces) >= 1
    f = faces[0]
    assert 35 < f.width < 70
    assert 60 < f.center[0] < 130 and 40 < f.center[1] < 100
    # without upsampling the HOG detector misses it
    assert dlib_detector.detect([frame], [1.0])[0] == []


def test_dlib_embedding_same_person_vs_other(astronaut, dlib_detector):
    f = dlib_detector.detect([astronaut])[0][0]
    e1 = dlib_face_embedding(astronaut, f.landmarks68)
    shifted = np.roll(astronaut, (7, -11), axis=(0, 1))
    f2 = dlib_detector.detect([shifted])[0][0]
    e2 = dlib_face_embedding(shifted, f2.landmarks68)
    e3 = dlib_face_embedding(astronaut, None, box=f.box)  # 5-point path
    assert e1.shape == (128,)
    assert np.linalg.norm(e1 - e2) < 0.2 and np.linalg.norm(e1 - e3) < 0.3


def test_make_detector_auto_falls_back_to_dlib(tmp_path):
    assert isinstance(detect.make_detector("auto", weights_dir=tmp_path), detect.DlibDetector)
    with pytest.raises(VidinvertError, match="retinaface"):
        detect.make_detector("retinaface", weights_dir=tmp_path)
    with pytest.raises(VidinvertError, match="--detector"):
        detect.make_detector("mtcnn")


# ---------------------------------------------------------------- RetinaFace (random weights!)
# No RetinaFace weights exist in the test environment: these tests build the network with random
# weights and check only the plumbing (file loading, BGR input, batching, coordinate mapping).


@pytest.fixture(scope="module")
def random_retinaface():
    torch.manual_seed(0)
    det = detect.RetinaFaceDetector(None, device="cpu", conf_threshold=0.0)
    return det


def test_retinaface_input_is_bgr_minus_means(random_retinaface, astronaut):
    det = random_retinaface
    small = cv2.resize(astronaut, (96, 64))
    seen = {}
    orig = det.net.forward

    def spy(x):
        seen["x"] = x.clone()
        return orig(x)

    det.net.forward = spy
    try:
        det.detect([small], [1.0])
    finally:
        del det.net.forward
    x = seen["x"][0].numpy()
    means = np.array([104, 117, 123], np.float32)[:, None, None]
    expected = small[..., ::-1].astype(np.float32).transpose(2, 0, 1) - means
    np.testing.assert_array_equal(x, expected)


def test_retinaface_batched_matches_single_and_maps_scale(random_retinaface, astronaut):
    det = random_retinaface
    a = cv2.resize(astronaut, (80, 64))
    b = a[:, ::-1].copy()
    both = det.detect([a, b], [1.0, 1.0])
    sa, sb = det.detect([a], [1.0])[0], det.detect([b], [1.0])[0]
    for batch, single in ((both[0], sa), (both[1], sb)):
        assert len(batch) == len(single) > 0
        for f, g in zip(batch, single):
            np.testing.assert_allclose(f.box, g.box, rtol=1e-4, atol=2e-2)
            np.testing.assert_allclose(f.landmarks5, g.landmarks5, rtol=1e-4, atol=2e-2)
            assert f.landmarks68 is None and f.landmarks5.shape == (5, 2)
    # a frame twice as large detected at scale 0.5 sees the same network input -> coordinates x2
    big = cv2.resize(a, (160, 128), interpolation=cv2.INTER_NEAREST)
    half = det.detect([big], [0.5])[0]
    assert len(half) == len(sa)
    np.testing.assert_allclose(half[0].box, (sa[0].box + 0.5) * 2 - 0.5, rtol=1e-4, atol=1e-2)


def test_retinaface_loads_checkpoint_and_rejects_other_files(random_retinaface, tmp_path, astronaut):
    state = {"module." + k: v for k, v in random_retinaface.net.state_dict().items()}
    path = tmp_path / "detection_Resnet50_Final.pth"
    torch.save(state, path)
    det = detect.make_detector("auto", weights_dir=tmp_path, conf_threshold=0.0)
    assert isinstance(det, detect.RetinaFaceDetector)
    img = cv2.resize(astronaut, (64, 64))
    f1 = det.detect([img], [1.0])[0]
    f2 = random_retinaface.detect([img], [1.0])[0]
    np.testing.assert_allclose(f1[0].box, f2[0].box, atol=1e-4)
    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(3)}, bad)
    with pytest.raises(VidinvertError, match="RetinaFace"):
        detect.RetinaFaceDetector(bad)


def test_retinaface_anchors_match_facexlib_priorbox(random_retinaface):
    from facexlib.detection.retinaface_utils import PriorBox

    for h, w in ((64, 80), (75, 101)):
        ref = PriorBox(random_retinaface.net.cfg, image_size=(h, w)).forward()
        torch.testing.assert_close(random_retinaface._prior_boxes(h, w).float(), ref, rtol=0, atol=1e-6)
