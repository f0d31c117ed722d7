"""Identity embeddings of aligned faces and the identity-consistency score (the paper's eq. 9).

``R`` is the ArcFace IResNet-50 when its weights are present, used the way pSp's identity
metric does: the aligned face resized to 256 px, rows 35:223 and columns 32:220 kept, pooled
to 112x112, compared by cosine (eq. 9). Without ArcFace weights ``R`` is dlib's 128-d face
descriptor (offline, from ``face-recognition-models``), compared the way dlib is meant to be:
by the Euclidean distance of the raw descriptors, the same person below 0.6. Cosines of dlib's
descriptors are useless (0.86-0.89 even between a face and a cat or noise), so with dlib
"identity consistency" is the share of frames within 0.6 of the reference, with the mean
distance beside it. Each embedder's ``measure`` (``"cosine"`` or ``"distance"``) says which;
:func:`measure_label` is the label reports print.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from vidinvert.convert import to_uint8
from vidinvert.face import dlib_models
from vidinvert.weights import find, load_arcface

log = logging.getLogger(__name__)

DLIB_SAME_PERSON = 0.6  # dlib's threshold: descriptors of one person lie closer than this
MEASURE_LABELS = {"cosine": "cosine (ArcFace, eq. 9)", "distance": f"share within {DLIB_SAME_PERSON} (dlib)"}


class IdentityEmbedder(Protocol):
    name: str
    measure: str  # "cosine" (unit embeddings, eq. 9) or "distance" (raw dlib descriptors)

    def embed(self, faces: torch.Tensor) -> torch.Tensor:
        """Aligned faces ``[B,3,S,S]`` RGB in [-1,1] -> embeddings ``[B,D]`` float32 (CPU): unit-norm
        for ``measure == "cosine"``, raw descriptors for ``"distance"``."""


def measure_of(embedder: str | None) -> str | None:
    """The measure of an embedder by its name (``dlib-resnet128`` -> ``"distance"``; None -> None)."""
    if embedder is None:
        return None
    return "distance" if embedder.startswith("dlib") else "cosine"


def measure_label(measure: str | None) -> str | None:
    """``"cosine"`` -> ``"cosine (ArcFace, eq. 9)"``, ``"distance"`` -> ``"share within 0.6 (dlib)"``."""
    return None if measure is None else MEASURE_LABELS[measure]


def psp_identity_crop(faces: torch.Tensor) -> torch.Tensor:
    """``[B,3,S,S]`` -> ``[B,3,112,112]``: resize to 256, keep rows 35:223 / cols 32:220, pool to 112."""
    x = faces.float()
    if x.shape[-1] != 256:
        x = F.adaptive_avg_pool2d(x, (256, 256)) if x.shape[-1] > 256 else F.interpolate(
            x, size=(256, 256), mode="bilinear", align_corners=False)
    x = x[:, :, 35:223, 32:220]
    return F.adaptive_avg_pool2d(x, (112, 112))


@dataclass
class ArcFaceEmbedder:
    """ArcFace IResNet-50 (``backbone.pth``) on the pSp identity crop."""

    model: torch.nn.Module
    device: torch.device
    name: str = "arcface-iresnet50"
    measure: str = "cosine"

    @classmethod
    def from_file(cls, path: Path, device: torch.device) -> ArcFaceEmbedder:
        return cls(load_arcface(path).to(device).eval(), device)

    @torch.inference_mode()
    def embed(self, faces: torch.Tensor) -> torch.Tensor:
        x = psp_identity_crop(faces.to(self.device))
        e = self.model(x).float()
        return F.normalize(e, dim=1).cpu()


class DlibEmbedder:
    """dlib's 128-d face descriptor of an aligned face (no detection: the face's place is known).

    The 5-point shape predictor runs on a fixed box covering the FFHQ-aligned face, which
    never fails, then ``compute_face_descriptor`` makes the 150 px chip and the descriptor.
    Descriptors are returned raw (not unit-normalised): the same person lies within
    :data:`DLIB_SAME_PERSON` (0.6) in Euclidean distance.
    """

    name = "dlib-resnet128"
    measure = "distance"

    def __init__(self) -> None:
        import dlib


        self._dlib = dlib
        self._shape = dlib_models.shape_predictor(5)
        self._rec = dlib_models.recognition_model()

    @torch.inference_mode()
    def embed(self, faces: torch.Tensor) -> torch.Tensor:
        imgs = to_uint8(faces)
        out = []
        for img in imgs:
            s = img.shape[0]
            # In an FFHQ-aligned crop the face spans roughly the central 60%.
            rect = self._dlib.rectangle(int(0.2 * s), int(0.22 * s), int(0.8 * s), int(0.86 * s))
            shape = self._shape(img, rect)
            d = np.asarray(self._rec.compute_face_descriptor(img, shape), dtype=np.float32)
            out.append(d)
        return torch.from_numpy(np.stack(out))


def make_identity_embedder(weights_dir: Path | None, device: torch.device) -> IdentityEmbedder:
    """ArcFace when ``backbone.pth`` is found in the weights folders, else dlib (with a notice)."""
    path = find("arcface", weights_dir)
    if path is not None:
        return ArcFaceEmbedder.from_file(path, device)
    log.info("identity metric: ArcFace weights not found, using dlib's 128-d face embedding"
             " (on the CPU, about 3 per frame; --no-identity skips the identity metrics)")
    return DlibEmbedder()


def cosine_to_reference(embeddings: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine of ``[N,D]`` embeddings with one ``[D]`` reference -> ``[N]``."""
    return (F.normalize(embeddings.float(), dim=1) @ F.normalize(reference.float(), dim=0)).clamp(-1, 1)


