"""Photos and group photos through ``edit_photo`` with the tiny random models and dlib's real
detector and landmarks (meaningless faces, real plumbing).

Group photos are generated: the astronaut's head (``tests.face_clips.face_patch``) pasted at three
places and sizes on a plain canvas. Invariants checked against independent references: pixels
outside every face's crop square (polygon from the returned quads, rasterised by OpenCV) are
bit-identical; Pillow reads the outputs back.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from tests.face_clips import face_patch
from vidinvert.device import Compute
from vidinvert.edit.directions import Direction, EditSpec
from vidinvert.engine import Inverter
from vidinvert.errors import VidinvertError
from vidinvert.pipeline.photo import INVERSION, edit_photo, edit_photos

pytest.importorskip("dlib")
BG = (90, 110, 130)


@pytest.fixture(scope="module")
def inverter():
    from vidinvert.models import tiny_pair

    gen, enc = tiny_pair(0)
    return Inverter(enc, gen, Compute(torch.device("cpu"), torch.float32))


@pytest.fixture(scope="module")
def smile(inverter):
    v = torch.from_numpy(np.random.default_rng(3).standard_normal((inverter.n_latent, inverter.style_dim)))
    v = (v / v.norm()).float()
    return EditSpec("smile", (Direction("smile", v, "test"),), (1.0,))


@pytest.fixture(scope="module")
def detector():
    from vidinvert.face.detect import DlibDetector

    return DlibDetector(min_face=0.1)


def group_photo(sizes=(150, 240, 110), xs=(30, 250, 560), ys=(120, 40, 200), w=720, h=400) -> np.ndarray:
    """Three astronaut heads, left to right: medium, large, small (face boxes ~52, 89, 36 px)."""
    f = np.full((h, w, 3), BG, np.uint8)
    for s, x, y in zip(sizes, xs, ys):
        f[y : y + s, x : x + s] = face_patch(s)
    return f


def one_face_photo() -> np.ndarray:
    return group_photo(sizes=(200,), xs=(100,), ys=(60,), w=400, h=300)


def _outside_quads(shape, quads, slack=3) -> np.ndarray:
    """True outside every quad (OpenCV polygon fill, grown by ``slack`` px)."""
    m = np.zeros(shape[:2], np.uint8)
    for q in quads:
        cv2.fillPoly(m, [np.round(np.asarray(q) * 16).astype(np.int32)], 1, shift=4)
    return cv2.dilate(m, np.ones((2 * slack + 1,) * 2, np.uint8)) == 0


def _inside(shape, quad) -> np.ndarray:
    return ~_outside_quads(shape, [quad], 0)


def _run(inverter, path, outputs, **kw):
    kw.setdefault("edits", ())
    return edit_photo(inverter, path, outputs=outputs, **kw)


def test_group_photo_every_face_edited_outside_bit_identical(tmp_path, inverter, smile, detector):
    img = group_photo()
    src = tmp_path / "group.png"
    Image.fromarray(img).save(src)
    out = tmp_path / "group.smile.png"
    lat = tmp_path / "group.npz"
    res = _run(inverter, src, {"smile": out}, edits=[smile], face_select="all", detector=detector,
               save_latents=lat)
    assert res.detected == 3 and [f.index for f in res.faces] == [0, 1, 2]
    assert [f.box[0] for f in res.faces] == sorted(f.box[0] for f in res.faces)  # numbered left to right
    got = np.asarray(Image.open(out))
    quads = [np.array(f.quad) for f in res.faces]
    outside = _outside_quads(img.shape, quads)
    assert np.array_equal(got[outside], img[outside])
    for q in quads:  # every face changed
        assert (got[_inside(img.shape, q)] != img[_inside(img.shape, q)]).any()
    z = np.load(lat)
    assert z["w"].shape == (3, inverter.n_latent, inverter.style_dim) and z["quad"].shape == (3, 4, 2)
    assert list(z["face_index"]) == [0, 1, 2] and z["w_edit"].shape[:2] == (3, 1) and list(z["edits"]) == ["smile"]
    np.testing.assert_allclose(z["box"], [f.box for f in res.faces])


def test_face_1_edits_only_the_middle_face_and_numbers_are_checked(tmp_path, inverter, smile, detector):
    img = group_photo()
    src = tmp_path / "group.png"
    Image.fromarray(img).save(src)
    res = _run(inverter, src, {"smile": tmp_path / "one.png"}, edits=[smile], face_select="1", detector=detector)
    (face,) = res.faces
    assert face.index == 1 and 250 < face.box[0] < 490  # the middle (large) head
    got = np.asarray(Image.open(tmp_path / "one.png"))
    outside = _outside_quads(img.shape, [np.array(face.quad)])
    assert np.array_equal(got[outside], img[outside]) and (got[~outside] != img[~outside]).any()
    two = _run(inverter, src, {"smile": tmp_path / "two.png"}, edits=[smile], face_select="0,2", detector=detector)
    assert [f.index for f in two.faces] == [0, 2]
    with pytest.raises(VidinvertError, match="3 face"):
        _run(inverter, src, {"smile": tmp_path / "bad.png"}, edits=[smile], face_select="3", detector=detector)
    assert not (tmp_path / "bad.png").exists()
    with pytest.raises(VidinvertError, match="--min-face"):  # min face skips the two smaller ones
        _run(inverter, src, {"smile": tmp_path / "bad.png"}, edits=[smile], face_select="1", detector=detector,
             min_face=60)


def test_face_all_on_a_one_face_photo_equals_largest(tmp_path, inverter, smile, detector):
    src = tmp_path / "one.png"
    Image.fromarray(one_face_photo()).save(src)
    a = _run(inverter, src, {"smile": tmp_path / "all.png"}, edits=[smile], face_select="all", detector=detector)
    b = _run(inverter, src, {"smile": tmp_path / "largest.png"}, edits=[smile], detector=detector)
    assert a.detected == b.detected == 1
    assert (tmp_path / "all.png").read_bytes() == (tmp_path / "largest.png").read_bytes()


def test_real_photo_with_real_detector_and_identity(tmp_path, inverter, smile):
    """skimage's astronaut, dlib detector + 68 landmarks + dlib identity, end to end."""
    from skimage import data

    from vidinvert.metrics.identity import DlibEmbedder

    img = data.astronaut()
    src = tmp_path / "astronaut.png"
    Image.fromarray(img).save(src)
    res = _run(inverter, src, {"smile": tmp_path / "s.png", INVERSION: tmp_path / "inv.png"}, edits=[smile],
               detector="dlib", embedder=DlibEmbedder())
    (face,) = res.faces
    assert 150 < face.box[0] < 230 and 60 < face.box[1] < 130  # her face
    assert set(face.identity) == {"smile", INVERSION} and all(-1 <= v <= 1 for v in face.identity.values())
    assert res.embedder == "dlib-resnet128" and res.timings["networks"] > 0
    for name in ("s.png", "inv.png"):
        got = np.asarray(Image.open(tmp_path / name))
        outside = _outside_quads(img.shape, [np.array(face.quad)])
        assert np.array_equal(got[outside], img[outside]) and (got[~outside] != img[~outside]).any()


