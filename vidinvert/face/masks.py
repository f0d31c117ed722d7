"""Soft paste masks in aligned-crop space: ``[B,1,S,S]`` float in [0,1] with exact zeros outside
their support (and always in a margin along the crop border), so pixels outside stay bit-identical.

- Parsing masks (when facexlib's BiSeNet weights ``parsing_bisenet.pth``, registry name
  ``bisenet``, are found): face classes of the *source* crop united with those of the *edited*
  crop, so an edit that opens the mouth or adds glasses is not clipped.
- Landmark masks otherwise: the face outline from 68 points (jawline + eyebrows, raised to take
  in the brow ridge), an ellipse from 5 points, or a canonical FFHQ ellipse without landmarks.

Masks are smooth, so they are built at a modest resolution (256 by default) whatever the crop
size S; ``paste_faces`` samples them at any resolution. Feathering = dilation by ``feather`` (a
fraction of the crop size) then a Gaussian blur of half that sigma.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vidinvert.convert import IMAGENET_MEAN, IMAGENET_STD
from vidinvert.errors import VidinvertError
from vidinvert.face.types import BROWS, JAW
from vidinvert.weights import find
from vidinvert.weights.checkpoint import read_checkpoint
from vidinvert.weights.loading import strict_load

log = logging.getLogger(__name__)

#: Face classes pasted by the official scripts (skin, brows, eyes, glasses, nose, mouth, lips).
FACE_CLASSES = (1, 2, 3, 4, 5, 6, 10, 11, 12, 13)
#: STIT's choice: every class except background, cloth and hat.
FACE_CLASSES_STIT = tuple(c for c in range(19) if c not in (0, 16, 18))
#: Canonical 5 landmarks in an FFHQ crop (normalised 0..1) when a frame has none.
CANONICAL_LM5 = np.array([[0.375, 0.472], [0.625, 0.472], [0.5, 0.62], [0.41, 0.75], [0.59, 0.75]])


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``[B,C,H,W]`` (zero padding: zeros stay zeros far from support)."""
    if sigma <= 0:
        return x
    r = max(1, int(np.ceil(3 * sigma)))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), padding=(0, r), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), padding=(r, 0), groups=c)


def feather_mask(binary: torch.Tensor, size: int, feather: float = 0.03, margin: float = 0.03,
                 floor: float = 1.0 / 512) -> torch.Tensor:
    """Binary/soft ``[B,1,r,r]`` -> feathered ``[B,1,size,size]`` in [0,1] with exact zeros outside.

    Dilates by ``feather * r`` pixels, blurs with sigma ``feather * r / 2``, zeroes values below
    ``floor`` and a ``margin`` band along the border, then upsamples (bilinear keeps exact zeros
    where all neighbours are zero).
    """
    r = binary.shape[-1]
    m = binary.float().clamp(0, 1)
    rad = int(round(feather * r))
    if rad > 0:  # square dilation, separably
        m = F.max_pool2d(m, (2 * rad + 1, 1), stride=1, padding=(rad, 0))
        m = F.max_pool2d(m, (1, 2 * rad + 1), stride=1, padding=(0, rad))
        m = gaussian_blur(m, rad / 2)
    m = torch.where(m < floor, torch.zeros_like(m), m.clamp(max=1.0))
    band = max(1, int(np.ceil(margin * r)))
    m[..., :band, :] = 0
    m[..., -band:, :] = 0
    m[..., :, :band] = 0
    m[..., :, -band:] = 0
    if r != size:
        m = F.interpolate(m, size=(size, size), mode="bilinear", align_corners=False)
    return m


def outline_polygon(lm68: np.ndarray) -> np.ndarray:
    """Jawline left->right then eyebrows right->left, the brows raised by 0.04 of the crop."""
    brows = lm68[BROWS][::-1] - [0.0, 0.04]
    return np.concatenate([lm68[JAW], brows])


