"""Face-part region masks for local edits (``--region mouth,eyes``).

A region mask is a soft ``[B,1,size,size]`` float32 mask in [0,1] over the aligned crop (the same
crop-normalised frame as the paste masks of :mod:`vidinvert.face.masks`), with exact zeros
outside its support and in a thin band along the crop border. It is used twice:

- in feature space, area-averaged to the 16x16 grid of the feature code F
  (:func:`feature_grid_mask`): one feature cell covers 64x64 px of a 1024 crop (1/16 of the
  crop side), so parts closer than that share cells (eyes and brows do);
- in the paste, multiplied into the paste mask (:func:`vidinvert.face.paste.combine_masks`), so
  pixels outside the region stay bit-identical to the source.

Two sources, per frame on the aligned (temporally smoothed) crop:

- face parsing (BiSeNet, CelebAMask-HQ's 19 classes) when its weights are found: a region is the
  union of its classes (:data:`PARSING_CLASSES`), thresholded, then feathered;
- landmarks otherwise: polygons of dlib's 68 points (crop-normalised ``AlignedFace.landmarks_crop``),
  or ellipses placed from 5 points (RetinaFace) or from a canonical FFHQ face when a frame has
  none. ``hair`` and ``neck`` have no landmarks and need the parsing weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vidinvert.errors import VidinvertError
from vidinvert.face.masks import (
    CANONICAL_LM5,
    FACE_CLASSES,
    ellipse_from_5,
    feather_mask,
    outline_polygon,
)
from vidinvert.specs import REGIONS, parse_regions  # noqa: F401  (the grammar, re-exported)

#: Regions that landmarks cannot define.
PARSING_ONLY = ("hair", "neck")
#: CelebAMask-HQ classes of each region (0 background, 1 skin, 2/3 brows, 4/5 eyes, 6 glasses,
#: 7/8 ears, 9 earring, 10 nose, 11 mouth, 12/13 lips, 14 neck, 15 necklace, 16 cloth, 17 hair, 18 hat).
PARSING_CLASSES: dict[str, tuple[int, ...]] = {
    "mouth": (11, 12, 13),
    "eyes": (4, 5, 6),
    "brows": (2, 3),
    "nose": (10,),
    "skin": (1, 10),
    "face": FACE_CLASSES,
    "hair": (17,),
    "neck": (14,),
}
#: Default feather of region masks (fraction of the crop side; see ``feather_mask``).
REGION_FEATHER = 0.02
#: Landmark parts: extra growth of each binary part before feathering (fraction of the crop side).
_GROW = {"mouth": 0.02, "eyes": 0.025, "brows": 0.012, "nose": 0.015}
_BROW_THICKNESS = 0.03
_MOUTH = slice(48, 60)
_EYES = (slice(36, 42), slice(42, 48))
_BROWS = (slice(17, 22), slice(22, 27))
_NOSE = slice(27, 36)


def check_regions(regions: Sequence[str], *, parsing: bool, paste_mode: str | None = None) -> None:
    """Refuse what cannot be honoured: ``hair``/``neck`` without parsing weights, any region with
    ``--paste full`` (w~ changes the layers after K over the whole crop; only the paste keeps it local)."""
    if not regions:
        return
    if paste_mode == "full":
        raise VidinvertError(
            "--region needs --paste delta: with --paste full the edited latent changes the whole face, "
            "only the delta paste keeps the edit inside the region"
        )
    missing = [r for r in regions if r in PARSING_ONLY]
    if missing and not parsing:
        raise VidinvertError(
            f"--region {','.join(missing)} needs the face-parsing weights (bisenet, parsing_bisenet.pth): "
            "landmarks only define mouth, eyes, brows, nose, skin and face"
        )


# ----------------------------------------------------------------------------------------------
# landmark regions
def _fill_hull(canvas: np.ndarray, pts: np.ndarray, r: int) -> None:
    hull = cv2.convexHull(np.round((pts * r - 0.5) * 16).astype(np.int32))
    cv2.fillConvexPoly(canvas, hull, 1, lineType=cv2.LINE_8, shift=4)


def _ellipse(canvas: np.ndarray, centre, axes, angle: float, r: int) -> None:
    c = (round((centre[0] * r - 0.5) * 16), round((centre[1] * r - 0.5) * 16))
    a = (max(1, round(axes[0] * r * 16)), max(1, round(axes[1] * r * 16)))
    cv2.ellipse(canvas, c, a, angle, 0, 360, 1, -1, lineType=cv2.LINE_8, shift=4)


def _grow(canvas: np.ndarray, frac: float, r: int) -> np.ndarray:
    rad = round(frac * r)
    if rad <= 0:
        return canvas
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * rad + 1, 2 * rad + 1))
    return cv2.dilate(canvas, k)


def _part_68(lm: np.ndarray, part: str, r: int) -> np.ndarray:
    c = np.zeros((r, r), np.uint8)
    if part == "mouth":
        _fill_hull(c, lm[_MOUTH], r)
    elif part == "eyes":
        for sl in _EYES:
            _fill_hull(c, lm[sl], r)
    elif part == "brows":
        t = max(1, round(_BROW_THICKNESS * r))
        for sl in _BROWS:
            pts = np.round((lm[sl] * r - 0.5) * 16).astype(np.int32)
            cv2.polylines(c, [pts], False, 1, thickness=t, lineType=cv2.LINE_8, shift=4)
    elif part == "nose":
        _fill_hull(c, lm[_NOSE], r)
    elif part == "face":
        poly = np.round((outline_polygon(lm) * r - 0.5) * 16).astype(np.int32)
        cv2.fillPoly(c, [poly], 1, lineType=cv2.LINE_8, shift=4)
        return c
    return _grow(c, _GROW[part], r)


def _part_5(lm: np.ndarray, part: str, r: int) -> np.ndarray:
    """Ellipses placed from 5 points (eye centres, nose tip, mouth corners): coarse parts."""
    c = np.zeros((r, r), np.uint8)
    el, er, nose, ml, mr = lm
    ed = max(float(np.hypot(*(er - el))), 1e-6)
    ex = (er - el) / ed
    ey = np.array([-ex[1], ex[0]])  # perpendicular, pointing down the face
    ang = float(np.degrees(np.arctan2(ex[1], ex[0])))
    if part == "eyes":
        for e in (el, er):
            _ellipse(c, e, (0.3 * ed, 0.17 * ed), ang, r)
    elif part == "brows":
        for e in (el, er):
            _ellipse(c, e - 0.3 * ed * ey, (0.36 * ed, 0.12 * ed), ang, r)
    elif part == "nose":
        mid = (el + er) / 2
        _ellipse(c, 0.4 * mid + 0.6 * nose, (0.25 * ed, 0.6 * float(np.hypot(*(nose - mid))) + 0.05 * ed), ang, r)
    elif part == "mouth":
        mw = max(float(np.hypot(*(mr - ml))), 0.3 * ed)
        mang = float(np.degrees(np.arctan2(mr[1] - ml[1], mr[0] - ml[0])))
        _ellipse(c, (ml + mr) / 2 + 0.12 * mw * ey, (0.65 * mw, 0.35 * mw), mang, r)
    elif part == "face":
        centre, axes, a = ellipse_from_5(lm)
        _ellipse(c, centre, axes, a, r)
    return c


def landmark_region_binary(landmarks: np.ndarray | None, regions: Sequence[str], size: int) -> np.ndarray:
    """Unfeathered union of the named parts: uint8 ``[size,size]`` in {0,1}.

    landmarks: crop-normalised (0..1) ``[68,2]`` (dlib layout), ``[5,2]`` or None (canonical face).
    ``skin`` is the face minus eyes, brows and mouth (nose included).
    """
    lm = CANONICAL_LM5 if landmarks is None else np.asarray(landmarks, np.float64)
    part = _part_68 if lm.shape[0] == 68 else _part_5
    out = np.zeros((size, size), np.uint8)
    for name in regions:
        if name in PARSING_ONLY:
            raise VidinvertError(f"region {name!r} cannot be drawn from landmarks: it needs face-parsing weights")
        if name == "skin":
            holes = part(lm, "eyes", size) | part(lm, "brows", size) | part(lm, "mouth", size)
            out |= part(lm, "face", size) & (1 - holes)
        else:
            out |= part(lm, name, size)
    return out


def landmark_region_masks(landmarks_crop: Sequence[np.ndarray | None], regions: Sequence[str], size: int = 256, *,
                          feather: float = REGION_FEATHER, device=None) -> torch.Tensor:
    """Feathered landmark region masks ``[B,1,size,size]`` float32 in [0,1] (exact zeros outside).

    Feathered like :func:`~vidinvert.face.masks.feather_mask` (square dilation by ``feather * size``,
    Gaussian blur of half that sigma, zeros below 1/512 and in a 3% border band), with OpenCV.
    """
    rad = round(feather * size)
    band = max(1, int(np.ceil(0.03 * size)))
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * rad + 1, 2 * rad + 1)) if rad > 0 else None
    out = np.zeros((len(landmarks_crop), 1, size, size), np.float32)
    for i, lm in enumerate(landmarks_crop):
        m = landmark_region_binary(lm, regions, size).astype(np.float32)
        if rad > 0:
            m = cv2.GaussianBlur(cv2.dilate(m, kernel), (0, 0), rad / 2, borderType=cv2.BORDER_CONSTANT)
        m[m < 1.0 / 512] = 0
        m[:band], m[-band:], m[:, :band], m[:, -band:] = 0, 0, 0, 0
        out[i, 0] = np.minimum(m, 1.0)
    return torch.from_numpy(out).to(device or "cpu")


# ----------------------------------------------------------------------------------------------
# parsing regions
def parsing_region_masks(probs: torch.Tensor, regions: Sequence[str], size: int = 256, *,
                         feather: float = REGION_FEATHER, threshold: float = 0.5) -> torch.Tensor:
    """Class probabilities ``[B,19,H,W]`` (``ParsingMasker.class_probabilities``) -> feathered
    region masks ``[B,1,size,size]`` float32 in [0,1]: the summed probability of the regions'
    classes, resized to ``size`` (antialiased), above ``threshold``, then feathered."""
    classes = sorted({c for r in regions for c in PARSING_CLASSES[r]})
    p = probs[:, classes].float().sum(1, keepdim=True)
    if p.shape[-1] != size:
        p = F.interpolate(p, size=(size, size), mode="bilinear", align_corners=False, antialias=p.shape[-1] > size)
    return feather_mask((p > threshold).float(), size, feather=feather)


class RegionMasker:
    """Region masks of one run: parsing when a :class:`~vidinvert.face.masks.ParsingMasker` is given,
    landmarks otherwise. Refuses ``hair``/``neck`` without a parser at construction."""

    def __init__(self, regions: Sequence[str], parser=None, *, size: int = 256, feather: float = REGION_FEATHER):
        self.regions = tuple(regions)
        if not self.regions:
            raise ValueError("RegionMasker needs at least one region")
        check_regions(self.regions, parsing=parser is not None)
        self.parser = parser
        self.size = int(size)
        self.feather = float(feather)

    @property
    def source(self) -> str:
        return "parsing" if self.parser is not None else "landmarks"

    def masks(self, landmarks_crop: Sequence[np.ndarray | None], source: torch.Tensor | None = None,
              edited: torch.Tensor | None = None, *, device=None) -> torch.Tensor:
        """``[B,1,size,size]`` float32 region masks of B aligned frames.

        Parsing: from the source crops ``[B,3,S,S]`` RGB in [-1,1] (united with the ``edited``
        crops when given, so a mouth that opens is not clipped); landmarks: from ``landmarks_crop``.
        """
        if self.parser is None:
            return landmark_region_masks(landmarks_crop, self.regions, self.size, feather=self.feather,
                                         device=device if device is not None else
                                         (source.device if source is not None else None))
        if source is None:
            raise ValueError("parsing region masks need the source crops")
        probs = self.parser.class_probabilities(source)
        if edited is not None:
            probs = torch.maximum(probs, self.parser.class_probabilities(edited))
        m = parsing_region_masks(probs, self.regions, self.size, feather=self.feather,
                                 threshold=self.parser.threshold)
        return m.to(device if device is not None else source.device)


def feature_grid_mask(mask: torch.Tensor, grid: int = 16) -> torch.Tensor:
    """Area average of a crop mask ``[B,1,S,S]`` onto the feature grid ``[B,1,grid,grid]`` float32.

    Cell (i, j) is the mean of the mask over the crop block it covers (S/grid pixels square; 64 px
    of a 1024 crop for the 16x16 code), so it is exactly 0 where the mask's support misses the cell.
    S must be a multiple of ``grid``.
    """
    s = mask.shape[-1]
    if s % grid:
        raise ValueError(f"mask size {s} is not a multiple of the feature grid {grid}")
    return F.avg_pool2d(mask.float(), kernel_size=s // grid, stride=s // grid)
