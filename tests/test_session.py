"""The editing session renders exactly what the jobs write: photos against the photo job's PNG, clip
frames against the video job's ``--frames-dir`` PNGs (bit for bit with ``--batch-size 1``; within the
batch-composition tolerance at the default batch size); re-renders reuse the cached inversion; an
approximation says so; bad calls are one line each."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.face_clips import face_frame, face_patch, make_face_clip
from vidinvert import Editor, EditRequest, InvertRequest, VidinvertError, run_edit

pytest.importorskip("dlib")


def _models(tw) -> dict:
    return {"encoder": str(tw["encoder"]), "generator": str(tw["generator"]), "device": "cpu"}


@pytest.fixture(scope="module")
def editor(tiny_weights):
    return Editor.from_request(EditRequest(inputs=(), **_models(tiny_weights)))


@pytest.fixture(scope="module")
def media_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    one = make_face_clip(d / "one.mp4", n_frames=9, size=(176, 144))
    two = make_face_clip(d / "two.mp4", n_frames=6, size=(240, 144),
                         frame_fn=lambda i: face_frame(i, (240, 144), faces=((10, 20), (130, 24))))
    photo = np.full((200, 420, 3), 120, np.uint8)
    photo[10:190, 10:190] = face_patch(180)
    photo[40:160, 260:380] = face_patch(120)
    Image.fromarray(photo).save(d / "pair.png")
    Image.fromarray(face_patch(160)).save(d / "ref.png")
    return {"one": one, "two": two, "photo": d / "pair.png", "ref": d / "ref.png"}


def _png(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def _job_frames(tmp_path, tw, clip, **edit) -> dict[int, np.ndarray]:
    frames = tmp_path / "frames"
    req = EditRequest(inputs=(clip,), output=tmp_path / "out.mkv", codec="ffv1", frames_dir=frames, identity=False,
                      **_models(tw), **edit)
    res = run_edit(req)
    assert res.exit_code == 0, res.items[0].error
    tag = req.tags[0]
    return {int(p.stem): _png(p) for p in sorted((frames / tag).glob("*.png"))}


@pytest.mark.parametrize("face", ["largest", "all"])
def test_photo_render_equals_the_photo_job(tmp_path, tiny_weights, editor, media_files, direction, face):
    settings = dict(direction=(direction,), strength="2", face=face, region=("mouth", "eyes"))
    out = tmp_path / f"pair.{face}.png"
    res = run_edit(EditRequest(inputs=(media_files["photo"],), output=out, **_models(tiny_weights), **settings))
    assert res.exit_code == 0, res.items[0].error
    media = editor.open(media_files["photo"])
    shown = editor.render(media, 0, EditRequest(inputs=(), **settings))
    assert shown.exact and len(shown.faces) == (2 if face == "all" else 1)
    got = shown.samples["smile"]
    assert got.dtype == np.uint8 and np.array_equal(got, _png(out))
    assert np.array_equal(shown.outputs["smile"], _png(out)) and (shown.outputs["smile"] != shown.source).any()


@pytest.mark.parametrize("faces", ["one", "two"])
def test_clip_frames_equal_the_jobs_frames(tmp_path, tiny_weights, editor, media_files, direction, faces):
    """Frames 0, a middle one and the last, with an edit, a region, a style reference and a strength
    keyframe in play; two faces with ``--face all``; the job run with ``--batch-size 1``."""
    clip = media_files[faces]
    settings = dict(direction=(direction,), strength="0s:0.5,0.2s:2", region=("mouth",), style=media_files["ref"],
                    style_strength="0.5", face="all" if faces == "two" else "largest", crop_sigma="1,2")
    job = _job_frames(tmp_path, tiny_weights, clip, batch_size=1, **settings)
    media = editor.open(clip)
    tag = EditRequest(inputs=(), **settings).tags[0]
    last = media.frames - 1
    for i in (0, last // 2, last):
        shown = editor.render(media, i, EditRequest(inputs=(), **settings))
        assert shown.exact and len(shown.faces) == (2 if faces == "two" else 1)
        assert np.array_equal(shown.outputs[tag], job[i]), (faces, i)
        assert (shown.outputs[tag] != shown.source).any()  # the edit shows


def test_latent_filters_across_chunks_equal_the_job(tmp_path, tiny_weights, editor, direction):
    """Latent smoothing reads the neighbouring chunks and the fine-layer mean runs from the start: frames
    at a chunk boundary (32) and the clip's end are the job's."""
    clip = make_face_clip(tmp_path / "long.mp4", n_frames=40, size=(144, 112),
                          frame_fn=lambda i: face_frame(i, (144, 112), face_px=88, faces=((20, 10),)))
    settings = dict(direction=(direction,), strength="2", smooth_latents=1.0, fine_mean=True)
    job = _job_frames(tmp_path, tiny_weights, clip, batch_size=1, **settings)
    media = editor.open(clip)
    for i in (31, 32, 39):
        shown = editor.render(media, i, EditRequest(inputs=(), **settings))
        assert shown.exact and np.array_equal(shown.outputs["smile"], job[i]), i
    rough = editor.render(media, 32, EditRequest(inputs=(), **settings), exact=False)  # the filters left out
    assert not rough.exact and not np.array_equal(rough.outputs["smile"], job[32])


def test_default_batch_size_within_the_batch_composition_tolerance(tmp_path, tiny_weights, editor, media_files,
                                                                    direction):
    settings = dict(direction=(direction,), strength="2", smooth_latents=1.0)
    job = _job_frames(tmp_path, tiny_weights, media_files["one"], batch_size=4, **settings)
    media = editor.open(media_files["one"])
    for i in (1, 6):
        got = editor.render(media, i, EditRequest(inputs=(), **settings)).outputs["smile"].astype(int)
        diff = np.abs(got - job[i].astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() <= 0.001, (i, diff.max(), (diff > 0).mean())


def test_a_re_render_with_other_settings_reuses_the_inversion(tiny_weights, media_files, direction):
    editor = Editor.from_request(EditRequest(inputs=(), **_models(tiny_weights)))
    calls = {"encoder": 0, "synthesize": 0}
    invert, synthesize = editor.inverter.invert, editor.inverter.synthesize

    def counted(name, fn):
        def call(*a, **k):
            calls[name] += 1
            return fn(*a, **k)
        return call

    editor.inverter.invert = counted("encoder", invert)
    editor.inverter.synthesize = counted("synthesize", synthesize)
    media = editor.open(media_files["one"])
    editor.render(media, 4, EditRequest(inputs=(), direction=(direction,), strength="1"))
    assert calls["encoder"] == 1 and calls["synthesize"] == 2  # the reconstruction and the edit
    again = editor.render(media, 4, EditRequest(inputs=(), direction=(direction,), strength="-2", region=("mouth",)))
    assert calls == {"encoder": 1, "synthesize": 3}  # only the edit's synthesis ran
    assert again.exact and "encoder" not in again.timings


def test_an_approximate_render_says_what_it_approximated(editor, media_files, direction):
    media = editor.open(media_files["one"])
    shown = editor.render(media, 7, EditRequest(inputs=(), direction=(direction,), fine_mean=True), exact=False)
    assert not shown.exact and "fine-layer mean" in shown.approximated and shown.faces
    exact = editor.render(media, 7, EditRequest(inputs=(), direction=(direction,), fine_mean=True))
    assert exact.exact and not exact.approximated


def test_errors_are_one_line(tmp_path, editor, media_files, direction):
    clip, photo = editor.open(media_files["one"]), editor.open(media_files["photo"])
    edit = EditRequest(inputs=(), direction=(direction,))
    cases = [
        (lambda: editor.render(clip, clip.frames, edit), "has frames 0..8"),
        (lambda: editor.render(photo, 1, edit), "frame 0 (a photo)"),
        (lambda: editor.render(photo, 0, EditRequest(inputs=(), direction=(direction,), start="1s")),
         "--start does not apply to photos"),
        (lambda: editor.render(photo, 0, EditRequest(inputs=(), direction=(direction,), face="5")), "face"),
        (lambda: editor.render(clip, 0, EditRequest(inputs=(), direction=(direction,), face="3")), "face 3"),
        (lambda: editor.open(tmp_path / "none.mp4"), "input not found"),
        (lambda: Editor.from_request(EditRequest(inputs=(), weights_dir=tmp_path)), "fs-encoder"),
    ]
    for call, words in cases:
        with pytest.raises(VidinvertError) as e:
            call()
        text = " ".join([str(e.value), *e.value.details])
        assert words in text and "\n" not in str(e.value) and len(e.value.details) <= 3, (words, text)


def test_invert_settings_render_the_reconstruction(tmp_path, tiny_weights, editor, media_files):
    out = tmp_path / "inv.png"
    assert run_edit(InvertRequest(inputs=(media_files["photo"],), output=out, **_models(tiny_weights))).exit_code == 0
    shown = editor.render(editor.open(media_files["photo"]), 0, InvertRequest(inputs=()))
    assert np.array_equal(shown.outputs["inverted"], _png(out))


def test_shape_checks_at_the_engine_boundaries_are_one_line(editor):
    import torch

    from vidinvert.engine import Latents
    from vidinvert.face.align import warp_faces

    inv = editor.inverter
    s, n, d = inv.size, inv.n_latent, inv.style_dim
    good = inv.invert(torch.zeros(1, 3, s, s))
    cases = [
        (lambda: inv.invert(torch.zeros(1, 3, s // 2, s)), "Inverter.invert: faces must be [B,3,S,S]"),
        (lambda: inv.synthesize(Latents(good.w[:, :-1], good.f)), "Inverter.synthesize: w must be"),
        (lambda: inv.synthesize(Latents(good.w, good.f[:, :, :8])), "Inverter.synthesize: f must be"),
        (lambda: inv.edit(good, torch.zeros(n, d + 1), 1.0), "Inverter.edit: delta must be"),
        (lambda: inv.edit(good, torch.zeros(n, d), torch.ones(3)), "Inverter.edit: strength must be"),
        (lambda: warp_faces([np.zeros((8, 8, 3), np.uint8)], np.zeros((1, 3, 2)), s), "quads must be [B,4,2]"),
        (lambda: warp_faces([np.zeros((8, 8, 3), np.uint8)] * 2, np.zeros((1, 4, 2)), s), "2 frames for 1 quads"),
    ]
    for call, words in cases:
        with pytest.raises(VidinvertError, match=words.replace("[", r"\[")) as e:
            call()
        assert "\n" not in str(e.value)
    assert inv.synthesize(good).shape == (1, 3, s, s)


def test_a_preview_stops_the_generator_early_and_says_so(editor, media_files, direction):
    """``preview_size``: no full-size synthesis runs (the reconstruction is already cached), the result
    is flagged, and only the faces' paste areas differ from the exact render (the rest is the source)."""
    media = editor.open(media_files["photo"])
    settings = EditRequest(inputs=(), direction=(direction,), strength="2", face="all")
    exact = editor.render(media, 0, settings)
    calls = []
    synthesize = editor.inverter.synthesize
    editor.inverter.synthesize = lambda lat: calls.append(1) or synthesize(lat)
    try:
        rough = editor.render(media, 0, settings, preview_size=32)
    finally:
        editor.inverter.synthesize = synthesize
    assert not calls and not rough.exact and any("32 px" in a for a in rough.approximated)
    changed = (rough.outputs["smile"] != exact.outputs["smile"]).any(axis=2)
    inside = np.zeros_like(changed)
    for f in rough.faces:
        x0, y0, x1, y1 = (int(round(v)) for v in f.box)
        inside[max(y0, 0):y1 + 1, max(x0, 0):x1 + 1] = True
    assert changed.any() and not (changed & ~inside).any()
    with pytest.raises(VidinvertError, match="power of two"):
        editor.render(media, 0, settings, preview_size=48)


