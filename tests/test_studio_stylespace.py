"""The studio's StyleSpace channel box and text prompt: each renders exactly as ``edit --channel`` /
``--text`` (with ``--text-beta``, ``--text-neutral``) does in the editing session, several edits are
shown summed (``--combine``), the shown command line names the options and parses back (through the
CLI) into the same request, and a bad channel or a missing CLIP file is one line on the page, the
same line the CLI gives."""

from __future__ import annotations

import dataclasses
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.studio_fixtures import make_media, png, studio_request
from vidinvert import EditRequest

pytest.importorskip("dlib")
pytest.importorskip("open_clip")

from tests.test_text_cli import text_weights  # noqa: E402,F401  (the fixture: tiny CLIP and relevance matrix)


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_weights):
    return make_media(tmp_path_factory.mktemp("studio-s"), tiny_weights)


@pytest.fixture(scope="module")
def handlers(files, text_weights, tmp_path_factory):  # noqa: F811
    """The studio over a weights folder with the small CLIP (and the named direction)."""
    from vidinvert.studio.handlers import Handlers
    from vidinvert.studio.studio import Studio

    shutil.copy(files["smile"], text_weights / "smile.npy")
    req = dataclasses.replace(studio_request(files), weights_dir=text_weights)
    return Handlers(Studio(req, tmp_path_factory.mktemp("studio-s-temp")))


def _values(files, **controls) -> dict:
    return {"media": str(files["clip"]), "frame": 1, "face": "largest", "direction": "", "strength": 3, "layers": "",
            "keep": [], "region": [], "feature_keep": 1, "style": "", "style_strength": 1, "style_layers": "all",
            "paste": "delta", "color_match": False, "channel": "", "text": "", "text_neutral": "a face",
            "text_beta": 0.15, "text_matrix": "", "start": None, "end": None, **controls}


def _cli_request(command: str) -> EditRequest:
    """The request ``vidinvert edit ...`` builds from the shown command line (the options it names explicit)."""
    import typer.main

    from vidinvert.cli.app import app
    from vidinvert.cli.common import given_on_command_line
    from vidinvert.cli.jobs import build_request

    argv = shlex.split(command)[1:]
    ctx = typer.main.get_command(app).commands["edit"].make_context("edit", argv[1:])
    params = dict(ctx.params)
    params.pop("as_json", None), params.pop("quiet", None)
    return build_request(EditRequest, params, frozenset(n for n in params if given_on_command_line(ctx, n)))


def _check_renders(files, handlers, cases) -> None:
    """Each case's page render == the session's render of its options; each changes the render; the
    shown command line names ``flags`` and parses back into the render's request (same strength too)."""
    editor = handlers.studio.editor
    media = editor.open(files["clip"])
    plain = png(handlers.view(_values(files))["after"])
    seen = [plain]
    for controls, options, flags in cases:
        out = handlers.view(_values(files, **controls))
        assert "after" in out, (controls, out.get("status"))
        got = png(out["after"])
        ref = editor.render(media, 1, EditRequest(inputs=(), detector="dlib", **options))
        assert ref.exact and np.array_equal(got, ref.preview), controls
        assert not any(np.array_equal(got, s) for s in seen), controls  # the control changed the render
        seen.append(got)
        assert all(f in shlex.split(out["command"]) for f in flags), (flags, out["command"])
        parsed = _cli_request(out["command"])
        want = handlers.studio.render_request(media, handlers.controls(_values(files, **controls)))
        assert dataclasses.replace(parsed, explicit=frozenset()) == dataclasses.replace(want, explicit=frozenset())
        assert parsed.parsed_strength() == want.parsed_strength() == float(options.get("strength", "3")), controls


def test_the_channel_box_renders_as_channel(files, handlers):
    sefa = files["sefa"]
    cases = [
        ({"channel": "3_5"}, dict(channel=("3_5",), strength="3"), ["--channel", "3_5"]),
        ({"channel": "3_5, 0_7 = -2", "strength": 6}, dict(channel=("3_5", "0_7=-2"), strength="6"),
         ["--channel", "0_7=-2", "--strength"]),
        ({"channel": "3_5", "direction": f"file:{sefa}"}, dict(direction=(sefa,), channel=("3_5",), combine=True),
         ["--channel", "--direction", "--combine"]),
    ]
    _check_renders(files, handlers, cases)


