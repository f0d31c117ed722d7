"""One face of one still image: detect, choose, FFHQ-align (no tracking, no smoothing)."""

from __future__ import annotations

import numpy as np
import torch

from vidinvert.errors import VidinvertError
from vidinvert.face.align import quad_from_face, warp_faces
from vidinvert.face.detect import FaceDetector
from vidinvert.face.track import parse_face_select, select_face


def align_single(rgb: np.ndarray, detector: FaceDetector, *, face: str | int = "largest", size: int = 1024,
                 device: torch.device | str = "cpu") -> tuple[torch.Tensor, np.ndarray]:
    """Detect the faces of ``rgb`` (uint8 ``[H,W,3]`` RGB), choose one (``largest`` | ``center`` | N,
    0 = leftmost) and warp its FFHQ crop.

    Returns (crop ``[1,3,size,size]`` float32 in [-1,1] RGB on ``device``, quad ``[4,2]`` float64 frame
    coordinates). Raises VidinvertError when no face (or no face N) is found.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise VidinvertError(f"expected a uint8 RGB image [H,W,3], got {rgb.dtype} {tuple(rgb.shape)}")
    select = parse_face_select(face)
    faces = detector.detect([rgb])[0]
    chosen = select_face(faces, select, rgb.shape)
    if chosen is None:
        found = f"{len(faces)} face(s) found" if faces else "no face found"
        raise VidinvertError(f"{found} for --face {face}: give an image with a visible face"
                             " (or an aligned crop with --no-align)")
    quad = quad_from_face(chosen)
    return warp_faces([rgb], quad[None], size, device=device), quad


__all__ = ["align_single"]