def test_the_faces_of_a_clip_frame_carry_track_ids_and_face_numbers(editor, media_files):
    """Two people: track ids 0 and 1, ``--face`` numbers 0 and 1 from the left on the first frame with
    faces (the rule ``--face N`` uses), on a later frame too."""
    media = editor.open(media_files["two"])
    for frame in (0, media.frames - 1):
        faces = editor.faces(media, frame, EditRequest(inputs=(), face="all"))
        assert sorted(f.track for f in faces) == [0, 1] and sorted(f.number for f in faces) == [0, 1], faces
        left, right = sorted(faces, key=lambda f: f.box[0])
        assert (left.number, right.number) == (0, 1) and left.box[2] < right.box[0]


def test_a_cancelled_prefix_pass_stops_and_the_next_render_is_exact(tiny_weights, media_files, direction):
    """``cancel`` set from ``progress`` during the prefix pass of a late frame: ``RenderCancelled``;
    the same session then renders that frame as a fresh session does."""
    import threading

    from vidinvert.pipeline.session import RenderCancelled

    settings = EditRequest(inputs=(), direction=(direction,))
    session = Editor.from_request(EditRequest(inputs=(), **_models(tiny_weights)))
    media = session.open(media_files["one"])
    last = media.frames - 1
    cancel, seen = threading.Event(), []

    def progress(stage, done, total):
        seen.append((stage, done, total))
        cancel.set()

    with pytest.raises(RenderCancelled):
        session.render(media, last, settings, progress=progress, cancel=cancel)
    assert seen
    again = session.render(media, last, settings)
    fresh = Editor.from_request(EditRequest(inputs=(), **_models(tiny_weights)))
    want = fresh.render(fresh.open(media_files["one"]), last, settings)
    tag = settings.tags[0]
    assert again.exact and np.array_equal(again.outputs[tag], want.outputs[tag])
