"""Several faces pasted into one image in depth order (``paste_faces_depth``).

References: the one-face ``paste_faces`` of the video pipeline (separate code), OpenCV's
``warpAffine`` for the masks in the image, and a float64 numpy blend of the depth-ordered formula.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from vidinvert.face import align, masks, paste


def _square_quad(cx, cy, side):
    h = side / 2
    return np.array([[cx - h, cy - h], [cx - h, cy + h], [cx + h, cy + h], [cx + h, cy - h]], np.float64)


def _frame_mask(mask: torch.Tensor, quad: np.ndarray, shape) -> np.ndarray:
    s = mask.shape[-1]
    m = align.frame_to_crop(quad[None], s)[0]
    return cv2.warpAffine(mask[0, 0].numpy().astype(np.float64), m, (shape[1], shape[0]),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _scene():
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 256, (220, 300, 3), dtype=np.uint8), (0, 0), 2)
    far = _square_quad(110, 110, 90)    # smaller: farther
    near = _square_quad(175, 115, 150)  # larger: nearer, overlapping the far face's right side
    quads = np.stack([near, far])       # given near first: the order must not matter
    m = masks.outline_masks([None, None], 128)
    return img, quads, m


def _solid(colours, size=64):
    return torch.tensor(colours, dtype=torch.float32).view(-1, 3, 1, 1).expand(-1, 3, size, size).contiguous() / 127.5 - 1


def test_one_face_matches_the_video_paste():
    img, quads, m = _scene()
    rng = torch.Generator().manual_seed(0)
    edited = torch.rand(1, 3, 64, 64, generator=rng) * 2 - 1
    recon = torch.rand(1, 3, 64, 64, generator=rng) * 2 - 1
    for mode in ("delta", "full"):
        got = paste.paste_faces_depth(img, quads[:1], edited, m[:1], mode=mode, recon=recon)
        ref = paste.paste_faces([img], quads[:1], edited, m[:1], mode=mode, recon=recon)[0]
        assert np.abs(got.astype(int) - ref).max() <= 1, mode
        assert (got != img).any()


def test_two_faces_depth_order_without_bleeding():
    img, quads, m = _scene()
    colours = [[250, 20, 20], [20, 20, 250]]  # near red, far blue
    edited = _solid(colours)
    out = paste.paste_faces_depth(img, quads, edited, m, mode="full")
    # the input order does not matter: depth comes from the faces' sizes
    swapped = paste.paste_faces_depth(img, quads[::-1].copy(), edited.flip(0), m.flip(0), mode="full")
    assert np.array_equal(out, swapped)
    f_near, f_far = _frame_mask(m[:1], quads[0], img.shape), _frame_mask(m[1:], quads[1], img.shape)
    # independent float64 blend: far face with its mask cut by the near one, then the near face
    ref = img.astype(np.float64)
    a = (f_far * (1 - f_near))[..., None]
    ref = ref + a * (np.array(colours[1], float) - ref)
    ref = ref + f_near[..., None] * (np.array(colours[0], float) - ref)
    assert np.abs(out - ref).max() < 6 and np.abs(out - ref).mean() < 0.05
    # no blue inside the near face: where its mask is 1 the pixel is the near colour exactly
    core = f_near > 0.999
    assert core.sum() > 2000 and (out[core] == colours[0]).all()
    # outside both masks' supports (3 px slack for interpolation reach): bit-identical
    support = cv2.dilate(((f_near > 0) | (f_far > 0)).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    assert np.array_equal(out[~support], img[~support])
    # the far face is still pasted where the near one does not reach
    far_only = (f_far > 0.999) & (cv2.dilate((f_near > 0).astype(np.uint8), np.ones((7, 7), np.uint8)) == 0)
    assert far_only.sum() > 500 and (out[far_only] == colours[1]).all()


def test_delta_of_unedited_faces_is_exact_and_inplace_writes_the_given_array():
    img, quads, m = _scene()
    recon = torch.rand(2, 3, 64, 64) * 2 - 1
    out = paste.paste_faces_depth(img, quads, recon.clone(), m, mode="delta", recon=recon)
    assert np.array_equal(out, img)
    buf = img.copy()
    res = paste.paste_faces_depth(buf, quads, _solid([[0, 0, 0], [0, 0, 0]]), m, mode="full", inplace=True)
    assert res is buf and (buf != img).any()
    assert list(paste.depth_order(quads)) == [1, 0]


def test_weights_scale_each_face_and_zero_skips_it():
    """Video fades: a face's weight scales its mask (as the one-face video paste does); weight 0
    pastes nothing of that face, which still cuts the farther face's mask."""
    img, quads, m = _scene()
    edited = _solid([[250, 20, 20], [20, 250, 20]])
    full = paste.paste_faces_depth(img, quads, edited, m, mode="full")
    half = paste.paste_faces_depth(img, quads, edited, m, mode="full", weights=[0.5, 0.5])
    near_half = paste.paste_faces([img.copy()], quads[:1], edited[:1], m[:1], mode="full", weights=[0.5])[0]
    core = _frame_mask(m[:1], quads[0], img.shape) >= 0.999   # inside the nearer face's full mask
    assert np.abs(half[core].astype(int) - near_half[core]).max() <= 1
    ref = np.round(img[core] + 0.5 * (full[core].astype(float) - img[core]))  # halfway to the full paste
    assert np.abs(half[core] - ref).max() <= 1
    off = paste.paste_faces_depth(img, quads, edited, m, mode="full", weights=[0.0, 1.0])
    assert np.array_equal(off[core], img[core])                # the near face is not pasted ...
    far_core = (_frame_mask(m[1:], quads[1], img.shape) >= 0.999) & ~(_frame_mask(m[:1], quads[0], img.shape) > 0)
    assert far_core.sum() > 100 and np.array_equal(off[far_core], full[far_core])  # ... the far one is