def ellipse_from_5(lm5: np.ndarray) -> tuple[tuple[float, float], tuple[float, float], float]:
    """Face ellipse from 5 crop-normalised points: (centre, half-axes, angle in degrees)."""
    eye_avg = (lm5[0] + lm5[1]) / 2
    mouth_avg = (lm5[3] + lm5[4]) / 2
    e2e = lm5[1] - lm5[0]
    e2m = mouth_avg - eye_avg
    c = eye_avg + 0.55 * e2m
    a = 1.1 * np.hypot(*e2e)
    b = 1.25 * np.hypot(*e2m)
    angle = float(np.degrees(np.arctan2(e2e[1], e2e[0])))
    return (float(c[0]), float(c[1])), (float(a), float(b)), angle


def outline_masks(landmarks_crop: Sequence[np.ndarray | None], size: int = 256, *, device=None,
                  feather: float = 0.03, margin: float = 0.03, floor: float = 1.0 / 512) -> torch.Tensor:
    """Landmark masks ``[B,1,size,size]`` (float32, [0,1]) from crop-normalised landmarks (0..1).

    ``[68,2]``: filled jawline + raised brows polygon; ``[5,2]``: ellipse from eyes and mouth;
    None: ellipse from :data:`CANONICAL_LM5`. Feathered like :func:`feather_mask` (dilation by
    ``feather * size``, Gaussian blur, exact zeros below ``floor`` and in a ``margin`` band).
    The mask is smooth, so ``size`` 256 serves any crop size (``paste_faces`` takes any resolution).
    """
    r = int(size)
    rad = int(round(feather * r))
    band = max(1, int(np.ceil(margin * r)))
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * rad + 1, 2 * rad + 1)) if rad > 0 else None
    out = np.zeros((len(landmarks_crop), 1, r, r), np.float32)
    for i, lm in enumerate(landmarks_crop):
        lm = CANONICAL_LM5 if lm is None else np.asarray(lm, np.float64)
        canvas = np.zeros((r, r), np.uint8)
        if lm.shape[0] == 68:
            poly = outline_polygon(lm) * r - 0.5
            cv2.fillPoly(canvas, [np.round(poly * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
        else:
            (cx, cy), (a, b), ang = ellipse_from_5(lm)
            center = (int(round((cx * r - 0.5) * 16)), int(round((cy * r - 0.5) * 16)))
            axes = (int(round(a * r * 16)), int(round(b * r * 16)))
            cv2.ellipse(canvas, center, axes, ang, 0, 360, 1, -1, lineType=cv2.LINE_8, shift=4)
        m = canvas.astype(np.float32)
        if rad > 0:
            m = cv2.dilate(m, kernel)
            m = cv2.GaussianBlur(m, (0, 0), rad / 2, borderType=cv2.BORDER_CONSTANT)
        m[m < floor] = 0
        m[:band], m[-band:], m[:, :band], m[:, -band:] = 0, 0, 0, 0
        out[i, 0] = np.minimum(m, 1.0)
    return torch.from_numpy(out).to(device or "cpu")


BISENET_FILES = "facexlib parsing_bisenet.pth or zllrunning face-parsing.PyTorch 79999_iter.pth"


def load_bisenet(weights: Path | str | dict | None = None, *, seed: int | None = None) -> torch.nn.Module:
    """The one BiSeNet loader (paste masks and the training's parsing loss): facexlib's 19-class
    ``BiSeNet`` (CPU, train mode as built), strictly loaded.

    ``weights``: a file or a state dict. facexlib's ``parsing_bisenet.pth`` (registry ``bisenet``)
    and the official ``79999_iter.pth`` (zllrunning face-parsing.PyTorch, registry
    ``bisenet-official``) both load: facexlib's class keeps zllrunning's module tree (``cp.resnet.*``,
    ``cp.arm16/32``, ``cp.conv_head16/32``, ``cp.conv_avg``, ``ffm``, ``conv_out``, ``conv_out16``,
    ``conv_out32``) and forward. A ``state_dict`` wrapper and a leading ``module.`` (DataParallel)
    are removed. ``None``: RANDOM weights (tests), drawn from ``seed`` when given (the global RNG
    untouched), else from the global RNG. Errors are one line naming the file and the keys.
    """
    from facexlib.parsing.bisenet import BiSeNet

    if seed is None:
        net = BiSeNet(num_class=19)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = BiSeNet(num_class=19)
    if weights is None:
        return net

    source = "the state dict" if isinstance(weights, dict) else str(weights)
    state = weights if isinstance(weights, dict) else read_checkpoint(weights)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise VidinvertError(f"{source} does not hold a state dict of a BiSeNet ({BISENET_FILES})")
    state = {(k[len("module."):] if isinstance(k, str) and k.startswith("module.") else k): v
             for k, v in state.items()}
    strict_load(net, state, source, "bisenet", f"19 classes: {BISENET_FILES}")
    return net


class ParsingMasker:
    """Face-parsing masks with facexlib's BiSeNet (19 classes; input RGB 512x512, ImageNet-normalised).

    ``weights``: a path (``parsing_bisenet.pth`` or ``79999_iter.pth``) or a state dict, loaded by
    :func:`load_bisenet`; ``None`` builds RANDOM weights, which only the tests use to check shapes
    and plumbing.
    """

    def __init__(self, weights: Path | str | dict | None, device: torch.device | str = "cpu",
                 classes: Sequence[int] = FACE_CLASSES, threshold: float = 0.5):
        self.device = torch.device(device)
        self.classes = tuple(int(c) for c in classes)
        self.threshold = float(threshold)
        self.net = load_bisenet(weights).to(self.device).eval()
        mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        self._mean, self._std = mean, std

    @torch.no_grad()
    def class_probabilities(self, faces: torch.Tensor) -> torch.Tensor:
        """Aligned faces ``[B,3,S,S]`` RGB in [-1,1] -> softmax over the 19 CelebAMask-HQ classes
        ``[B,19,512,512]`` float32 (0 background, 1 skin, 2/3 brows, 4/5 eyes, 6 glasses, 7/8 ears,
        9 earring, 10 nose, 11 mouth, 12/13 lips, 14 neck, 15 necklace, 16 cloth, 17 hair, 18 hat)."""
        x = faces.to(self.device, torch.float32)
        if x.shape[-1] != 512:
            x = F.interpolate(x, size=(512, 512), mode="bilinear", align_corners=False,
                              antialias=x.shape[-1] > 512)
        x = ((x + 1) / 2 - self._mean) / self._std
        return self.net(x)[0].softmax(1)

    def face_probability(self, faces: torch.Tensor) -> torch.Tensor:
        """Aligned faces ``[B,3,S,S]`` RGB in [-1,1] -> probability of the face classes ``[B,1,512,512]``."""
        return self.class_probabilities(faces)[:, list(self.classes)].sum(1, keepdim=True)

    def masks(self, source: torch.Tensor, edited: torch.Tensor | None = None, *, size: int = 256,
              feather: float = 0.03) -> torch.Tensor:
        """Union of the face regions of ``source`` and ``edited`` ``[B,3,S,S]`` -> ``[B,1,size,size]``.

        The mask spans the whole crop at its own resolution ``size`` (``paste_faces`` accepts any)."""
        prob = self.face_probability(source)
        if edited is not None:
            prob = torch.maximum(prob, self.face_probability(edited))
        small = F.interpolate(prob, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return feather_mask((small > self.threshold).float(), size, feather=feather)


def load_parsing_masker(weights_dir: Path | str | None = None, device: torch.device | str = "cpu",
                        classes: Sequence[int] = FACE_CLASSES) -> ParsingMasker | None:
    """The BiSeNet masker when ``parsing_bisenet.pth`` (or else the official ``79999_iter.pth``) is
    found in the weights folders, else None."""
    path = find("bisenet", weights_dir) or find("bisenet-official", weights_dir)
    if path is None:
        log.info("face parsing weights (bisenet) not found: pasting with landmark masks")
        return None
    return ParsingMasker(path, device=device, classes=classes)
