"""`vidinvert edit` end to end on photos, with a style reference, face regions, layer masks and
conditional directions (tiny random models, dlib's real detector; meaningless faces, real plumbing)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.face_clips import face_patch, make_face_clip
from vidinvert.cli.app import main

BG = (90, 110, 130)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_face_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", n_frames=6)


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    img = np.full((300, 400, 3), BG, np.uint8)
    img[60:260, 100:300] = face_patch(200)
    p = tmp_path_factory.mktemp("photo") / "person.png"
    Image.fromarray(img).save(p)
    return p


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    img = np.full((400, 720, 3), BG, np.uint8)
    for s, x, y in zip((150, 240, 110), (30, 250, 560), (120, 40, 200)):
        img[y : y + s, x : x + s] = face_patch(s)
    p = tmp_path_factory.mktemp("group") / "group.png"
    Image.fromarray(img).save(p)
    return p


@pytest.fixture()
def dirs(tmp_path):
    rng = np.random.default_rng(5)
    out = {}
    for name in ("smile", "glasses", "age"):
        out[name] = tmp_path / f"{name}.npy"
        np.save(out[name], rng.standard_normal((10, 64)).astype(np.float32))
    return out


def _models(tw):
    return ["--encoder", str(tw["encoder"]), "--generator", str(tw["generator"]), "--device", "cpu"]


def _img(p):
    return np.asarray(Image.open(p).convert("RGB")).astype(np.int16)


# ---------------------------------------------------------------------------------------- photos
def test_a_raw_photo_is_aligned_edited_and_pasted_back(tmp_path, tiny_weights, photo, dirs):
    rep = tmp_path / "rep.json"
    assert main(["edit", str(photo), "--direction", str(dirs["smile"]), "--out-dir", str(tmp_path),
                 "--report", str(rep), *_models(tiny_weights)]) == 0
    out = tmp_path / "person.smile.png"
    src, got = _img(photo), _img(out)
    changed = np.argwhere(np.any(src != got, axis=2))
    assert len(changed) > 100  # the face changed
    y0, x0 = changed.min(0)
    y1, x1 = changed.max(0)
    assert 30 <= y0 and y1 <= 290 and 70 <= x0 and x1 <= 330  # ... and only around the face
    data = json.loads(rep.read_text())
    assert len(data["faces"]) == 1 and data["identity_embedder"]
    assert json.loads((tmp_path / "person.smile.run.json").read_text())["command"] == "edit"


def test_every_face_of_a_group_and_video_options_refused(tmp_path, tiny_weights, group, dirs, capsys):
    assert main(["edit", str(group), "--direction", str(dirs["smile"]), "--face", "all", "-o",
                 str(tmp_path / "all.png"), "--no-identity", *_models(tiny_weights)]) == 0
    diff = np.any(_img(group) != _img(tmp_path / "all.png"), axis=2)
    for x0, x1 in ((30, 180), (250, 490), (560, 670)):  # each face region changed
        assert diff[:, x0:x1].sum() > 20
    assert main(["edit", str(group), "--direction", str(dirs["smile"]), "--codec", "ffv1",
                 *_models(tiny_weights)]) == 1
    assert "--codec does not apply to photos" in capsys.readouterr().err
    assert main(["edit", str(group), "--direction", str(dirs["smile"]), "--batch-size", "2",
                 *_models(tiny_weights)]) == 1
    assert "--batch-size does not apply to photos" in capsys.readouterr().err


def test_a_photo_without_a_face_is_one_line_and_writes_nothing(tmp_path, tiny_weights, dirs, capsys):
    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((120, 160, 3), 128, np.uint8)).save(blank)
    assert main(["-q", "edit", str(blank), "--direction", str(dirs["smile"]), *_models(tiny_weights)]) == 1
    err = capsys.readouterr().err
    assert "no face" in err and len([ln for ln in err.splitlines() if ln.strip()]) == 1  # -q: no notices
    assert not (tmp_path / "wall.smile.png").exists()


# ----------------------------------------------------------------------------------------- style
def test_style_on_a_clip_and_a_photo_with_one_reference(tmp_path, tiny_weights, clip, photo, dirs):
    """--style applies the same reference to each input; A = 0 gives the inversion pasted as an edit,
    i.e. the source itself with a delta paste."""
    out = tmp_path / "out"
    rc = main(["edit", str(clip), str(photo), "--style", str(photo), "--out-dir", str(out), "--codec", "ffv1",
               "--json", *_models(tiny_weights)])
    assert rc == 0
    assert (out / "clip.style-person.mp4").exists() and (out / "person.style-person.png").exists()
    rep = json.loads((out / "clip.style-person.run.json").read_text())["report"]
    ref = rep["identity_to_reference"]["style-person"]
    assert ref is not None and 0.0 <= ref <= 1.0 and "style-person" in rep["identity_to_source"]
    photo_rep = json.loads((out / "person.style-person.run.json").read_text())["report"]
    assert 0.0 <= photo_rep["faces"][0]["identity_to_reference"]["style-person"] <= 1.0
    rc = main(["edit", str(photo), "--style", str(photo), "--style-strength", "0", "-o",
               str(tmp_path / "zero.png"), "--no-identity", *_models(tiny_weights)])
    assert rc == 0
    assert np.array_equal(_img(tmp_path / "zero.png"), _img(photo))


def test_a_style_reference_without_a_face_is_refused_before_any_frame(tmp_path, tiny_weights, clip, capsys):
    blank = tmp_path / "ref.png"
    Image.fromarray(np.full((120, 160, 3), 128, np.uint8)).save(blank)
    assert main(["edit", str(clip), "--style", str(blank), "--out-dir", str(tmp_path), *_models(tiny_weights)]) == 1
    assert "no face found in the --style reference" in capsys.readouterr().err
    assert not list(tmp_path.glob("clip.*"))


# ---------------------------------------------------------------------------------------- regions
def test_region_edit_leaves_everything_outside_the_region_bit_identical(tmp_path, tiny_weights, photo, dirs):
    from vidinvert.face.detect import DlibDetector
    from vidinvert.face.dlib_models import landmarks68

    out = tmp_path / "mouth.png"
    assert main(["edit", str(photo), "--direction", str(dirs["smile"]), "--region", "mouth", "-o", str(out),
                 "--no-identity", *_models(tiny_weights)]) == 0
    src, got = _img(photo), _img(out)
    changed = np.argwhere(np.any(src != got, axis=2))
    assert len(changed) > 0
    rgb = np.asarray(Image.open(photo).convert("RGB"))
    face = DlibDetector().detect([rgb])[0][0]
    lm = face.landmarks68 if face.landmarks68 is not None else landmarks68(rgb, face.box)
    eyes_y = lm[36:48, 1].max()
    # every changed pixel lies below the eyes and within the face's width: the mouth's neighbourhood
    assert changed[:, 0].min() > eyes_y
    assert lm[0:17, 0].min() - 5 <= changed[:, 1].min() and changed[:, 1].max() <= lm[0:17, 0].max() + 5


def test_region_options_are_checked(tmp_path, tiny_weights, photo, dirs, capsys):
    assert main(["edit", str(photo), "--direction", str(dirs["smile"]), "--region", "mouth", "--paste", "full",
                 *_models(tiny_weights)]) == 1
    assert "--paste full" in capsys.readouterr().err
    assert main(["edit", str(photo), "--direction", str(dirs["smile"]), "--region", "elbow",
                 *_models(tiny_weights)]) == 1
    assert "elbow" in capsys.readouterr().err
    assert main(["edit", str(photo), "--direction", str(dirs["smile"]), "--region", "hair",
                 "--weights-dir", str(tmp_path), *_models(tiny_weights)]) == 1
    assert "hair" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- layers, keep
def test_layers_and_keep_shape_the_saved_edit(tmp_path, tiny_weights, astronaut_face, dirs):
    """The edit's change of w+ is zero outside --layers and orthogonal to each --keep direction."""
    lat = tmp_path / "lat.npz"
    assert main(["edit", str(astronaut_face), "--no-align", "--direction", str(dirs["smile"]), "--layers", "0-3",
                 "--keep", str(dirs["glasses"]), "--keep", str(dirs["age"]), "--save-latents", str(lat),
                 "-o", str(tmp_path / "o.png"), *_models(tiny_weights)]) == 0
    z = np.load(lat)
    change = (z["w_edit"][0, 0] - z["w"][0]).astype(np.float64)
    assert np.abs(change[4:]).max() == 0 and np.abs(change[:4]).max() > 0
    for k in ("glasses", "age"):
        kept = np.load(dirs[k]).astype(np.float64)
        kept[4:] = 0  # the kept directions restricted to the same rows
        cos = float((change * kept).sum() / (np.linalg.norm(change) * np.linalg.norm(kept)))
        assert abs(cos) < 1e-4


