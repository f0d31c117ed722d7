"""The studio without a browser: each page control changes the render exactly as its ``edit`` option
does (the page's callbacks against the editing session given that option directly), the shown command
line parses back into the request and writes the same bytes, previews are labelled and end in the exact
render, Cancel removes the partial output, errors are one line on the page, and the server's gate
refuses what it must."""

from __future__ import annotations

import dataclasses
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.studio_fixtures import make_media, png, studio_request
from vidinvert import EditRequest, InvertRequest, VidinvertError

pytest.importorskip("dlib")


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_weights):
    return make_media(tmp_path_factory.mktemp("studio"), tiny_weights)


@pytest.fixture(scope="module")
def handlers(files, tmp_path_factory):
    from vidinvert.studio.handlers import Handlers
    from vidinvert.studio.studio import Studio

    return Handlers(Studio(studio_request(files), tmp_path_factory.mktemp("studio-temp")))


def _values(files, **controls) -> dict:
    return {"media": str(files["clip"]), "frame": 1, "face": "largest", "direction": f"file:{files['sefa']}",
            "strength": 3, "layers": "", "keep": [], "region": [], "feature_keep": 1, "style": "",
            "style_strength": 1, "style_layers": "all", "paste": "delta", "color_match": False, "start": None,
            "end": None, **controls}


def _parsed(argv: list[str]):
    """The request the CLI builds from ``argv`` (``edit ...``), as ``vidinvert`` parses it."""
    import typer.main

    from vidinvert.cli.app import app
    from vidinvert.cli.jobs import build_request

    command = typer.main.get_command(app).commands[argv[0]]
    ctx = command.make_context(argv[0], list(argv[1:]))
    params = dict(ctx.params)
    params.pop("as_json", None), params.pop("quiet", None)
    cls = EditRequest if argv[0] == "edit" else InvertRequest
    return build_request(cls, params, frozenset())


def test_each_control_renders_as_its_edit_option(files, handlers):
    """The page's after image (the PNG it is sent) against the session rendering the option itself;
    each change shows (the image differs from the one before) and its command line parses back."""
    editor = handlers.studio.editor
    media = editor.open(files["clip"])
    style = handlers.upload(str(files["ref"]), "style")["style"]
    sefa, smile = files["sefa"], files["smile"]
    cases = [  # (page controls, the edit options they stand for)
        ({}, dict(direction=(sefa,), strength="3")),
        ({"strength": 1.7}, dict(direction=(sefa,), strength="1.7")),
        ({"direction": "attr:smile", "strength": -2}, dict(attr=("smile",), strength="-2")),
        ({"layers": "coarse"}, dict(direction=(sefa,), layers="coarse")),
        ({"keep": ["attr:smile"]}, dict(direction=(sefa,), keep=("smile",))),
        ({"region": ["mouth", "eyes"]}, dict(direction=(sefa,), region=("mouth", "eyes"))),
        ({"feature_keep": 0.4}, dict(direction=(sefa,), feature_keep="0.4")),
        ({"style": style, "style_strength": 0.6, "style_layers": "fine"},
         dict(direction=(sefa,), style=Path(style), style_strength="0.6", style_layers="fine")),
        ({"paste": "full", "color_match": True}, dict(direction=(sefa,), paste="full", color_match=True)),
        ({"face": "0"}, dict(direction=(sefa,), face="0")),
        ({"direction": ""}, None),  # nothing edited: the reconstruction
    ]
    before = None
    for controls, options in cases:
        out = handlers.view(_values(files, **controls))
        assert "after" in out, (controls, out.get("status"))
        got = png(out["after"])
        ref_req = (EditRequest(inputs=(), detector="dlib", **options) if options is not None
                   else InvertRequest(inputs=(), detector="dlib"))
        ref = editor.render(media, 1, ref_req)
        assert ref.exact and np.array_equal(got, ref.preview), controls
        assert before is None or not np.array_equal(got, before), controls  # the control changed the render
        before = got
        parsed = _parsed(shlex.split(out["command"])[1:])
        assert dataclasses.replace(parsed, explicit=frozenset()) == \
            dataclasses.replace(handlers.studio.render_request(media, handlers.controls(_values(files, **controls))),
                                explicit=frozenset()), controls
    assert smile.exists()


def test_a_slider_shows_a_labelled_preview_then_the_exact_render(files, handlers):
    v = _values(files, strength=-1.3)
    assert len(list(handlers.steer(v, "strength", "s0"))) == 1  # a 64 px generator: the exact render at once
    handlers.studio.preview_from = 64
    preview, exact = list(handlers.steer(v, "strength", "s1"))
    assert preview["timing"].startswith("preview (") and "stopped at 32 px" in preview["timing"]
    assert exact["timing"].startswith("exact render")
    assert np.array_equal(png(exact["after"]), png(handlers.view(v)["after"]))
    assert not np.array_equal(png(preview["after"]), png(exact["after"]))
    handlers.note_input("s2", "strength", 2.5)  # moved on before this change started: its exact render runs
    assert len(list(handlers.steer(_values(files, strength=2.4), "strength", "s2"))) == 2

    def moved_on():  # the slider moves on while the preview renders: the newer change renders exactly
        gen = handlers.steer(_values(files, strength=2.2), "strength", "s3")
        yield next(gen)
        handlers.note_input("s3", "strength", 2.3)
        yield from gen

    assert len(list(moved_on())) == 1
    handlers.studio.preview_from = 256