def test_the_prompt_and_beta_render_as_text(files, handlers, text_weights):  # noqa: F811
    matrix = str(text_weights / "tiny-relevance.npz")
    tm = dict(text_matrix=Path(matrix))
    cases = [
        ({"text": "a face with a beard", "text_matrix": matrix}, dict(text=("a face with a beard",), **tm),
         ["--text", "a face with a beard", "--text-matrix", "--strength"]),
        ({"text": "a face with a beard", "text_matrix": matrix, "text_beta": 0.35, "strength": 5},
         dict(text=("a face with a beard",), text_beta=0.35, strength="5", **tm), ["--text-beta", "0.35"]),
        ({"text": "a face with a beard", "text_matrix": matrix, "text_neutral": "a person"},
         dict(text=("a face with a beard",), text_neutral="a person", **tm), ["--text-neutral", "a person"]),
    ]
    _check_renders(files, handlers, cases)


def test_steering_a_text_edit_does_not_rerun_clip(files, handlers, text_weights, monkeypatch):  # noqa: F811
    from vidinvert.models import clip

    calls = []
    encode = clip.encode_texts
    monkeypatch.setattr(clip, "encode_texts", lambda *a, **k: calls.append(1) or encode(*a, **k))
    v = _values(files, text="a face with a hat", text_matrix=str(text_weights / "tiny-relevance.npz"))
    first = handlers.view(v)
    assert "after" in first and len(calls) == 2, first.get("status")  # the prompt and the neutral phrase
    for change in ({"strength": 7}, {"text_beta": 0.3}, {"strength": -2, "text_beta": 0.4}):
        assert "after" in handlers.view({**v, **change})
    assert len(calls) == 2


def test_a_bad_channel_or_a_missing_clip_is_the_cli_line_on_the_page(files, handlers, text_weights, tmp_path,  # noqa: F811
                                                                     capsys):
    from vidinvert.cli.app import main

    model = ["--encoder", files["encoder"], "--generator", files["generator"], "--device", "cpu",
             "--detector", "dlib"]
    cases = [  # (page controls, the same options given to `vidinvert edit`)
        ({"channel": "99_1"}, ["--channel", "99_1"]),
        ({"channel": "3_9999"}, ["--channel", "3_9999"]),
        ({"channel": "6-501"}, ["--channel", "6-501"]),
        ({"channel": "3_5 3_5=2"}, ["--channel", "3_5", "--channel", "3_5=2"]),
        ({"text": "a " * 80, "text_matrix": str(text_weights / "tiny-relevance.npz")},
         ["--text", "a " * 80, "--text-matrix", str(text_weights / "tiny-relevance.npz")]),
    ]
    for controls, options in cases:
        status = handlers.view(_values(files, **controls)).get("status", "")
        assert main(["edit", str(files["clip"]), *model, "--weights-dir", str(text_weights), *options,
                     "-o", str(tmp_path / "x.mp4")]) == 1
        err = capsys.readouterr().err.strip()
        assert status.startswith("**Error:**") and "\n" not in status and "\n" not in err, (status, err)
        assert status.removeprefix("**Error:** ") in err.removeprefix("error: "), (status, err)
    assert "after" in handlers.view(_values(files, channel="3_5"))  # the page stays usable

    from vidinvert.studio.handlers import Handlers
    from vidinvert.studio.studio import Studio

    no_clip = Handlers(Studio(studio_request(files), tmp_path / "t"))  # the weights folder has no CLIP file
    matrix = Path(files["clip"]).parent / "tiny-relevance.npz"  # a served folder (the input's)
    shutil.copy(text_weights / "tiny-relevance.npz", matrix)
    out = no_clip.view(_values(files, text="a smiling face", text_matrix=str(matrix)))
    assert out["status"].startswith("**Error:**") and "clip-vit-b32-openai.safetensors" in out["status"], out
    assert "after" in no_clip.view(_values(files, channel="3_5"))


