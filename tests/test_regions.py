"""Region masks (--region): names, landmark parts on a real photo, parsing classes, feature-grid
averaging, and bit-identity outside the region through the paste."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidinvert.errors import VidinvertError
from vidinvert.face import align
from vidinvert.face.paste import combine_masks, paste_faces
from vidinvert.face.regions import (
    PARSING_CLASSES,
    REGIONS,
    RegionMasker,
    check_regions,
    feature_grid_mask,
    landmark_region_binary,
    landmark_region_masks,
    parse_regions,
    parsing_region_masks,
)
from vidinvert.face.stage import to_crop_normalised
from vidinvert.face.types import landmarks5_from_68

skimage_data = pytest.importorskip("skimage.data")
EYES, INNER_LIPS, MOUTH = list(range(36, 48)), list(range(60, 68)), list(range(48, 68))


@pytest.fixture(scope="module")
def astronaut():
    """The astronaut photo, dlib's 68 landmarks (frame and crop-normalised) and the FFHQ quad."""
    pytest.importorskip("dlib")
    from vidinvert.face import dlib_models

    img = skimage_data.astronaut()
    rects = dlib_models.frontal_detector()(img, 1)
    r = max(rects, key=lambda r: r.width() * r.height())
    lm = dlib_models.landmarks68(img, (r.left(), r.top(), r.right(), r.bottom()))
    quad = align.quad_from_68(lm)
    return img, lm, to_crop_normalised(quad, lm), quad


