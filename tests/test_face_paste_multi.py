"""Several faces pasted into one frame: depth order, no bleeding into a nearer face, bit-identity outside."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from tests.multi_face_clips import background
from vidinvert.face import align
from vidinvert.face.paste import paste_faces
from vidinvert.face.paste_multi import depth_order, paste_faces_multi

S, R = 64, 64


def _disc(radius=0.4):
    yy, xx = np.mgrid[:R, :R]
    d = np.hypot(xx + 0.5 - R / 2, yy + 0.5 - R / 2) / R
    return torch.as_tensor((d <= radius).astype(np.float32))[None]


def _frame_mask(mask: torch.Tensor, quad: np.ndarray, shape) -> np.ndarray:
    """Independent warp of a crop-space mask ``[1,R,R]`` into the frame with OpenCV."""
    m = align.frame_to_crop(quad[None], R)[0]
    return cv2.warpAffine(mask[0].numpy(), m, (shape[1], shape[0]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _scene():
    frame = background(320, 240, seed=3)
    quads = align.params_to_quad(np.array([[130.0, 120, 50, 0], [190.0, 125, 70, 8]]))  # far (small), near
    g = torch.Generator().manual_seed(0)
    recon = torch.rand(2, 3, S, S, generator=g) - 0.5
    edited = recon.clone()
    edited[0] += 0.5          # the far face is changed, the near one is not
    masks = torch.stack([_disc(), _disc()])
    return frame, quads, recon, edited, masks


def test_depth_order_is_by_footprint():
    q = align.params_to_quad(np.array([[0.0, 0, 30, 0], [0, 0, 10, 0], [0, 0, 30, 0], [5, 5, 20, 0]]))
    assert depth_order(q).tolist() == [1, 3, 0, 2]


def test_farther_face_does_not_bleed_into_the_nearer_one():
    frame, quads, recon, edited, masks = _scene()
    out = paste_faces_multi(frame, edited, quads, masks, "delta", recon)
    fm_far, fm_near = (_frame_mask(masks[k], quads[k], frame.shape) for k in range(2))
    overlap = (fm_near >= 0.999) & (fm_far >= 0.5)
    assert overlap.sum() > 500                                   # the faces really overlap
    assert np.array_equal(out[fm_near >= 0.999], frame[fm_near >= 0.999])  # near face: untouched
    naive = paste_faces([frame.copy()], quads[:1], edited[:1], masks[:1], mode="delta", recon=recon[:1])[0]
    assert not np.array_equal(naive[overlap], frame[overlap])   # a plain paste would bleed there
    only_far = (fm_far >= 0.999) & (cv2.dilate((fm_near > 0).astype(np.uint8), np.ones((7, 7), np.uint8)) == 0)
    assert only_far.sum() > 500 and np.array_equal(out[only_far], naive[only_far])
    assert (out[only_far].astype(int) - frame[only_far]).mean() > 50  # the far edit is there (+0.5 ~ 64 levels)
    support = cv2.dilate(((fm_far > 0) | (fm_near > 0)).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    assert np.array_equal(out[~support], frame[~support])       # bit-identical outside every mask


def test_order_of_the_inputs_does_not_matter_and_weights_apply():
    frame, quads, recon, edited, masks = _scene()
    edited[1] -= 0.3
    a = paste_faces_multi(frame, edited, quads, masks, "full", recon, [1.0, 0.5])
    b = paste_faces_multi(frame, edited.flip(0), quads[::-1], masks.flip(0), "full", recon.flip(0), [0.5, 1.0])
    assert np.array_equal(a, b)
    # the nearer face is pasted last, over the farther one, with its own weight
    near_only = paste_faces([frame.copy()], quads[1:], edited[1:], masks[1:], mode="full", weights=[0.5])[0]
    core = _frame_mask(masks[1], quads[1], frame.shape) >= 0.999
    assert np.array_equal(a[core], near_only[core])
    off = paste_faces_multi(frame, edited, quads, masks, "full", recon, [0.0, 0.5])
    assert np.array_equal(off, near_only)
    assert np.array_equal(paste_faces_multi(frame, edited[:0], quads[:0], masks[:0]), frame)
