import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from vidinvert.convert import to_tensor
from vidinvert.metrics.flicker import FlickerMeter
from vidinvert.metrics.identity import DlibEmbedder, identity_consistency, paired_identity, psp_identity_crop


def _aligned(img: np.ndarray, size=256) -> torch.Tensor:
    return to_tensor(np.asarray(Image.fromarray(img).resize((size, size), Image.BICUBIC)))


@pytest.fixture(scope="module")
def embedder():
    return DlibEmbedder()


def test_identity_consistency_math():
    rng = np.random.default_rng(0)
    e = rng.standard_normal((6, 16))
    ref = np.mean([np.dot(e[i], e[0]) / np.linalg.norm(e[i]) / np.linalg.norm(e[0]) for i in range(1, 6)])
    assert identity_consistency(torch.from_numpy(e)) == pytest.approx(ref, abs=1e-6)
    assert identity_consistency(torch.from_numpy(e[:1])) == 1.0
    assert torch.allclose(paired_identity(torch.from_numpy(e), torch.from_numpy(e)), torch.ones(6, dtype=torch.float32))


def test_psp_crop_matches_reference():
    x = torch.rand(2, 3, 1024, 1024) * 2 - 1
    ref = torch.nn.functional.avg_pool2d(x, 4)[:, :, 35:223, 32:220]
    ref = torch.nn.functional.adaptive_avg_pool2d(ref, (112, 112))
    assert torch.allclose(psp_identity_crop(x), ref, atol=1e-6)


def test_ic_identical_frames_is_one_and_different_faces_lower(embedder):
    astro = data.astronaut()[0:260, 110:370]
    same = _aligned(astro).repeat(4, 1, 1, 1)
    ic_same = identity_consistency(embedder.embed(same))
    assert ic_same == pytest.approx(1.0, abs=1e-5)
    faces = data.lfw_subset()[:3]  # three different people (25x25 greyscale)
    others = [np.repeat((f * 255).astype(np.uint8)[..., None], 3, 2) for f in faces]
    mixed = torch.cat([_aligned(astro)] + [_aligned(o) for o in others])
    ic_mixed = identity_consistency(embedder.embed(mixed))
    assert ic_mixed < ic_same - 0.02
    # a slightly moved crop of the same face stays closer than other people
    shifted = torch.cat([_aligned(astro), _aligned(data.astronaut()[4:264, 112:372])])
    assert identity_consistency(embedder.embed(shifted)) > ic_mixed


def test_flicker_meter_streams_like_the_offline_mean():
    torch.manual_seed(0)
    x = torch.rand(9, 3, 8, 8) * 2 - 1
    m = FlickerMeter()
    for chunk in (x[:2], x[2:3], x[3:9]):
        m.update(chunk)
    ref = ((x[1:] - x[:-1]).abs().mean(dim=(1, 2, 3)) / 2).mean()
    assert m.value == pytest.approx(float(ref), rel=1e-6) and m.pairs == 8
    m.reset()
    m.update(x[:1])
    assert m.pairs == 8  # a reset starts a new run: no pair across the cut
