"""The preview contact sheet on tiny random models: the strength-0 column is the inversion, the
layout matches the image, a clip's frame and a raw photo work; the CLI commands end to end."""

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from tests.face_clips import face_frame, make_face_clip
from vidinvert.cli.app import main
from vidinvert.convert import to_tensor, to_uint8
from vidinvert.device import resolve_compute
from vidinvert.engine import Inverter
from vidinvert.pipeline.preview import PreviewRequest, run_preview


@pytest.fixture(scope="module")
def inverter():
    from vidinvert.models import tiny_pair

    gen, enc = tiny_pair(0)
    return Inverter(enc, gen, resolve_compute("cpu", "fp32"))


def _dirs(tmp_path):
    rng = np.random.default_rng(0)
    a = tmp_path / "alpha.npy"
    np.save(a, rng.standard_normal(64).astype(np.float32))
    b = tmp_path / "beta_coarse.npy"
    v = np.zeros((10, 64), np.float32)
    v[:4] = rng.standard_normal((4, 64))
    np.save(b, v)
    return a, b


def _inversion(inverter, rgb, size=None):
    with torch.inference_mode():
        lat = inverter.invert(to_tensor(rgb))
        if size is None:
            return to_uint8(inverter.synthesize(lat))[0]
        return to_uint8(inverter.generator(lat.w, lat.f, feature_index=5, noise=inverter.noise, rgb_size=size))[0]


def _cell(sheet, layout, row, col):
    c = next(c for c in layout["cells"] if c["row"] == row and c["col"] == col)
    x0, y0, x1, y1 = c["box"]
    return sheet[y0:y1, x0:x1]


def _check_layout(sheet, layout, n_rows, strengths):
    assert layout["image_size"] == [sheet.shape[1], sheet.shape[0]]
    assert len(layout["cells"]) == n_rows * len(strengths) and layout["strengths"] == list(strengths)
    r = layout["cell_size"]
    for c in layout["cells"]:
        x0, y0, x1, y1 = c["box"]
        assert x1 - x0 == r and y1 - y0 == r and 0 <= x0 and x1 <= sheet.shape[1] and y1 <= sheet.shape[0]
        assert c["strength"] == strengths[c["col"]]
    boxes = [tuple(c["box"]) for c in layout["cells"]]
    assert len(set(boxes)) == len(boxes)


def test_zero_column_is_the_inversion_and_layout_matches(tmp_path, inverter, astronaut_face):
    a, b = _dirs(tmp_path)
    out = tmp_path / "grid.png"
    strengths = (-1.0, 0.0, 2.0)
    summary = run_preview(inverter, PreviewRequest(astronaut_face, out, directions=(a, b), strengths=strengths,
                                                   no_align=True))
    sheet = np.asarray(Image.open(out).convert("RGB"))
    layout = json.loads(out.with_suffix(".json").read_text())
    _check_layout(sheet, layout, 2, strengths)
    assert layout["rows"] == ["alpha", "beta_coarse"] and layout["columns"] == ["S=-1", "S=0", "S=+2"]
    assert summary["rows"] == 2 and summary["columns"] == 3
    recon = _inversion(inverter, np.asarray(Image.open(astronaut_face).convert("RGB")))
    for row in (0, 1):
        assert np.array_equal(_cell(sheet, layout, row, 1), recon)
        assert np.abs(_cell(sheet, layout, row, 2).astype(int) - recon).mean() > 0.5
    # label areas hold ink (the labels were drawn), outside the cells
    x0, y0, x1, y1 = layout["row_label_boxes"][0]
    assert (sheet[y0:y1, x0:x1] < 128).any()


def test_preview_size_renders_the_intermediate_rgb(tmp_path, inverter, astronaut_face):
    a, _ = _dirs(tmp_path)
    out = tmp_path / "small.png"
    run_preview(inverter, PreviewRequest(astronaut_face, out, directions=(a,), strengths=(0.0, 1.0),
                                         no_align=True, preview_size=32))
    sheet = np.asarray(Image.open(out).convert("RGB"))
    layout = json.loads(out.with_suffix(".json").read_text())
    assert layout["cell_size"] == 32 and layout["render_size"] == 32 and "32 px" in layout["title"]
    ref = _inversion(inverter, np.asarray(Image.open(astronaut_face).convert("RGB")), size=32)
    assert np.array_equal(_cell(sheet, layout, 0, 0), ref)


def test_default_strengths_follow_the_row_rule(tmp_path, inverter, astronaut_face):
    _, b = _dirs(tmp_path)  # 4 non-zero rows: u = 0.2 * sqrt(4) = 0.4
    out = tmp_path / "d.png"
    summary = run_preview(inverter, PreviewRequest(astronaut_face, out, directions=(b,), no_align=True))
    assert summary["strengths"] == [-0.4, -0.2, 0.0, 0.2, 0.4]