def test_the_command_line_parses_back_into_the_request(tmp_path):
    from vidinvert.cli.jobs import command_line, request_argv

    odd = tmp_path / "a clip's name.mp4"
    reqs = [EditRequest(inputs=(odd,), attr=("smile", "age"), strength="0s:0,2s:3", region=("mouth",), face="all",
                        identity=False, side_by_side=True, crf=20, device="cpu", dtype="fp32", start="10f",
                        explicit=frozenset({"device"})),
            InvertRequest(inputs=(odd, tmp_path / "b.png"), out_dir=tmp_path / "out", paste="full", color_match=True,
                          smooth_latents=1.5)]
    for req in reqs:
        argv = request_argv(req)
        assert shlex.split(command_line(req))[1:] == argv
        got = _parsed(argv)
        assert dataclasses.replace(got, explicit=frozenset()) == dataclasses.replace(req, explicit=frozenset())
    assert "--device cpu" in command_line(reqs[0]) and "--no-identity" in command_line(reqs[0])


def test_a_photo_render_equals_its_command_line_byte_for_byte(files, handlers, capsys):
    from vidinvert.cli.app import main

    v = _values(files, media=str(files["photo"]), frame=0, face="all", strength=2, region=["mouth"])
    out = handlers.render(v)
    assert out.get("photo") and not out.get("status"), out
    made = Path(out["photo"])
    command = out["rendered_command"]
    assert str(made) in command and "--device cpu --dtype fp32" in command
    kept = made.with_name("kept.png")
    shutil.move(made, kept)
    assert main(shlex.split(command)[1:]) == 0, capsys.readouterr().err
    assert made.read_bytes() == kept.read_bytes()
    assert out["command"] != command  # the next render gets a new name (nothing is replaced)


def test_cancel_stops_the_render_and_removes_the_partial_output(files, handlers):
    from vidinvert.studio.controls import Controls

    studio = handlers.studio
    media = studio.open(files["clip"])
    controls = Controls(direction=f"file:{files['sefa']}")
    target = studio.render_request(media, controls).output
    seen = []

    def progress(p):
        seen.append(p)
        studio.cancel.set()  # the user clicks Cancel during the first chunk

    from vidinvert.pipeline.session import RenderCancelled

    with pytest.raises(RenderCancelled):
        studio.render(media, controls, progress=progress)
    assert seen and not target.exists()
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".") or "tmp" in p.name], \
        list(target.parent.iterdir())
    assert "after" in handlers.view(_values(files, media=str(files["clip"]), frame=1))  # the page stays usable
    out = handlers.command(_values(files, media=str(files["clip"]), start=1, end=2))
    assert f"--output {target} " in out["command"] and "--start 1f --end 2f" in out["command"], out


def test_errors_are_one_line_on_the_page(files, handlers, tmp_path):
    from vidinvert.studio.handlers import Handlers
    from vidinvert.studio.studio import Studio

    cases = [
        (handlers.view(_values(files, media=str(files["media"] / "notes.mp4"))), "notes.mp4"),
        (handlers.view(_values(files, layers="rows 3 to 5")), "--layers"),
        (handlers.view(_values(files, frame=40)), "has frames 0..2"),
        (handlers.view(_values(files, media=str(tmp_path / "elsewhere.mp4"))), "not in the input's folder"),
        (handlers.upload(str(files["ref"]), "direction"), "not a direction file"),
    ]
    no_weights = Handlers(Studio(dataclasses.replace(studio_request(files), encoder=None, generator=None,
                                                     weights_dir=files["weights"]), tmp_path / "t"))
    cases.append((next(no_weights.open(_values(files))), "143_enc.pth"))
    for out, words in cases:
        status = out.get("status", "")
        assert words in status and status.startswith("**Error:**") and "\n" not in status, (words, status)
    empty = handlers.view(_values(files, media=str(files["empty"]), frame=1))
    assert "after" in empty and "no face" in empty["status"]


def test_uploads_are_kept_under_the_output_folder(files, tmp_path):
    from vidinvert.studio.files import save_upload

    folder = tmp_path / "uploads"
    a = save_upload(files["upload"], "direction", folder)
    assert save_upload(files["upload"], "direction", folder) == a  # the same bytes: the same file
    other = tmp_path / "x" / "upload.npy"
    other.parent.mkdir()
    np.save(other, np.ones(64, np.float32))
    assert save_upload(other, "direction", folder).name == "upload-2.npy"
    with pytest.raises(VidinvertError, match="over the upload limit"):
        save_upload(files["ref"], "style", folder, limit=100)


