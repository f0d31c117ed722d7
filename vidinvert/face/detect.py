"""Face detectors with landmarks: dlib (HOG + 68 points, offline) and facexlib RetinaFace (5 points).

Every detector takes uint8 RGB frames ``[H,W,3]`` and returns, per frame, a list of
:class:`~vidinvert.face.types.Face` in that frame's pixel coordinates, best first. Frames are
resized by a per-frame ``scale`` before detection (``None``: the detector's automatic choice,
which upsamples small frames so that faces of ``min_face`` are still found, and downsamples
large ones for speed); boxes and landmarks are mapped back to the frame.
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch

from vidinvert.device import to_device
from vidinvert.errors import VidinvertError
from vidinvert.face import dlib_models
from vidinvert.face.types import Face, landmarks5_from_68
from vidinvert.memory import BatchSize
from vidinvert.weights import find, require
from vidinvert.weights.checkpoint import read_checkpoint
from vidinvert.weights.loading import strict_load

log = logging.getLogger(__name__)

DETECTOR_CHOICES = ("auto", "retinaface", "dlib")


def resize_for_detection(rgb: np.ndarray, scale: float) -> np.ndarray:
    """uint8 ``[H,W,3]`` resized by ``scale`` (area filter when shrinking, bilinear when enlarging)."""
    if abs(scale - 1.0) < 1e-6:
        return np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(rgb), size, interpolation=interp)


def _map_back(p: np.ndarray, scale: float) -> np.ndarray:
    """Pixel-index coordinates in an image resized by ``scale`` -> original coordinates."""
    return (p + 0.5) / scale - 0.5


class FaceDetector:
    """Base class. ``name``; ``batched``: True when whole batches of frames are cheap (GPU)."""

    name = "base"
    batched = False

    def __init__(self, min_face: float = 0.08, min_face_px: float = 20.0, max_upsample: float = 4.0):
        #: smallest face to find, as a fraction of the frame's shorter side, and in pixels
        self.min_face = float(min_face)
        self.min_face_px = float(min_face_px)
        self.max_upsample = float(max_upsample)

    # Width (px, at detection scale) of the smallest face the backend finds reliably.
    native_min_face = 40.0
    # Longest side (px) a frame is shrunk to when faces are large enough anyway.
    max_side = 1280

    def auto_scale(self, shape: tuple[int, ...]) -> float:
        """Detection scale for a frame of ``shape`` (H, W, ...): small faces up, big frames down."""
        h, w = shape[:2]
        smallest = max(self.min_face_px, self.min_face * min(h, w))
        scale = self.native_min_face / smallest
        return float(min(self.max_upsample, scale))

    def detect(self, frames: Sequence[np.ndarray], scales: Sequence[float] | float | None = None) -> list[list[Face]]:
        """uint8 RGB frames ``[H,W,3]`` -> list (per frame) of faces, best score first."""
        if isinstance(scales, (int, float)) or scales is None:
            scales = [scales] * len(frames)
        scales = [self.auto_scale(f.shape) if s is None else float(s) for f, s in zip(frames, scales)]
        return self._detect(list(frames), scales)

    def _detect(self, frames: list[np.ndarray], scales: list[float]) -> list[list[Face]]:  # pragma: no cover
        raise NotImplementedError


class DlibDetector(FaceDetector):
    """dlib's HOG frontal detector + 68-point shape predictor (how FFHQ itself was aligned).

    Detection runs on the resized frame; landmarks are predicted on the original frame. The HOG
    window is 80 px, so a frame is upsampled (up to ``max_upsample``) when faces as small as
    ``min_face`` would otherwise be missed (a 50 px face in a 176x144 clip is found at 2x and more).
    Scores are HOG margins (0 = threshold); faces with score < ``threshold`` are dropped.
    """

    name = "dlib"
    batched = False
    native_min_face = 80.0

    def __init__(self, threshold: float = 0.0, **kw):
        super().__init__(**kw)
        self.threshold = float(threshold)
        self._det = dlib_models.frontal_detector()
        self._sp = dlib_models.shape_predictor(68)

    def _detect(self, frames, scales):
        out = []
        for rgb, scale in zip(frames, scales):
            small = resize_for_detection(rgb, scale)
            rects, scores, _ = self._det.run(small, 0, self.threshold)
            faces = []
            img = np.ascontiguousarray(rgb)
            for r, s in zip(rects, scores):
                box = _map_back(np.array([r.left(), r.top(), r.right(), r.bottom()], np.float64), scale)
                lm68 = dlib_models.landmarks68(img, box)
                faces.append(Face(box=box, score=float(s), landmarks5=landmarks5_from_68(lm68), landmarks68=lm68))
            faces.sort(key=lambda f: -f.score)
            out.append(faces)
        return out


class RetinaFaceDetector(FaceDetector):
    """facexlib's RetinaFace (ResNet-50), 5 landmarks, batched on the compute device.

    ``weights``: path of ``detection_Resnet50_Final.pth`` (registry name ``retinaface``), or an
    already loaded state dict. ``weights=None`` builds RANDOM weights: only the test suite does
    that, to check the plumbing (shapes, BGR order, batching); it detects nothing meaningful.
    The network takes BGR float with the means (104, 117, 123) subtracted, as facexlib does; the
    decoding (anchors, variances, NMS) is facexlib's. No real RetinaFace weights were available
    when this was written, so detection quality with them is untested here.
    """

    name = "retinaface"
    native_min_face = 20.0
    max_side = 640

    def __init__(self, weights: Path | str | dict | None, device: torch.device | str = "cpu",
                 conf_threshold: float = 0.8, nms_threshold: float = 0.4, **kw):
        super().__init__(**kw)
        from facexlib.detection.retinaface import RetinaFace

        self.device = torch.device(device)
        self.batched = self.device.type == "cuda"
        self.batch = BatchSize(None, "face detection", device=self.device)
        self.conf_threshold = float(conf_threshold)
        self.nms_threshold = float(nms_threshold)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = RetinaFace(network_name="resnet50", half=False, phase="test", device=torch.device("cpu"))
        if weights is not None:
            state = weights
            if not isinstance(weights, dict):
                state = read_checkpoint(weights)
            if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
                state = state["state_dict"]
            state = {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}

            strict_load(net, state, weights if not isinstance(weights, dict) else "the given state dict",
                        "retinaface", "facexlib RetinaFace ResNet-50")
        self.net = net.to(self.device).eval()
        self.net.device = self.device
        self._priors: dict[tuple[int, int], torch.Tensor] = {}
        self._mean_bgr = torch.tensor([104.0, 117.0, 123.0], device=self.device).view(1, 3, 1, 1)

    def auto_scale(self, shape):
        h, w = shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        smallest = max(self.min_face_px, self.min_face * min(h, w))
        scale = max(scale, self.native_min_face / smallest)
        return float(min(self.max_upsample, scale))

    def _prior_boxes(self, h: int, w: int) -> torch.Tensor:
        """Anchors ``[P,4]`` (cx, cy, w, h; relative), in facexlib's PriorBox order."""
        key = (h, w)
        if key not in self._priors:
            cfg = self.net.cfg
            chunks = []
            for step, sizes in zip(cfg["steps"], cfg["min_sizes"]):
                fh, fw = math.ceil(h / step), math.ceil(w / step)
                cy, cx = torch.meshgrid((torch.arange(fh) + 0.5) * step / h, (torch.arange(fw) + 0.5) * step / w,
                                        indexing="ij")
                per = [torch.stack([cx, cy, torch.full_like(cx, s / w), torch.full_like(cy, s / h)], -1) for s in sizes]
                chunks.append(torch.stack(per, 2).reshape(-1, 4))
            self._priors[key] = torch.cat(chunks).to(self.device)
        return self._priors[key]

    def bgr_input(self, small_rgb: Sequence[np.ndarray]) -> torch.Tensor:
        """Same-size uint8 RGB ``[h,w,3]`` images -> the network input ``[B,3,h,w]`` float BGR minus means."""
        x = to_device(torch.from_numpy(np.stack(small_rgb)), self.device)
        x = x.flip(-1).permute(0, 3, 1, 2).float()  # RGB -> BGR
        return x - self._mean_bgr

    @torch.no_grad()
    def _run(self, small: list[np.ndarray]):
        from facexlib.detection.retinaface_utils import batched_decode, batched_decode_landm

        h, w = small[0].shape[:2]
        loc, conf, landms = self.net(self.bgr_input(small))
        priors = self._prior_boxes(h, w).unsqueeze(0)
        var = self.net.cfg["variance"]
        boxes = batched_decode(loc.float(), priors, var) * torch.tensor([w, h, w, h], device=self.device)
        lms = batched_decode_landm(landms.float(), priors, var) * torch.tensor([w, h] * 5, device=self.device)
        return boxes.cpu().numpy(), conf[..., 1].float().cpu().numpy(), lms.cpu().numpy()

    def _detect(self, frames, scales):
        from facexlib.detection.retinaface_utils import py_cpu_nms

        small = [resize_for_detection(f, s) for f, s in zip(frames, scales)]
        out: list[list[Face]] = [[] for _ in frames]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, s in enumerate(small):
            groups.setdefault(s.shape[:2], []).append(i)
        for idx in groups.values():
            # frames of one size in one batch; halved when memory runs out (vidinvert.memory)
            parts = [r for _, r in self.batch.batches(idx, lambda sel: self._run([small[i] for i in sel]))]
            boxes, scores, lms = (np.concatenate(x) for x in zip(*parts))
            for j, i in enumerate(idx):
                keep = scores[j] > self.conf_threshold
                b, sc, lm = boxes[j][keep], scores[j][keep], lms[j][keep]
                order = np.argsort(-sc)
                b, sc, lm = b[order], sc[order], lm[order]
                dets = np.hstack([b, sc[:, None]]).astype(np.float32)
                k = py_cpu_nms(dets, self.nms_threshold) if len(dets) else []
                # RetinaFace's boxes are in pixel units (edges); landmarks are points.
                out[i] = [
                    Face(box=(b[n] + 0.5) / scales[i] - 0.5, score=float(sc[n]),
                         landmarks5=_map_back(lm[n].reshape(5, 2).astype(np.float64), scales[i]))
                    for n in k
                ]
        return out


def make_detector(kind: str = "auto", weights_dir: Path | str | None = None, device: torch.device | str = "cpu",
                  **kw) -> FaceDetector:
    """Build a detector: ``auto`` = RetinaFace when its weights file is found, else dlib.

    ``kw`` go to the detector (``min_face``, ``min_face_px``, ``max_upsample``, thresholds).
    """
    kind = (kind or "auto").lower()
    if kind not in DETECTOR_CHOICES:
        raise VidinvertError(f"unknown --detector {kind!r}: choose one of {', '.join(DETECTOR_CHOICES)}")
    path = None
    if kind in ("auto", "retinaface"):
        path = _find_weights("retinaface", weights_dir)
        if path is None and kind == "retinaface":
            require("retinaface", weights_dir)  # raises the actionable error
    if path is not None:
        return RetinaFaceDetector(path, device=device, **kw)
    if not dlib_models.dlib_available():
        raise VidinvertError(
            "no face detector available: place the RetinaFace weights (`vidinvert weights download retinaface`) "
            "or install dlib: pip install 'vidinvert[faces]'"
        )
    return DlibDetector(**kw)


def _find_weights(name: str, weights_dir) -> Path | None:
    return find(name, weights_dir)