def _at(mask: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Mask values at crop-normalised points (nearest pixel)."""
    r = mask.shape[-1]
    ij = np.clip(np.floor(pts * r).astype(int), 0, r - 1)
    return mask[ij[:, 1], ij[:, 0]]


def test_parse_regions_validates_and_dedupes():
    assert parse_regions("Mouth, eyes,mouth") == ("mouth", "eyes")
    assert parse_regions(["brows", "nose,skin"]) == ("brows", "nose", "skin")
    assert parse_regions(None) == () and parse_regions("") == ()
    with pytest.raises(VidinvertError, match="unknown --region 'lips'"):
        parse_regions("mouth,lips")


def test_hair_and_neck_need_parsing_and_full_paste_is_refused():
    check_regions(("hair",), parsing=True)
    with pytest.raises(VidinvertError, match="hair.*parsing"):
        check_regions(("mouth", "hair"), parsing=False)
    with pytest.raises(VidinvertError, match="neck"):
        RegionMasker(("neck",), None)
    with pytest.raises(VidinvertError, match="--paste delta"):
        check_regions(("mouth",), parsing=True, paste_mode="full")
    check_regions((), parsing=False, paste_mode="full")  # no region: nothing to refuse


def test_landmark_regions_cover_the_part_they_name(astronaut):
    _, _, lm, _ = astronaut
    mouth = landmark_region_masks([lm], ["mouth"], 256)[0, 0].numpy()
    eyes = landmark_region_masks([lm], ["eyes"], 256)[0, 0].numpy()
    assert (_at(mouth, lm[INNER_LIPS]) > 0.5).all()
    assert (_at(mouth, lm[EYES]) == 0).all()
    assert (_at(eyes, lm[EYES]) > 0.5).all()
    assert (_at(eyes, lm[MOUTH]) == 0).all()
    # the mouth region's core is the outer-lip polygon: compare with skimage's rasteriser of the hull
    from scipy.spatial import ConvexHull
    from skimage.draw import polygon

    pts = lm[48:60] * 256 - 0.5
    hull = pts[ConvexHull(pts).vertices]
    rr, cc = polygon(hull[:, 1], hull[:, 0], (256, 256))
    inside = mouth[rr, cc]
    assert (inside > 0.5).mean() > 0.98
    # and it stays local: its support is a few times the lips' area, far from the whole face
    assert (mouth > 0).sum() < 6 * len(rr)
    assert (mouth > 0).sum() < 0.4 * landmark_region_binary(lm, ["face"], 256).sum()


def test_skin_excludes_eyes_and_mouth_and_face_contains_every_part(astronaut):
    _, _, lm, _ = astronaut
    skin = landmark_region_binary(lm, ["skin"], 256)
    face = landmark_region_binary(lm, ["face"], 256)
    assert (_at(skin, lm[EYES]) == 0).all() and (_at(skin, lm[INNER_LIPS]) == 0).all()
    for part in ("mouth", "eyes", "nose"):
        b = landmark_region_binary(lm, [part], 256)
        assert (b & ~face.astype(bool)).sum() < 0.02 * b.sum(), part
    both = landmark_region_binary(lm, ["mouth", "eyes"], 256)
    assert np.array_equal(both, landmark_region_binary(lm, ["mouth"], 256) | landmark_region_binary(lm, ["eyes"], 256))


def test_five_point_and_missing_landmarks_give_plausible_parts(astronaut):
    _, _, lm, _ = astronaut
    lm5 = landmarks5_from_68(lm)
    mouth = landmark_region_masks([lm5], ["mouth"], 256)[0, 0].numpy()
    eyes = landmark_region_masks([lm5], ["eyes"], 256)[0, 0].numpy()
    assert (_at(mouth, lm[INNER_LIPS]) > 0.5).all() and (_at(mouth, lm[EYES]) == 0).all()
    assert (_at(eyes, lm5[:2]) > 0.5).all() and (_at(eyes, lm[INNER_LIPS]) == 0).all()
    canon = landmark_region_masks([None], ["face"], 64)
    assert canon.shape == (1, 1, 64, 64) and canon[0, 0, 32, 32] > 0.5


@pytest.mark.parametrize("regions", [["mouth"], ["eyes", "brows"], ["skin"], ["face"]])
def test_feathered_mask_range_and_grid_average(astronaut, regions):
    _, _, lm, _ = astronaut
    m = landmark_region_masks([lm, None], regions, 256)
    assert m.dtype == torch.float32 and m.shape == (2, 1, 256, 256)
    assert float(m.min()) >= 0.0 and float(m.max()) <= 1.0
    assert ((m > 0) & (m < 1)).any()  # soft edge
    g = feature_grid_mask(m)
    assert g.shape == (2, 1, 16, 16)
    blocks = m.double().numpy().reshape(2, 1, 16, 16, 16, 16).mean(axis=(3, 5))  # independent block mean
    np.testing.assert_allclose(g.numpy(), blocks, rtol=0, atol=3e-6)
    torch.testing.assert_close(g, F.avg_pool2d(m, 16))
    # a cell is exactly 0 iff the mask has no support in its 16x16 block
    support = (m.numpy() > 0).reshape(2, 1, 16, 16, 16, 16).any(axis=(3, 5))
    assert np.array_equal(g.numpy() > 0, support)
    with pytest.raises(ValueError, match="multiple"):
        feature_grid_mask(m[..., :250, :250])


def test_parsing_regions_follow_the_class_map():
    probs = torch.zeros(1, 19, 64, 64)
    probs[:, 0] = 1.0
    probs[:, :, 40:50, 20:44] = 0
    probs[:, 12, 40:45, 20:44] = 1.0  # upper lip
    probs[:, 13, 45:50, 20:44] = 1.0  # lower lip
    probs[:, :, 10:16, 30:40] = 0
    probs[:, 17, 10:16, 30:40] = 1.0  # a hair patch
    mouth = parsing_region_masks(probs, ["mouth"], 64, feather=0.0)[0, 0]
    assert bool((mouth[40:50, 20:44] == 1).all()) and float(mouth.sum()) == 10 * 24
    hair = parsing_region_masks(probs, ["hair"], 64, feather=0.0)[0, 0]
    assert float(hair.sum()) == 6 * 10 and bool((hair[10:16, 30:40] == 1).all())
    soft = parsing_region_masks(probs, ["mouth", "hair"], 128)
    assert soft.shape == (1, 1, 128, 128) and 0 <= float(soft.min()) and float(soft.max()) <= 1
    assert set(PARSING_CLASSES) == set(REGIONS)


def test_region_masker_with_random_parser_runs_on_crops():
    pytest.importorskip("facexlib")
    from vidinvert.face.masks import ParsingMasker

    rm = RegionMasker(("hair", "mouth"), ParsingMasker(None), size=64)
    assert rm.source == "parsing"
    crops = torch.rand(2, 3, 128, 128) * 2 - 1
    m = rm.masks([None, None], crops, crops.flip(-1))
    assert m.shape == (2, 1, 64, 64) and float(m.min()) >= 0 and float(m.max()) <= 1


def test_region_paste_is_bit_identical_outside_the_region(astronaut):
    img, _, lm, quad = astronaut
    s = 256
    crop = align.warp_faces([img], quad[None], s)
    edited = (crop + 0.4 * torch.randn_like(crop)).clamp(-1, 1)  # an edit that changes every crop pixel
    from vidinvert.face.masks import outline_masks

    paste_mask = outline_masks([lm], 256)
    region = landmark_region_masks([lm], ["mouth"], 256)
    mask = combine_masks(paste_mask, region)
    assert float(mask.max()) <= 1 and torch.equal(mask == 0, (paste_mask == 0) | (region == 0))
    out = paste_faces([img], quad[None], edited, mask, mode="delta", recon=crop)[0]
    # independent warp of the region mask into the frame (OpenCV), 3 px slack for interpolation reach
    m = align.frame_to_crop(quad[None], 256)[0]
    fm = cv2.warpAffine(region[0, 0].numpy(), m, (img.shape[1], img.shape[0]),
                        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    outside = cv2.dilate((fm > 0).astype(np.uint8), np.ones((7, 7), np.uint8)) == 0
    assert np.array_equal(out[outside], img[outside])
    changed = (out != img).any(-1)
    assert changed.sum() > 200  # the edit did land inside the mouth region
    mouth_px = lm[MOUTH].mean(0)  # crop-normalised mouth centre -> frame
    from vidinvert.face.stage import from_crop_normalised

    cx, cy = from_crop_normalised(quad, mouth_px[None])[0]
    ys, xs = np.nonzero(changed)
    assert np.hypot(xs - cx, ys - cy).max() < 0.25 * np.hypot(*(quad[3] - quad[0]))


def test_combine_masks_resizes_and_passes_none():
    pm = torch.rand(1, 1, 64, 64)
    assert combine_masks(pm, None) is pm
    rm = torch.zeros(1, 1, 256, 256)
    rm[..., 64:192, 64:192] = 1
    out = combine_masks(pm, rm)
    assert out.shape == (1, 1, 64, 64)
    assert bool((out[..., :8, :] == 0).all()) and torch.equal(out[..., 24:40, 24:40], pm[..., 24:40, 24:40])
