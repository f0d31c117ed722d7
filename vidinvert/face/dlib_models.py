"""dlib's offline face models (``dlib-bin`` + ``face-recognition-models``), loaded once per process.

The ``.dat`` files ship in the ``face_recognition_models`` package; it is located without being
imported (its ``__init__`` needs ``pkg_resources``). Everything here takes uint8 RGB ``[H,W,3]``.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

from vidinvert.errors import VidinvertError

MODEL_FILES = {
    "shape68": "shape_predictor_68_face_landmarks.dat",
    "shape5": "shape_predictor_5_face_landmarks.dat",
    "recognition": "dlib_face_recognition_resnet_model_v1.dat",
    "cnn_detector": "mmod_human_face_detector.dat",
}
_INSTALL_HINT = "install the face extras: pip install 'vidinvert[faces]' (dlib-bin, face-recognition-models)"


def dlib_available() -> bool:
    """True when both ``dlib`` and the ``face_recognition_models`` data package are installed."""
    return (
        importlib.util.find_spec("dlib") is not None
        and importlib.util.find_spec("face_recognition_models") is not None
    )


def _dlib():
    try:
        import dlib
    except ImportError:
        raise VidinvertError(f"the dlib face detector is not installed: {_INSTALL_HINT}") from None
    return dlib


def model_path(key: str) -> Path:
    """Path of one of dlib's model files (``key`` in :data:`MODEL_FILES`)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise VidinvertError(f"dlib's model files (face_recognition_models) are not installed: {_INSTALL_HINT}")
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "models" / MODEL_FILES[key]
        if p.is_file():
            return p
    raise VidinvertError(f"{MODEL_FILES[key]} is missing from face_recognition_models: reinstall it ({_INSTALL_HINT})")


@functools.cache
def frontal_detector():
    """dlib's HOG frontal face detector (finds faces from about 80 px wide at the scale it is run)."""
    return _dlib().get_frontal_face_detector()


@functools.cache
def shape_predictor(points: int = 68):
    """dlib's shape predictor with 68 or 5 points."""
    return _dlib().shape_predictor(str(model_path("shape68" if points == 68 else "shape5")))


@functools.cache
def recognition_model():
    """dlib's ResNet face recognition model (128-d embeddings; same person when distance < 0.6)."""
    return _dlib().face_recognition_model_v1(str(model_path("recognition")))


def _rect(box):
    dlib = _dlib()
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    return dlib.rectangle(x0, y0, x1, y1)


def landmarks68(rgb: np.ndarray, box) -> np.ndarray:
    """68 landmarks ``[68,2]`` float64 for the face in ``box`` (xyxy) of uint8 RGB ``rgb`` ``[H,W,3]``."""
    shape = shape_predictor(68)(np.ascontiguousarray(rgb), _rect(box))
    return np.array([[p.x, p.y] for p in shape.parts()], np.float64)


def dlib_face_embedding(rgb_uint8: np.ndarray, landmarks, box=None, num_jitters: int = 0) -> np.ndarray:
    """dlib's 128-d face descriptor ``(128,)`` float64 of the face in uint8 RGB ``[H,W,3]``.

    ``landmarks``: ``[68,2]`` points (dlib layout), a ``dlib.full_object_detection``, or None with a
    ``box`` (xyxy), in which case dlib's 5-point predictor places the face. Euclidean distances
    below 0.6 mean the same person by dlib's convention.
    """
    dlib = _dlib()
    img = np.ascontiguousarray(rgb_uint8)
    if landmarks is None:
        if box is None:
            raise ValueError("dlib_face_embedding needs landmarks or a box")
        shape = shape_predictor(5)(img, _rect(box))
    elif isinstance(landmarks, np.ndarray) or isinstance(landmarks, (list, tuple)):
        pts = np.asarray(landmarks, np.float64).reshape(-1, 2)
        if box is None:
            box = (*pts.min(0), *pts.max(0))
        shape = dlib.full_object_detection(
            _rect(box), [dlib.point(int(round(x)), int(round(y))) for x, y in pts]
        )
    else:
        shape = landmarks
    return np.asarray(recognition_model().compute_face_descriptor(img, shape, num_jitters), np.float64)