def test_frame_of_a_clip(tmp_path, inverter):
    clip = make_face_clip(tmp_path / "c.mp4", n_frames=6, size=(64, 64), frame_fn=lambda i: face_frame(
        i, (64, 64), face_px=64, faces=((0, 0),), drift=4.0), audio=False)
    with av.open(str(clip)) as c:  # independent decode: the frame at 0.08 s (25 fps) is index 2
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    a, _ = _dirs(tmp_path)
    out = tmp_path / "clip.png"
    run_preview(inverter, PreviewRequest(clip, out, directions=(a,), strengths=(0.0,), no_align=True, at="0.08s"))
    layout = json.loads(out.with_suffix(".json").read_text())
    assert layout["source"]["frame"] == 2
    sheet = np.asarray(Image.open(out).convert("RGB"))
    assert np.array_equal(_cell(sheet, layout, 0, 0), _inversion(inverter, frames[2]))
    assert not np.array_equal(_cell(sheet, layout, 0, 0), _inversion(inverter, frames[0]))


def test_raw_photo_is_detected_and_aligned(tmp_path, inverter):
    pytest.importorskip("dlib")
    from vidinvert.face.detect import make_detector
    from vidinvert.face.single import align_single

    frame = face_frame(0, (176, 144), face_px=96, faces=((40, 20),))
    crop, quad = align_single(frame, make_detector("dlib"), size=64)
    assert crop.shape == (1, 3, 64, 64) and float(crop.abs().max()) <= 1.0
    centre = quad.mean(0)
    assert 40 < centre[0] < 136 and 20 < centre[1] < 116  # inside the pasted face
    photo = tmp_path / "photo.png"
    Image.fromarray(frame).save(photo)
    a, _ = _dirs(tmp_path)
    out = tmp_path / "raw.png"
    run_preview(inverter, PreviewRequest(photo, out, directions=(a,), strengths=(0.0,), detector="dlib"))
    sheet = np.asarray(Image.open(out).convert("RGB"))
    layout = json.loads(out.with_suffix(".json").read_text())
    assert np.array_equal(_cell(sheet, layout, 0, 0), to_uint8(inverter.synthesize(inverter.invert(crop)))[0])


def _models(tw):
    return ["--encoder", str(tw["encoder"]), "--generator", str(tw["generator"]), "--device", "cpu"]


def test_cli_discover_then_preview(tmp_path, tiny_weights, astronaut_face, capsys):
    out = tmp_path / "dirs"
    assert main(["directions", "discover", "--out", str(out), "--layers", "coarse", "--count", "3",
                 "--generator", str(tiny_weights["generator"])]) == 0
    files = sorted(out.glob("sefa_L0-3_r*.npy"))
    assert [f.name for f in files] == ["sefa_L0-3_r00.npy", "sefa_L0-3_r01.npy", "sefa_L0-3_r02.npy"]
    index = json.loads((out / "directions.json").read_text())["directions"]
    assert [e["rank"] for e in index] == [0, 1, 2]
    capsys.readouterr()
    grid = tmp_path / "grid.png"
    assert main(["directions", "preview", str(astronaut_face), "--direction", str(files[0]), "--direction",
                 str(files[1]), "--strengths", "-1,0,1", "--no-align", "--layers", "0-1", "-o", str(grid),
                 "--json", *_models(tiny_weights)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 2 and summary["strengths"] == [-1.0, 0.0, 1.0]
    assert Image.open(grid).size == tuple(json.loads(grid.with_suffix(".json").read_text())["image_size"])
    # discover with a preview of what it found
    out2 = tmp_path / "dirs2"
    assert main(["directions", "discover", "--out", str(out2), "--count", "2", "--preview", str(astronaut_face),
                 "--no-align", "--preview-size", "32", *_models(tiny_weights)]) == 0
    layout = json.loads((out2 / "preview.json").read_text())
    assert layout["rows"] == ["sefa_L0-9_r00", "sefa_L0-9_r01"] and layout["cell_size"] == 32


@pytest.mark.parametrize("args, text", [
    (["--strengths", "1,x"], "--strengths"),
    (["--strengths", "nan"], "finite"),
    (["--preview-size", "48"], "power of two"),
    (["--at", "1s"], "--at"),
    ([], "nothing to preview"),
    (["--layers", "0-99"], "rows 0..9"),
])
def test_cli_preview_refuses_bad_options(tmp_path, tiny_weights, astronaut_face, capsys, args, text):
    a = tmp_path / "a.npy"
    np.save(a, np.ones(64, np.float32))
    extra = [] if text == "nothing to preview" else ["--direction", str(a)]
    rc = main(["directions", "preview", str(astronaut_face), "--no-align", "-o", str(tmp_path / "g.png"),
               *extra, *args, *_models(tiny_weights)])
    err = capsys.readouterr().err
    assert rc != 0 and text in err and not Path(tmp_path / "g.png").exists()


@pytest.mark.parametrize("cmd", [["directions"], ["directions", "discover"], ["directions", "preview"]])
def test_help(cmd, capsys):
    assert main([*cmd, "--help"]) == 0
    assert "Usage" in capsys.readouterr().out


def test_discover_refuses_preview_options_without_preview(tmp_path, tiny_weights, capsys):
    rc = main(["directions", "discover", "--out", str(tmp_path / "d"), "--preview-size", "32", *_models(tiny_weights)])
    assert rc != 0 and "--preview FACE" in capsys.readouterr().err and not (tmp_path / "d").exists()
    rc = main(["directions", "discover", "--out", str(tmp_path / "d"), *_models(tiny_weights)])
    assert rc != 0 and "--encoder" in capsys.readouterr().err and not (tmp_path / "d").exists()