def test_exif_rotated_jpeg_rgba_and_grey_round_trips(tmp_path, inverter, smile, detector):
    upright = one_face_photo()
    # JPEG stored sideways with EXIF orientation 8 (shown rotated 90 degrees counter-clockwise)
    stored = np.ascontiguousarray(np.rot90(upright, -1))
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 8
    jpg = tmp_path / "rot.jpg"
    im.save(jpg, quality=97, exif=exif.tobytes())
    res = _run(inverter, jpg, {"smile": tmp_path / "rot.smile.jpg"}, edits=[smile], detector=detector)
    with Image.open(tmp_path / "rot.smile.jpg") as o:
        assert o.size == (400, 300) and o.getexif().get(0x0112, 1) == 1
        got = np.asarray(o)
    outside = _outside_quads(upright.shape, [np.array(res.faces[0].quad)])
    assert np.abs(got[outside].astype(int) - upright[outside]).mean() < 2  # upright, JPEG-close

    rgba = tmp_path / "a.png"
    alpha = np.random.default_rng(0).integers(0, 256, upright.shape[:2], dtype=np.uint8)
    Image.fromarray(np.dstack([upright, alpha]), "RGBA").save(rgba)
    res = _run(inverter, rgba, {"smile": tmp_path / "a.smile.png"}, edits=[smile], detector=detector)
    got = np.asarray(Image.open(tmp_path / "a.smile.png"))
    outside = _outside_quads(upright.shape, [np.array(res.faces[0].quad)])
    assert got.shape[2] == 4 and np.array_equal(got[..., 3], alpha)
    assert np.array_equal(got[..., :3][outside], upright[outside]) and (got[..., :3] != upright).any()

    grey = tmp_path / "g.png"
    g = np.asarray(Image.fromarray(upright).convert("L"))
    Image.fromarray(g).save(grey)
    res = _run(inverter, grey, {"smile": tmp_path / "g.smile.png"}, edits=[smile], detector=detector)
    with Image.open(tmp_path / "g.smile.png") as o:
        assert o.mode == "L"
        got = np.asarray(o)
    outside = _outside_quads(g.shape, [np.array(res.faces[0].quad)])
    assert np.array_equal(got[outside], g[outside]) and (got != g).any()