def distance_to_reference(embeddings: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Row-wise Euclidean distance of ``[N,D]`` raw descriptors to one ``[D]`` reference -> ``[N]``."""
    return (embeddings.double() - reference.double()).norm(dim=1).float()


def identity_consistency(embeddings: torch.Tensor, measure: str = "cosine") -> float:
    """Identity consistency of frames ``[N+1, D]`` in frame order (x_0 the first frame).

    ``cosine``: the paper's eq. 9, IC = (1/N) sum_{i=1..N} cos(R(x_i), R(x_0)).
    ``distance`` (dlib): eq. 9 with dlib's same-person test in place of the cosine, the share of
    x_1..x_N whose descriptor lies within 0.6 of x_0's. A single frame gives 1.0.
    """
    if embeddings.shape[0] < 2:
        return 1.0
    if measure == "distance":
        return float((distance_to_reference(embeddings[1:], embeddings[0]) < DLIB_SAME_PERSON).float().mean())
    return float(cosine_to_reference(embeddings[1:], embeddings[0]).mean())


def identity_distance(embeddings: torch.Tensor) -> float:
    """Mean Euclidean distance of frames 1..N's descriptors to frame 0's (``[N+1, D]``); 0.0 for one frame."""
    if embeddings.shape[0] < 2:
        return 0.0
    return float(distance_to_reference(embeddings[1:], embeddings[0]).mean())


def paired_identity(a: torch.Tensor, b: torch.Tensor, measure: str = "cosine") -> torch.Tensor:
    """Per-frame identity of pairs ``[N,D]`` x2 -> ``[N]`` float32: ``cos(R(a_i), R(b_i))``, or with
    ``distance`` (dlib) 1.0 where the two descriptors lie within 0.6 (same person), else 0.0."""
    if measure == "distance":
        return (paired_distance(a, b) < DLIB_SAME_PERSON).float()
    return (F.normalize(a.float(), dim=1) * F.normalize(b.float(), dim=1)).sum(1).clamp(-1, 1)


def paired_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-frame Euclidean distance of raw descriptors ``[N,D]`` x2 -> ``[N]`` float32."""
    return (a.double() - b.double()).norm(dim=1).float()