def test_the_gallery_picks_a_direction_and_strength(files, handlers):
    from vidinvert.studio.gallery import find_sheet

    choices = dict((v, k) for k, v in handlers.direction_choices())
    assert "attr:smile" in choices and f"file:{files['sefa'].resolve()}" in choices
    out = handlers.build_sheet(_values(files))
    sheet = out["sheet_state"]
    assert Path(out["sheet"]).is_file() and len(sheet.rows) == len(choices)
    cell = next(c for c in sheet.layout["cells"] if c["row"] == 1 and c["col"] == 4)
    x0, y0, x1, y1 = cell["box"]
    assert handlers.pick(sheet, (x0 + x1) / 2, (y0 + y1) / 2) == {"direction": sheet.rows[1],
                                                                  "strength": cell["strength"]}
    assert handlers.pick(sheet, 0, 0) == {}
    dirs = files["sefa"].parent  # an existing `directions discover --preview` sheet is found
    shutil.copy(out["sheet"], dirs / "preview.png")
    layout = dict(sheet.layout, directions=[{"name": "sefa", "source": str(files["sefa"])}])
    (dirs / "preview.json").write_text(__import__("json").dumps(layout))
    (dirs / "directions.json").write_text('{"directions": []}')
    found = find_sheet([files["media"]])
    assert found is not None and found.rows[0] == f"file:{files['sefa'].resolve()}"


def test_the_request_is_checked_before_anything_starts(files):
    cases = [(dict(host="0.0.0.0"), "--allow-remote"), (dict(allow_remote=True), "--allow-remote needs"),
             (dict(input=files["root"] / "none.mp4"), "input not found"),
             (dict(input=files["smile"]), "not a clip or photo"), (dict(max_upload_mb=0), "--max-upload-mb")]
    for change, words in cases:
        with pytest.raises(VidinvertError, match=words):
            dataclasses.replace(studio_request(files), **change).check()
    dataclasses.replace(studio_request(files), host="0.0.0.0", allow_remote=True).check()


def test_the_gate_refuses_what_it_must(tmp_path):
    from vidinvert.studio.guard import COOKIE, refusal

    roots = [tmp_path / "in", tmp_path / "temp"]
    for r in roots:
        r.mkdir()
    (tmp_path / "in" / "a.png").write_bytes(b"x")
    (tmp_path / "secret.txt").write_bytes(b"x")
    host = {"host": "127.0.0.1:8000"}
    hosts = {"127.0.0.1:8000", "localhost:8000"}

    def why(path, headers=host, token=None, query=None, hosts=hosts):
        got = refusal(path, headers, hosts=hosts, roots=roots, token=token, query_token=query)
        return None if got is None else got[0]

    inside = f"/gradio_api/file={tmp_path}/in/a.png"
    assert why("/") is None and why(inside) is None and why("/gradio_api/queue/join") is None
    assert why(inside, {**host, "origin": "http://127.0.0.1:8000"}) is None
    assert why("/", {**host, "origin": "http://evil.example"}) == 403
    assert why("/", {**host, "origin": "null"}) == 403
    assert why("/", {**host, "sec-fetch-site": "cross-site"}) == 403
    assert why("/", {"host": "evil.example:8000"}) == 403  # DNS rebinding
    for bad in (f"/gradio_api/file={tmp_path}/in/../secret.txt", f"/gradio_api/file={tmp_path}/secret.txt",
                "/gradio_api/file=/etc/passwd", "/file=/etc/passwd", "/gradio_api/file=secret.txt",
                "/gradio_api/file=http://example.com/x.png", "/gradio_api/proxy=http://example.com/",
                f"/gradio_api/file={tmp_path}/in%2F..%2F..%2Fsecret.txt".replace("%2F", "/")):
        assert why(bad) == 403, bad
    remote = {"host": "10.0.0.5:8000"}
    assert why("/", remote, token="t0k", hosts=None) == 401
    assert why("/", {**remote, "cookie": f"{COOKIE}=wrong"}, token="t0k", hosts=None) == 401
    assert why("/", {**remote, "cookie": f"{COOKIE}=t0k"}, token="t0k", hosts=None) is None
    assert why("/", remote, token="t0k", query="t0k", hosts=None) is None


def test_the_command_refuses_a_remote_host_without_allow_remote(files, capsys):
    from vidinvert.cli.app import main

    assert main(["studio", str(files["clip"]), "--host", "0.0.0.0", "--port", "0"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--allow-remote" in err[0]
    assert main(["studio", "--help"]) == 0 and "--max-upload-mb" in capsys.readouterr().out


def test_the_face_picker_offers_what_face_can_name(files, handlers):
    studio = handlers.studio
    photo = studio.open(files["photo"])
    choices, drawn = studio.frame_faces(photo, 0)
    assert choices == ["largest", "center", "all", "0", "1"]  # two faces, numbered from the left
    changed = (drawn != photo.info.rgb).any(axis=2)
    for f in studio.editor.faces(photo, 0):  # each face's box is drawn
        x0, y0, x1, y1 = (int(round(v)) for v in f.box)
        assert changed[max(y0, 0):y1 + 1, max(x0, 0):x1 + 1].any()