def test_without_open_clip_the_page_names_the_extra(files, handlers, text_weights, monkeypatch):  # noqa: F811
    import sys

    from vidinvert.models import clip
    from vidinvert.pipeline import text_edits

    for cached in (clip.tokenizer, text_edits._clip):
        if hasattr(cached, "cache_clear"):
            cached.cache_clear()
    monkeypatch.setitem(sys.modules, "open_clip", None)  # `import open_clip` fails as when the extra is missing
    out = handlers.view(_values(files, text="a face with glasses", text_matrix=str(text_weights / "tiny-relevance.npz")))
    assert out["status"] == "**Error:** text edits need open_clip: pip install 'vidinvert[text]'", out
    assert "after" in handlers.view(_values(files, channel="3_5"))


def test_found_channels_are_the_commands_list_and_a_pick_renders_as_channel(files, handlers, text_weights,  # noqa: F811
                                                                            monkeypatch):
    from vidinvert.choices import ModelChoice
    from vidinvert.pipeline.directions_jobs import ChannelsRequest, run_channels_job
    from vidinvert.studio import channels

    monkeypatch.setattr(channels, "FIND_SAMPLES", 1)
    monkeypatch.setattr(channels, "FIND_PROBES", 2)
    out = handlers.find_channels({"channel_region": "mouth"})
    picks = [value for _, value in out["channel_pick"]["choices"]]
    note = out["channel_note"]
    assert "--samples 1 --probes 2" in note and "--region mouth --top 20" in note, note
    cli = run_channels_job(ChannelsRequest(region=("mouth",), top=20, samples=1, probes=2, models=ModelChoice(
        None, files["generator"], text_weights, "cpu")))
    assert picks == [c["channel"] for c in cli["channels"]] and len(picks) == 20
    got = handlers.pick_channel(_values(files, channel="3_5=2", channel_pick=picks[0]))
    assert got["channel"] == f"3_5=2, {picks[0]}", got.get("status")
    media = handlers.studio.editor.open(files["clip"])
    ref = handlers.studio.editor.render(media, 1, EditRequest(inputs=(), detector="dlib", channel=("3_5=2", picks[0])))
    assert np.array_equal(png(got["after"]), ref.preview) and f"--channel {picks[0]}" in got["command"]
    assert handlers.find_channels({"channel_region": ""})["status"].startswith("**Error:**")


def test_a_channel_and_text_render_equals_its_command_line_byte_for_byte(files, handlers, text_weights,  # noqa: F811
                                                                          capsys):
    from vidinvert.cli.app import main

    v = _values(files, media=str(files["photo"]), frame=0, face="all", channel="3_5=2", text="a face with a beard",
                text_matrix=str(text_weights / "tiny-relevance.npz"), text_beta=0.2)
    out = handlers.render(v)
    assert out.get("photo") and not out.get("status"), out
    made, command = Path(out["photo"]), out["rendered_command"]
    assert all(f in shlex.split(command) for f in ("--channel", "--text", "--text-beta", "--combine", "--strength"))
    kept = made.with_name("kept-text.png")
    shutil.move(made, kept)
    assert main(shlex.split(command)[1:]) == 0, capsys.readouterr().err
    assert made.read_bytes() == kept.read_bytes()
    shown = handlers.view(v)  # the session's frame is what the job wrote (a lossless PNG)
    assert np.array_equal(png(shown["after"]), png(made)), shown.get("status")


def test_a_typed_matrix_path_outside_the_served_and_weights_folders_is_refused(files, handlers, text_weights,  # noqa: F811
                                                                                tmp_path):
    outside = tmp_path / "elsewhere.npz"
    shutil.copy(text_weights / "tiny-relevance.npz", outside)
    out = handlers.view(_values(files, text="a face with a hat", text_matrix=str(outside)))
    assert out["status"].startswith("**Error:** --text-matrix") and "not in the input's folder" in out["status"], out
    inside = handlers.view(_values(files, text="a face with a hat", text_matrix=str(text_weights / "tiny-relevance.npz")))
    assert "after" in inside and not inside.get("status", "").startswith("**Error"), inside
