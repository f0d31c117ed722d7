"""Identity embeddings of aligned faces and the identity-consistency score (the paper's eq. 9).

``R`` is the ArcFace IResNet-50 when its weights are present, used the way pSp's identity
metric does: the aligned face resized to 256 px, rows 35:223 and columns 32:220 kept, pooled
to 112x112. Without ArcFace weights ``R`` is dlib's 128-d face embedding (offline, from
``face-recognition-models``). The two give different scales of cosine: a report always names
which one it used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)


class IdentityEmbedder(Protocol):
    name: str

    def embed(self, faces: torch.Tensor) -> torch.Tensor:
        """Aligned faces ``[B,3,S,S]`` RGB in [-1,1] -> unit-norm embeddings ``[B,D]`` float32 (CPU)."""


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

    @classmethod
    def from_file(cls, path: Path, device: torch.device) -> "ArcFaceEmbedder":
        from vidinvert.weights import load_arcface

        return cls(load_arcface(path).to(device).eval(), device)

    @torch.inference_mode()
    def embed(self, faces: torch.Tensor) -> torch.Tensor:
        x = psp_identity_crop(faces.to(self.device))
        e = self.model(x).float()
        return F.normalize(e, dim=1).cpu()


class DlibEmbedder:
    """dlib's 128-d face embedding of an aligned face (no detection: the face's place is known).

    The 5-point shape predictor runs on a fixed box covering the FFHQ-aligned face, which
    never fails, then ``compute_face_descriptor`` makes the 150 px chip and the embedding.
    """

    name = "dlib-resnet128"

    def __init__(self) -> None:
        import dlib

        from vidinvert.face import dlib_models

        self._dlib = dlib
        self._shape = dlib_models.shape_predictor(5)
        self._rec = dlib_models.recognition_model()

    @torch.inference_mode()
    def embed(self, faces: torch.Tensor) -> torch.Tensor:
        from vidinvert.convert import to_uint8

        imgs = to_uint8(faces)
        out = []
        for img in imgs:
            s = img.shape[0]
            # In an FFHQ-aligned crop the face spans roughly the central 60%.
            rect = self._dlib.rectangle(int(0.2 * s), int(0.22 * s), int(0.8 * s), int(0.86 * s))
            shape = self._shape(img, rect)
            d = np.asarray(self._rec.compute_face_descriptor(img, shape), dtype=np.float32)
            out.append(d)
        e = torch.from_numpy(np.stack(out))
        return F.normalize(e, dim=1)


def make_identity_embedder(weights_dir: Path | None, device: torch.device) -> IdentityEmbedder:
    """ArcFace when ``backbone.pth`` is found in the weights folders, else dlib (with a notice)."""
    from vidinvert.weights import find

    path = find("arcface", weights_dir)
    if path is not None:
        return ArcFaceEmbedder.from_file(path, device)
    log.info("identity metric: ArcFace weights not found, using dlib's 128-d face embedding"
             " (on the CPU, about 3 per frame; --no-identity skips the identity metrics)")
    return DlibEmbedder()


def cosine_to_reference(embeddings: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine of ``[N,D]`` unit embeddings with one ``[D]`` reference -> ``[N]``."""
    return (F.normalize(embeddings.float(), dim=1) @ F.normalize(reference.float(), dim=0)).clamp(-1, 1)


def identity_consistency(embeddings: torch.Tensor) -> float:
    """IC = (1/N) sum_{i=1..N} cos(R(x_i), R(x_0)), x_0 the first frame, x_1..x_N the others.

    ``embeddings``: ``[N+1, D]`` in frame order. A single frame gives 1.0.
    """
    if embeddings.shape[0] < 2:
        return 1.0
    return float(cosine_to_reference(embeddings[1:], embeddings[0]).mean())


def paired_identity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-frame identity similarity ``cos(R(a_i), R(b_i))`` -> ``[N]``."""
    return (F.normalize(a.float(), dim=1) * F.normalize(b.float(), dim=1)).sum(1).clamp(-1, 1)
