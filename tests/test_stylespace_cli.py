"""StyleSpace edits through ``vidinvert edit`` and ``directions preview`` (tiny random models): the
output tags, the checks before any model loads, aligned images equal to the library's own edit, several
inputs, a photo with --region, a clip with strength keyframes, and the preview's S rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tests.face_clips import face_patch, make_face_clip
from vidinvert.cli.app import main
from vidinvert.convert import to_tensor, to_uint8
from vidinvert.device import resolve_compute
from vidinvert.edit.stylespace import channel_direction, load_style_stats
from vidinvert.engine import Inverter
from vidinvert.models.stylegan2 import Generator
from vidinvert.models.stylespace import generator_layout, parse_channels, write_style_direction
from vidinvert.pipeline.request import EditRequest


@pytest.fixture(scope="module")
def wdir(tmp_path_factory):
    """One weights folder for the module: the standard deviations are computed once and cached there."""
    return tmp_path_factory.mktemp("weights")


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    d = tmp_path_factory.mktemp("aligned")
    out = []
    for i in range(2):
        p = d / f"face{i}.png"
        Image.fromarray(np.roll(face_patch(64), 7 * i, axis=1)).save(p)
        out.append(p)
    return out


def _models(tw, wdir):
    return ["--encoder", str(tw["encoder"]), "--generator", str(tw["generator"]), "--device", "cpu",
            "--weights-dir", str(wdir)]


def _img(p):
    return np.asarray(Image.open(p).convert("RGB")).astype(np.int16)


def test_tags_and_request_checks(tmp_path, tiny_weights):
    req = EditRequest(inputs=("a.png",), channel=("6_501", "9_409=-2"))
    assert req.tags == ["ch6_501+9_409=-2"] and req.style_edits
    both = EditRequest(inputs=("a.png",), attr=("smile",), channel=("6_501",), combine=True)
    assert both.tags == ["smile+ch6_501"]
    with_file = EditRequest(inputs=("a.png",), direction=(tmp_path / "lips.npz",))
    assert with_file.tags == ["lips"] and with_file.style_edits


def test_bad_s_edits_are_one_line_before_the_models_load(tmp_path, tiny_weights, wdir, faces, capsys, monkeypatch):
    import vidinvert.pipeline.context as context

    def no_models(*a, **k):
        raise AssertionError("the models were loaded")

    monkeypatch.setattr(context, "load_inverter", no_models)
    with torch.device("meta"):
        other = generator_layout(Generator(32, style_dim=64, channels={4: 64, 8: 64, 16: 64, 32: 32}))
    alien = write_style_direction(tmp_path / "alien.npz", np.ones(other.total), other)
    bad = tmp_path / "bad.npz"
    np.savez(bad, delta=np.ones(3))
    base = ["edit", str(faces[0]), "--no-align", "--out-dir", str(tmp_path), *_models(tiny_weights, wdir)]
    for extra, text in [(["--channel", "14_0"], "layer 14 does not exist"),
                        (["--channel", "6_64"], "channel 6_64 does not exist"),
                        (["--channel", "6-1"], "LAYER_CHANNEL"),
                        (["--direction", str(alien)], "another generator"),
                        (["--direction", str(bad)], "missing"),
                        (["--channel", "6_1", "--keep", "smile"], "--keep")]:
        assert main(base + extra) == 1, extra
        err = capsys.readouterr().err
        assert text in err and "internal error" not in err and len(err.strip().splitlines()) == 1, err


def test_aligned_images_match_the_librarys_edit(tmp_path, tiny_weights, wdir, faces):
    lay = generator_layout(tiny_weights["gen"])
    ones = np.zeros(lay.total, np.float32)
    ones[lay.layers[13].slice()] = 1.0  # every channel of the last ToRGB, one std each
    npz = write_style_direction(tmp_path / "rgb.npz", ones, lay, units="std")
    assert main(["edit", *map(str, faces), "--no-align", "--channel", "6_3=2", "--channel", "8_1",
                 "--direction", str(npz), "--strength", "2.5", "--out-dir", str(tmp_path), "--no-identity",
                 *_models(tiny_weights, wdir)]) == 0
    inv = Inverter(tiny_weights["enc"], tiny_weights["gen"], resolve_compute("cpu", "fp32"))
    std = load_style_stats(inv.generator, wdir).std
    d = channel_direction(parse_channels(["6_3=2", "8_1"]), lay, std)
    x = to_tensor(np.stack([np.asarray(Image.open(p).convert("RGB")) for p in faces]))
    lat = inv.invert(x)
    want = to_uint8(inv.synthesize(inv.edit(lat, None, 2.5, style_delta=d.delta)))
    for i, p in enumerate(faces):
        got = _img(tmp_path / f"{p.stem}.ch6_3=2+8_1.png")
        assert np.abs(got - want[i]).max() <= 1
        assert (tmp_path / f"{p.stem}.rgb.png").exists()


def test_combine_layers_and_a_photo_region(tmp_path, tiny_weights, wdir, direction, capsys):
    pytest.importorskip("dlib")
    img = np.full((300, 400, 3), (90, 110, 130), np.uint8)
    img[60:260, 100:300] = face_patch(200)
    photo = tmp_path / "person.png"
    Image.fromarray(img).save(photo)
    out = tmp_path / "mouth.png"
    assert main(["edit", str(photo), "--direction", str(direction), "--channel", "12_3", "--combine", "--region",
                 "mouth", "--feature-keep", "0.5", "--layers", "0-8", "-o", str(out), "--no-identity",
                 *_models(tiny_weights, wdir)]) == 0
    changed = np.argwhere(np.any(_img(photo) != _img(out), axis=2))
    assert len(changed) > 0 and changed[:, 0].min() > 150  # below the eyes: the mouth's neighbourhood
    rec = json.loads(out.with_suffix(".run.json").read_text())["config"]
    assert rec["request"]["channel"] == ["12_3"] and rec["edits"] == [f"{direction.stem}+ch12_3"]
    assert rec["stylespace"][rec["edits"][0]]["channels"] == ["12_3"] and rec["stylespace"]["stats"]["samples"] == 10_000
    assert main(["edit", str(photo), "--channel", "13_3", "--layers", "0-8", "-o", str(tmp_path / "x.png"),
                 *_models(tiny_weights, wdir)]) == 1  # channel 13_3 is driven by row 9
    assert "--layers" in capsys.readouterr().err


def test_a_clip_with_strength_keyframes(tmp_path, tiny_weights, wdir):
    pytest.importorskip("dlib")
    import av

    clip = make_face_clip(tmp_path / "clip.mp4", n_frames=5)
    runs = {}
    for strength in ("0s:0,0.16s:8", "0"):
        out = tmp_path / f"s{len(runs)}.mp4"
        assert main(["edit", str(clip), "--channel", "6_3", "--strength", strength, "-o", str(out), "--codec", "ffv1",
                     "--no-identity", *_models(tiny_weights, wdir)]) == 0
        with av.open(str(out)) as c:
            runs[strength] = [f.to_ndarray(format="rgb24").astype(np.int16) for f in c.decode(video=0)]
    ramp, zero = runs["0s:0,0.16s:8"], runs["0"]
    assert len(ramp) == len(zero) == 5
    diffs = [np.abs(a - b).max() for a, b in zip(ramp, zero)]
    assert diffs[0] == 0 and diffs[-1] > 0, diffs  # strength 0 on the first frame: exactly no edit (lossless)


def test_preview_rows_for_channels_and_s_files(tmp_path, tiny_weights, wdir, faces, capsys):
    lay = generator_layout(tiny_weights["gen"])
    npz = write_style_direction(tmp_path / "lips.npz", np.linspace(-1, 1, lay.total), lay, units="std")
    out = tmp_path / "sheet.png"
    assert main(["directions", "preview", str(faces[0]), "--no-align", "--channel", "6_3", "--channel", "13_1=2",
                 "--direction", str(npz), "-o", str(out), *_models(tiny_weights, wdir)]) == 0
    layout = json.loads(out.with_suffix(".json").read_text())
    assert layout["rows"] == ["lips", "ch6_3", "ch13_1=2"] and layout["strengths"] == [-10, -5, 0, 5, 10]
    assert [d["space"] for d in layout["directions"]] == ["stylespace"] * 3
    sheet = np.asarray(Image.open(out).convert("RGB"))
    cells = {(c["row"], c["col"]): c["box"] for c in layout["cells"]}

    def cell(r, c):
        x0, y0, x1, y1 = cells[(r, c)]
        return sheet[y0:y1, x0:x1].astype(np.int16)

    assert np.array_equal(cell(0, 2), cell(1, 2)) and np.array_equal(cell(1, 2), cell(2, 2))  # S=0: the inversion
    assert np.abs(cell(1, 0) - cell(1, 2)).max() > 0
    assert main(["directions", "preview", str(faces[0]), "--no-align", "--channel", "6_3", "--attr", "smile",
                 "-o", str(tmp_path / "mixed.png"), *_models(tiny_weights, wdir)]) == 1
    assert "--strengths" in capsys.readouterr().err
    assert main(["directions", "preview", str(faces[0]), "--no-align", "--channel", "14_0", "-o",
                 str(tmp_path / "bad.png"), *_models(tiny_weights, wdir)]) == 1
    assert "layer 14 does not exist" in capsys.readouterr().err
