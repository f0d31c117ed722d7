"""Paste-back and masks: round trip quality, bit-identity outside the mask, delta vs full, parsing plumbing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from skimage import data as skimage_data

from vidinvert.errors import VidinvertError
from vidinvert.face import align, masks, paste
from vidinvert.face.stage import to_crop_normalised


@pytest.fixture(scope="module")
def scene():
    """Astronaut, its dlib landmarks, FFHQ quad."""
    from vidinvert.face.detect import DlibDetector

    img = skimage_data.astronaut()
    face = DlibDetector().detect([img])[0][0]
    quad = align.quad_from_68(face.landmarks68)
    return img, face, quad


def _frame_mask(mask: torch.Tensor, quad: np.ndarray, shape) -> np.ndarray:
    """Independent warp of a crop-space mask into the frame with OpenCV (bilinear, zero border)."""
    s = mask.shape[-1]
    m = align.frame_to_crop(quad[None], s)[0]  # dst (frame) -> src (crop), as WARP_INVERSE_MAP wants
    return cv2.warpAffine(mask[0, 0].numpy(), m, (shape[1], shape[0]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _psnr(a, b):
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


@pytest.mark.parametrize("size", [1024, 256])
def test_align_then_paste_unedited_round_trip(scene, size):
    img, face, quad = scene
    crop = align.warp_faces([img], quad[None], size)
    mask = masks.outline_masks([to_crop_normalised(quad, face.landmarks68)])
    out = paste.paste_faces([img], quad[None], crop, mask, mode="full")[0]
    fm = _frame_mask(mask, quad, img.shape)
    core = fm >= 0.5
    assert core.sum() > 4000  # the face, not a sliver
    assert _psnr(out[core], img[core]) >= 40.0
    # outside the mask's support (with 3 px of slack for interpolation reach) the frame is identical
    outside = cv2.dilate((fm > 0).astype(np.uint8), np.ones((7, 7), np.uint8)) == 0
    assert outside.sum() > 0.8 * outside.size
    assert np.array_equal(out[outside], img[outside])
    changed = np.argwhere((out != img).any(-1))
    assert changed[:, 1].min() >= quad[:, 0].min() and changed[:, 1].max() <= quad[:, 0].max()


def test_delta_of_unedited_face_and_zero_weight_are_exact(scene):
    img, face, quad = scene
    g = torch.Generator().manual_seed(0)
    recon = torch.nn.functional.interpolate(torch.rand(1, 3, 16, 16, generator=g) * 1.6 - 0.8, size=256,
                                            mode="bilinear", align_corners=False)
    mask = masks.outline_masks([None], 256)
    out = paste.paste_faces([img], quad[None], recon, mask, mode="delta", recon=recon.clone())[0]
    assert np.array_equal(out, img)
    out0 = paste.paste_faces([img], quad[None], recon, mask, mode="full", weights=[0.0])[0]
    assert np.array_equal(out0, img)
    # half weight in full mode moves pixels half way
    full = paste.paste_faces([img], quad[None], recon, mask, mode="full")[0].astype(float)
    half = paste.paste_faces([img], quad[None], recon, mask, mode="full", weights=[0.5])[0].astype(float)
    sel = np.abs(full - img) > 20
    np.testing.assert_allclose(half[sel], (img[sel] + full[sel]) / 2, atol=1.01)


def test_delta_keeps_source_detail_that_full_loses(scene):
    """An imperfect generator (blur + colour shift) renders the source and the edited face: delta
    mode is much closer to the ideal result (source + the edit's change) than full mode."""
    img, face, quad = scene
    size = 512
    src_crop = align.warp_faces([img], quad[None], size)

    def generator(x):  # renders any face imperfectly: blur + colour shift
        y = cv2.GaussianBlur(x[0].permute(1, 2, 0).numpy(), (0, 0), 3.0)
        shift = torch.tensor([0.06, -0.03, 0.02]).view(1, 3, 1, 1)
        return (torch.from_numpy(y).permute(2, 0, 1)[None] + shift).clamp(-1, 1)

    lmc = to_crop_normalised(quad, face.landmarks68) * size
    yy, xx = np.mgrid[0:size, 0:size]
    mouth = lmc[48:60].mean(0)
    bump = torch.from_numpy(0.35 * np.exp(-((xx - mouth[0]) ** 2 + (yy - mouth[1]) ** 2) / (2 * 25.0**2))).float()
    recon, edited = generator(src_crop), generator(src_crop + bump)
    mask = masks.outline_masks([lmc / size])
    ideal = paste.paste_faces([img], quad[None], bump.expand(1, 3, size, size), mask, mode="delta",
                              recon=torch.zeros(1, 3, size, size))[0]
    d = paste.paste_faces([img], quad[None], edited, mask, mode="delta", recon=recon)[0]
    f = paste.paste_faces([img], quad[None], edited, mask, mode="full")[0]
    fc = paste.paste_faces([img], quad[None], edited, mask, mode="full", color_reference=src_crop)[0]
    core = _frame_mask(mask, quad, img.shape) > 0
    p_delta, p_full, p_full_c = (_psnr(x[core], ideal[core]) for x in (d, f, fc))
    assert p_delta > p_full + 10 and p_delta > p_full_c + 10
    assert p_full_c > p_full  # colour matching removes the shift


def test_match_color_against_numpy_weighted_stats():
    g = torch.Generator().manual_seed(1)
    edited = torch.rand(2, 3, 32, 32, generator=g) * 0.5
    ref = torch.rand(2, 3, 32, 32, generator=g) * 1.2 - 0.8
    m = torch.rand(2, 1, 32, 32, generator=g)
    out = paste.match_color(edited, ref, m).numpy()
    r, w = ref.numpy(), m.numpy()
    for b in range(2):
        for c in range(3):
            wt = w[b, 0] / w[b, 0].sum()
            mu_r = (wt * r[b, c]).sum()
            sd_r = np.sqrt((wt * (r[b, c] - mu_r) ** 2).sum())
            mu_o = (wt * out[b, c]).sum()
            sd_o = np.sqrt((wt * (out[b, c] - mu_o) ** 2).sum())
            assert abs(mu_o - mu_r) < 1e-4 and abs(sd_o - sd_r) < 1e-4


def test_outline_masks_feathered_with_exact_zero_margin():
    rng = np.random.default_rng(0)
    lm5 = masks.CANONICAL_LM5
    m = masks.outline_masks([None, lm5 + rng.normal(0, 0.005, lm5.shape)], 128)
    assert m.shape == (2, 1, 128, 128)
    assert float(m.min()) == 0.0 and float(m.max()) <= 1.0
    for i in range(2):
        assert float(m[i, 0, 70, 64]) > 0.99  # centre of the face
        mi = m[i, 0]
        border = torch.cat([mi[:3].flatten(), mi[-3:].flatten(), mi[:, :3].flatten(), mi[:, -3:].flatten()])
        assert torch.all(border == 0)
        vals = m[i, 0][(m[i, 0] > 0) & (m[i, 0] < 1)]
        assert vals.numel() > 200  # a soft edge, not a hard cut


def test_parsing_masker_plumbing_with_random_weights(tmp_path):
    """No BiSeNet weights exist here: random weights check loading, shapes, union and zeros only."""
    torch.manual_seed(0)
    pm = masks.ParsingMasker(None)
    path = tmp_path / "parsing_bisenet.pth"
    torch.save(pm.net.state_dict(), path)
    loaded = masks.load_parsing_masker(tmp_path)
    assert loaded is not None
    g = torch.Generator().manual_seed(2)
    src = torch.rand(1, 3, 128, 128, generator=g) * 2 - 1
    edt = torch.rand(1, 3, 128, 128, generator=g) * 2 - 1
    p1 = pm.face_probability(src)
    p2 = loaded.face_probability(src)
    assert p1.shape == (1, 1, 512, 512)
    torch.testing.assert_close(p1, p2)
    assert float(p1.min()) >= 0 and float(p1.max()) <= 1 + 1e-6
    m_src = loaded.masks(src, None, size=64)
    m_union = loaded.masks(src, edt, size=64)
    assert m_union.shape == (1, 1, 64, 64)
    assert torch.all(m_union >= m_src - 1e-6)  # the union never removes face pixels
    assert torch.all(m_union[..., :2, :] == 0) and torch.all(m_union[..., :, -2:] == 0)
    assert masks.load_parsing_masker(tmp_path / "empty") is None
    bad = tmp_path / "bad.pth"
    torch.save({"x": torch.zeros(1)}, bad)
    with pytest.raises(VidinvertError, match="parsing_bisenet"):
        masks.ParsingMasker(bad)


def test_masks_and_training_load_bisenet_files_alike(tmp_path):
    """One loader: the paste masker and the training's parsing loss accept the same files —
    facexlib's parsing_bisenet.pth, the official 79999_iter.pth (zllrunning's module tree, here
    also DataParallel-wrapped and inside a 'state_dict') — and refuse the same wrong file."""
    import torchvision

    from vidinvert.train.losses import build_bisenet

    ref = build_bisenet(None, seed=7).eval()
    sd = ref.state_dict()
    files = {"parsing_bisenet.pth": sd, "79999_iter.pth": sd,
             "wrapped/79999_iter.pth": {"state_dict": {"module." + k: v for k, v in sd.items()}}}
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        want = ref(((x + 1) / 2 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))  # ImageNet statistics
                   / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))[0]
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(exist_ok=True)
        torch.save(content, path)
        with torch.no_grad():
            torch.testing.assert_close(build_bisenet(path).eval()(x)[0], ref(x)[0])
            pm = masks.ParsingMasker(path)
            got = pm.net(((x + 1) / 2 - pm._mean) / pm._std)[0]
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # only the official file in the weights folder: the masker finds and loads it
    only_official = tmp_path / "official"
    only_official.mkdir()
    torch.save(sd, only_official / "79999_iter.pth")
    assert masks.load_parsing_masker(only_official) is not None
    bad = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), bad)
    errors = []
    for load in (build_bisenet, masks.ParsingMasker):
        with pytest.raises(VidinvertError) as info:
            load(bad)
        errors.append(str(info.value))
    assert errors[0] == errors[1] and "79999_iter.pth" in errors[0] and "parsing_bisenet.pth" in errors[0]


def test_paste_rejects_bad_mode():
    with pytest.raises(VidinvertError, match="paste mode"):
        paste.paste_faces([np.zeros((8, 8, 3), np.uint8)], np.zeros((1, 4, 2)), torch.zeros(1, 3, 4, 4),
                          torch.zeros(1, 1, 4, 4), mode="blend")