def test_an_unknown_attr_is_refused_before_the_models_load(tmp_path, photo, capsys):
    """No model files at all: the direction name is what is reported, not the missing weights."""
    assert main(["edit", str(photo), "--attr", "age", "--weights-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "unknown or missing direction 'age'" in err and "stylegan2" not in err


def test_no_align_on_a_clip_means_the_style_reference_is_aligned(tmp_path, tiny_weights, clip, astronaut_face,
                                                                  capsys):
    """--no-align with --style on a clip: the reference is an aligned crop (it has no face box to find)."""
    out = tmp_path / "s.mkv"
    assert main(["edit", str(clip), "--style", str(astronaut_face), "--no-align", "-o", str(out), "--codec", "ffv1",
                 "--no-identity", *_models(tiny_weights)]) == 0
    assert out.exists()
    capsys.readouterr()
    assert main(["edit", str(clip), "--attr", "x", "--no-align", *_models(tiny_weights)]) == 1
    assert "--no-align does not apply to videos" in capsys.readouterr().err


def test_a_style_reference_that_is_no_image_is_refused_before_the_models(tmp_path, clip, capsys):
    ref = tmp_path / "ref.jpg"
    ref.write_bytes(b"not an image")
    assert main(["edit", str(clip), "--style", str(ref), "--weights-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "--style" in err and "not an image file" in err and "stylegan2" not in err