def test_batch_with_a_faceless_photo_runs_the_others(tmp_path, inverter, smile, detector):
    good, empty = tmp_path / "good.png", tmp_path / "empty.png"
    Image.fromarray(one_face_photo()).save(good)
    Image.fromarray(np.full((200, 300, 3), BG, np.uint8)).save(empty)
    outs = [(empty, {"smile": tmp_path / "empty.smile.png"}), (good, {"smile": tmp_path / "good.smile.png"})]
    res = edit_photos(inverter, outs, edits=[smile], detector=detector,
                      save_latents=[tmp_path / "e.npz", tmp_path / "g.npz"])
    assert isinstance(res[0], VidinvertError) and str(res[0]) == f"{empty}: no face found"
    assert not (tmp_path / "empty.smile.png").exists() and not (tmp_path / "e.npz").exists()
    assert res[1].outputs["smile"].exists() and (tmp_path / "g.npz").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp files left


def test_options_validated_before_work(tmp_path, inverter, smile, detector):
    src = tmp_path / "one.png"
    Image.fromarray(one_face_photo()).save(src)
    for kw, msg in [({"strength": float("nan")}, "--strength"), ({"paste_mode": "blend"}, "--paste"),
                    ({"min_face": -1}, "--min-face"), ({"face_select": "biggest"}, "--face")]:
        with pytest.raises(VidinvertError, match=msg):
            _run(inverter, src, {"smile": tmp_path / "o.png"}, edits=[smile], detector=detector, **kw)
    Image.fromarray(one_face_photo()).save(tmp_path / "exists.png")
    with pytest.raises(VidinvertError, match="--overwrite"):
        _run(inverter, src, {"smile": tmp_path / "exists.png"}, edits=[smile], detector=detector)
    rgba = tmp_path / "a.png"
    Image.fromarray(np.dstack([one_face_photo(), np.full((300, 400), 255, np.uint8)]), "RGBA").save(rgba)
    with pytest.raises(VidinvertError, match="alpha"):
        _run(inverter, rgba, {"smile": tmp_path / "a.jpg"}, edits=[smile], detector=detector)
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "a.jpg").exists()
