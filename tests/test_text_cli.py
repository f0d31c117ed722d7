"""``--text`` end to end with tiny models and a small random CLIP: the relevance matrices (published layout
checked, ours measured and resumable), ``directions from-text`` == ``edit --text``, and bad input as one
line before any network loads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("open_clip")

from tests.test_text_edit import tiny_clip_state  # noqa: E402
from vidinvert.cli.app import main  # noqa: E402
from vidinvert.edit.relevance import Relevance, compute_relevance, load_relevance, write_relevance  # noqa: E402
from vidinvert.errors import VidinvertError  # noqa: E402
from vidinvert.models.stylespace import generator_layout, layout_for  # noqa: E402


@pytest.fixture(scope="module")
def text_weights(tmp_path_factory, tiny_weights):
    """A weights folder with the small CLIP under its registry name, and a random relevance matrix for the
    tiny generator's conv layers (written in our format)."""
    from safetensors.torch import save_file

    d = tmp_path_factory.mktemp("text_weights")
    save_file(tiny_clip_state(), str(d / "clip-vit-b32-openai.safetensors"))
    layout = generator_layout(tiny_weights["gen"])
    layers = layout.conv_layers(128)
    rows = sum(x.channels for x in layers)
    m = np.random.default_rng(0).standard_normal((rows, 32)).astype(np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    write_relevance(d / "tiny-relevance.npz", Relevance(m, layers, np.ones(rows, bool), "test"), fingerprint="x",
                    samples=1, seed=0)
    return d


def _models(tw):
    return ["--encoder", str(tw["encoder"]), "--generator", str(tw["generator"]), "--device", "cpu"]


def test_the_published_matrix_layout_is_checked():
    big = layout_for(1024, {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64, 1024: 32})
    assert sum(x.channels for x in big.conv_layers(128)) == 5376
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as t:
        p = Path(t) / "fs3.npy"
        np.save(p, np.zeros((5376, 512), np.float32))
        rel = load_relevance(p, big)
        assert rel.values.shape == (5376, 512) and [x.name for x in rel.layers][-1] == "convs.9"
        assert rel.full(big).shape == (big.total, 512)
        from vidinvert.models import tiny_pair

        with pytest.raises(VidinvertError, match="another generator"):
            load_relevance(p, generator_layout(tiny_pair(0)[0]))


def test_stylespace_stats_resumes_exactly_and_a_dead_channel_scores_zero(tmp_path, tiny_weights, text_weights):
    from vidinvert.edit.stylespace import compute_style_stats
    from vidinvert.models import clip, tiny_pair

    gen = tiny_pair(0)[0]
    with torch.no_grad():
        gen.conv1.conv.weight[:, :, 5] = 0  # channel 5 of conv1 (layer 0) no longer reaches the image
    layout = generator_layout(gen)
    layers = layout.conv_layers(4)
    model = clip.load_clip(text_weights / "clip-vit-b32-openai.safetensors")
    stats = compute_style_stats(gen, samples=500)
    whole = compute_relevance(gen, model, layout, layers, stats.mean, stats.std, tmp_path / "a.npz", samples=2, batch=2)
    out = tmp_path / "b.npz"
    seen = []

    def stop(done, total):
        seen.append(done)
        if done == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        compute_relevance(gen, model, layout, layers, stats.mean, stats.std, out, samples=2, batch=2,
                          checkpoint_every=4, progress=stop)
    part = load_relevance(out, layout)
    assert int(part.done.sum()) == 8  # the last checkpoint
    again = compute_relevance(gen, model, layout, layers, stats.mean, stats.std, out, samples=2, batch=2,
                              progress=lambda d, t: seen.append(d))
    assert np.array_equal(again.values, whole.values) and again.done.all()
    assert not whole.values[5].any() and np.isfinite(whole.values).all()
    live = np.linalg.norm(np.delete(whole.values, 5, axis=0), axis=1)
    assert np.allclose(live, 1, atol=1e-5)  # every other row is a unit vector


def test_from_text_equals_edit_text(tmp_path, tiny_weights, text_weights, astronaut_face):
    wd, matrix = text_weights, text_weights / "tiny-relevance.npz"
    d = tmp_path / "beard.npz"
    assert main(["directions", "from-text", "a face with a beard", "--out", str(d), "--matrix", str(matrix),
                 "--beta", "0.2", "--weights-dir", str(wd), "--generator", str(tiny_weights["generator"]),
                 "--device", "cpu", "--json"]) == 0
    a, b = tmp_path / "text.png", tmp_path / "file.png"
    common = [str(astronaut_face), "--no-align", *_models(tiny_weights), "--weights-dir", str(wd)]
    assert main(["edit", *common, "--text", "a face with a beard", "--text-matrix", str(matrix), "--text-beta", "0.2",
                 "-o", str(a)]) == 0
    assert main(["edit", *common, "--direction", str(d), "--strength", "4.1", "-o", str(b)]) == 0
    ia, ib = np.asarray(__import__("PIL.Image").Image.open(a)), np.asarray(__import__("PIL.Image").Image.open(b))
    assert np.array_equal(ia, ib)
    src = np.asarray(__import__("PIL.Image").Image.open(astronaut_face))
    plain = tmp_path / "plain.png"
    assert main(["invert", str(astronaut_face), "--no-align", *_models(tiny_weights), "-o", str(plain)]) == 0
    assert not np.array_equal(ia, np.asarray(__import__("PIL.Image").Image.open(plain))) and ia.shape == src.shape


def test_text_edit_outputs_are_named_by_the_prompts(tmp_path, tiny_weights, text_weights, astronaut_face):
    out = tmp_path / "out"
    assert main(["edit", str(astronaut_face), "--no-align", *_models(tiny_weights), "--weights-dir", str(text_weights),
                 "--text", "a smiling face", "--text", "an old face!", "--text-matrix",
                 str(text_weights / "tiny-relevance.npz"), "--out-dir", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["face.a-smiling-face.png", "face.an-old-face.png"]


@pytest.mark.parametrize("extra, words", [
    (["--text", "  "], "empty prompt"),
    (["--text", "a " * 80, "--text-matrix", "MATRIX"], "more than CLIP's 77"),
    (["--text", "a " * 72, "--text-matrix", "MATRIX"], "inside the template"),
    (["--text", "a beard", "--text-beta", "1.5", "--text-matrix", "MATRIX"], "--text-beta"),
    (["--text", "a beard", "--text-neutral", "", "--text-matrix", "MATRIX"], "--text-neutral"),
    (["--text", "a beard", "--text-matrix", "/nonexistent.npz"], "--text-matrix"),
    (["--text-beta", "0.3", "--attr", "x"], "--text-beta shapes a --text edit"),
    (["--text", "a beard"], "fs3.npy"),  # no matrix in the folders
])
def test_bad_text_input_is_one_line_before_the_networks_load(tmp_path, tiny_weights, text_weights, astronaut_face,
                                                              capsys, monkeypatch, extra, words):
    import vidinvert.pipeline.context as context

    def refuse(*a, **k):
        raise AssertionError("the networks must not load")

    monkeypatch.setattr(context, "load_inverter", refuse)
    rc = main(["edit", str(astronaut_face), "--no-align", *_models(tiny_weights), "--weights-dir", str(text_weights),
               "-o", str(tmp_path / "o.png"),
               *[str(text_weights / "tiny-relevance.npz") if x == "MATRIX" else x for x in extra]])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and words in " ".join(err.split()) and "Traceback" not in err, err
    assert len(err.splitlines()) <= (4 if words == "fs3.npy" else 1), err  # missing files: up to four lines


def test_a_first_text_run_names_the_text_files(tmp_path):
    from vidinvert.pipeline.needs import check_needed_files
    from vidinvert.pipeline.request import EditRequest

    req = EditRequest(inputs=("a.png",), text=("a beard",), weights_dir=tmp_path, no_align=True)
    with pytest.raises(VidinvertError) as e:
        check_needed_files(req, {"aligned image"})
    text = " ".join(e.value.details)
    assert "clip-vit-b32-openai.safetensors" in text and "fs3.npy" in text
    assert "vidinvert weights download fs-encoder stylegan2-ffhq clip-vit-b32 styleclip-fs3-ffhq" in text


def test_two_prompts_combined_equal_their_two_direction_files_combined(tmp_path, tiny_weights, text_weights,
                                                                        astronaut_face):
    """``--text A --text B --combine`` is the sum of the two S directions ``from-text`` writes."""
    from PIL import Image

    wd, matrix = text_weights, text_weights / "tiny-relevance.npz"
    files = []
    for prompt in ("a face with a beard", "an old face"):
        files.append(tmp_path / f"{len(files)}.npz")
        assert main(["directions", "from-text", prompt, "--out", str(files[-1]), "--matrix", str(matrix),
                     "--beta", "0.2", "--weights-dir", str(wd), "--generator", str(tiny_weights["generator"]),
                     "--device", "cpu", "--json"]) == 0
    common = [str(astronaut_face), "--no-align", *_models(tiny_weights), "--weights-dir", str(wd), "--combine"]
    a, b, one = tmp_path / "text.png", tmp_path / "files.png", tmp_path / "one.png"
    assert main(["edit", *common, "--text", "a face with a beard", "--text", "an old face", "--text-matrix",
                 str(matrix), "--text-beta", "0.2", "-o", str(a)]) == 0
    assert main(["edit", *common, "--direction", str(files[0]), "--direction", str(files[1]), "--strength", "4.1",
                 "-o", str(b)]) == 0
    assert main(["edit", *common, "--direction", str(files[0]), "--strength", "4.1", "-o", str(one)]) == 0
    ia, ib, i1 = (np.asarray(Image.open(p)) for p in (a, b, one))
    assert np.array_equal(ia, ib) and not np.array_equal(ia, i1)  # the sum, not the first edit alone


def test_preview_has_a_row_per_prompt(tmp_path, tiny_weights, text_weights, astronaut_face):
    """``directions preview --text A --text B``: one row per prompt (named by its tag); the α = 0 column is
    the inversion in both rows, and the rows differ where α is not 0."""
    from PIL import Image

    out = tmp_path / "words.png"
    assert main(["directions", "preview", str(astronaut_face), "--no-align", *_models(tiny_weights), "--weights-dir",
                 str(text_weights), "--text", "a face with a beard", "--text", "an old face", "--text-matrix",
                 str(text_weights / "tiny-relevance.npz"), "--text-beta", "0.2", "--strengths", "-8,0,8",
                 "-o", str(out)]) == 0
    layout = json.loads(out.with_suffix(".json").read_text())
    assert len(layout["rows"]) == 2 and layout["strengths"] == [-8, 0, 8]
    assert "a-face-with-a-beard" in layout["rows"][0] and "an-old-face" in layout["rows"][1], layout["rows"]
    sheet = np.asarray(Image.open(out).convert("RGB")).astype(np.int16)
    cells = {(c["row"], c["col"]): c["box"] for c in layout["cells"]}

    def cell(r, c):
        x0, y0, x1, y1 = cells[(r, c)]
        return sheet[y0:y1, x0:x1]

    assert np.array_equal(cell(0, 1), cell(1, 1))
    assert np.abs(cell(0, 2) - cell(0, 1)).max() > 0 and not np.array_equal(cell(0, 2), cell(1, 2))
