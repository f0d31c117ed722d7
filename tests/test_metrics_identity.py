import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from vidinvert.convert import to_tensor
from vidinvert.metrics.flicker import FlickerMeter
from vidinvert.metrics.identity import (
    DlibEmbedder,
    identity_consistency,
    identity_distance,
    measure_label,
    paired_identity,
    psp_identity_crop,
)


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


def _astronaut(dy: int = 0, dx: int = 0) -> torch.Tensor:
    return _aligned(data.astronaut()[dy:260 + dy, 110 + dx:370 + dx])


def test_dlib_descriptors_are_raw_and_separate_a_person_from_non_faces(embedder, tiny_weights):
    """dlib's measure: shifted crops of one face lie within 0.6 (same person); a cat, noise and a
    random-weight inversion do not. (Unit-normalised cosines would score all of them 0.86-0.89.)"""
    from vidinvert.device import resolve_compute
    from vidinvert.engine import Inverter

    assert embedder.measure == "distance" and measure_label("distance") == "share within 0.6 (dlib)"
    shifted = torch.cat([_astronaut(), _astronaut(4, 2), _astronaut(8, -5), _astronaut(2, 6)])
    e = embedder.embed(shifted)
    norms = e.double().norm(dim=1)
    assert not torch.allclose(norms, torch.ones_like(norms), atol=1e-3)  # raw, not unit-normalised
    ref_d = np.linalg.norm(e[1:].numpy() - e[0].numpy(), axis=1)  # numpy's Euclidean distance
    assert (ref_d < 0.6).all(), ref_d
    assert identity_consistency(e, "distance") == 1.0
    assert identity_distance(e) == pytest.approx(ref_d.mean(), rel=1e-5)
    torch.testing.assert_close(paired_identity(e, e[:1].expand_as(e), "distance"), torch.ones(4))

    cat = _aligned(data.chelsea()[0:300, 100:400])
    noise = _aligned(np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8))
    inv = Inverter.from_files(tiny_weights["encoder"], tiny_weights["generator"], resolve_compute("cpu", "fp32"))
    with torch.no_grad():
        face64 = torch.nn.functional.interpolate(_astronaut(), size=(inv.size, inv.size), mode="area")
        recon = inv.synthesize(inv.invert(face64))
    recon = torch.nn.functional.interpolate(recon.float().clamp(-1, 1), size=(256, 256), mode="bilinear")
    others = embedder.embed(torch.cat([cat, noise, recon]))
    d_others = np.linalg.norm(others.numpy() - e[0].numpy(), axis=1)
    assert (d_others > 0.6).all(), d_others
    frames = torch.cat([e[:1], others])  # the face first, then three frames that are not that person
    assert identity_consistency(frames, "distance") == 0.0
    assert identity_distance(frames) == pytest.approx(d_others.mean(), rel=1e-5)
    torch.testing.assert_close(paired_identity(others, e[:3], "distance"), torch.zeros(3))
    # the cosine of eq. 9 on dlib's descriptors cannot tell them apart: this is why dlib is not scored by it
    assert identity_consistency(frames, "cosine") > 0.8


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


def _stream(emb: np.ndarray):
    from vidinvert.pipeline.report import StreamMetrics

    sm = StreamMetrics()
    sm.add(torch.zeros(len(emb), 3, 4, 4), torch.from_numpy(emb), list(range(len(emb))))
    return sm


@pytest.mark.parametrize("embedder_name", ["dlib-resnet128", "arcface-iresnet50"])
def test_video_report_keys_follow_the_embedders_measure(embedder_name):
    from vidinvert.pipeline.report import StageClock, build_report

    rng = np.random.default_rng(1)
    base = rng.normal(0, 0.1, 128)
    src = (base + rng.normal(0, 0.005, (5, 128))).astype(np.float32)
    u = rng.normal(size=(5, 128))
    radii = np.array([0.1, 0.25, 0.9, 0.2, 0.8])  # frames 2 and 4 drift past 0.6
    inv = (src + radii[:, None] * u / np.linalg.norm(u, axis=1, keepdims=True)).astype(np.float32)
    rep = build_report(source=_stream(src), inversion=_stream(inv), edits={}, embedder=embedder_name,
                       counts={}, clock=StageClock(), extra={})
    d_first = np.linalg.norm(inv[1:] - inv[0], axis=1)
    d_src = np.linalg.norm(inv - src, axis=1)
    cos_first = [np.dot(v, inv[0]) / np.linalg.norm(v) / np.linalg.norm(inv[0]) for v in inv[1:]]
    cos_src = [np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b) for a, b in zip(inv, src)]
    if embedder_name.startswith("dlib"):
        assert 0 < (d_first < 0.6).mean() < 1 and 0 < (d_src < 0.6).mean() < 1  # the test means something
        assert rep["identity_measure"] == "share within 0.6 (dlib)"
        assert rep["identity_consistency"]["inversion"] == pytest.approx((d_first < 0.6).mean())
        assert rep["identity_distance"]["inversion"] == pytest.approx(d_first.mean(), rel=1e-5)
        assert rep["identity_to_source"]["inversion"] == pytest.approx((d_src < 0.6).mean())
        assert rep["identity_distance_to_source"]["inversion"] == pytest.approx(d_src.mean(), rel=1e-5)
        np.testing.assert_allclose(rep["per_frame"]["id_distance_inversion"], d_src, atol=1e-5)
    else:
        assert rep["identity_measure"] == "cosine (ArcFace, eq. 9)"
        assert rep["identity_consistency"]["inversion"] == pytest.approx(np.mean(cos_first), rel=1e-5)
        assert rep["identity_to_source"]["inversion"] == pytest.approx(np.mean(cos_src), rel=1e-5)
        assert rep["identity_distance"]["inversion"] is None
        assert rep["identity_distance_to_source"]["inversion"] is None
        np.testing.assert_allclose(rep["per_frame"]["id_inversion"], cos_src, atol=1e-5)
