"""Several faces through a clip: track ids through crossings and absences, selection, fades, and the
one-face stage reproduced exactly by the multi-face code with one track."""

from __future__ import annotations

import numpy as np
import pytest

from tests.multi_face_clips import Person, TemplateDetector, colour_embedder, render
from vidinvert.errors import VidinvertError
from vidinvert.face import FaceConfig, SmoothConfig, TrackConfig
from vidinvert.face.stage import FaceAligner
from vidinvert.face.stream import align_tracks
from vidinvert.face.types import FaceSelect, parse_face_select

pytest.importorskip("skimage.data")
FPS = 25.0


def _run(people, n, select="all", embedder=None, batched=False, **track):
    frames, truth = render(people, n, fps=FPS)
    det = TemplateDetector([p.patch() for p in people])
    det.batched = batched
    cfg = FaceConfig(chunk=6, track=TrackConfig(select=select, **track))
    stream = align_tracks(iter(frames), cfg, detector=det, embedder=embedder)
    out = list(stream)
    assert [f.index for f in out] == list(range(n))
    return out, truth, stream


def _assert_follows(out, truth, person_of_track, tol=2.0, late=None):
    """Every detected face of track t is person ``person_of_track[t]``; every person fully visible
    in a frame is edited there by its track (detected). ``late``: {track: n} tracks that may start
    up to n frames after their person appears (found by a periodic whole-frame scan)."""
    late = late or {}
    for ff, row in zip(out, truth):
        by_track = {a.track: a for a in ff.faces}
        for t, p in person_of_track.items():
            a = by_track.get(t)
            if a is None and t in late and row[p] is not None:
                since = next(j for j in range(ff.index, -1, -1) if j == 0 or truth[j - 1][p] is None)
                assert ff.index - since < late[t], (ff.index, t, since)
                continue
            if row[p] is not None:
                assert a is not None and a.status == "detected" and a.edit_weight > 0, (ff.index, t, a)
                assert np.linalg.norm(a.face.center - row[p]) < tol, (ff.index, t, a.face.center, row[p])
            elif a is not None and a.face is not None:
                raise AssertionError(f"frame {ff.index}: track {t} took a face while person {p} is hidden")


def test_face_select_for_tracks():
    assert parse_face_select("ALL") == FaceSelect("all") and not FaceSelect("all").single
    assert parse_face_select("2, 0") == FaceSelect("numbers", (0, 2)) and parse_face_select("3").single
    for bad in ("1,x", "1,-2", "most"):
        with pytest.raises(VidinvertError, match="--face"):
            parse_face_select(bad)


@pytest.mark.parametrize("batched", [False, True])
def test_two_faces_crossing_keep_their_tracks(batched):
    """A (small, behind) walks right, B (larger, in front) walks left; B hides A's face for 9 frames."""
    a = Person(64, lambda i: (10 + 6 * i, 100))
    b = Person(88, lambda i: (230 - 6 * i, 80))
    out, truth, stream = _run([a, b], 40, batched=batched)
    hidden = [i for i, row in enumerate(truth) if row[0] is None]
    assert len(hidden) >= 5 and all(row[1] is not None for row in truth)  # the crossing is real
    assert stream.aligner.n_tracks == 2
    _assert_follows(out, truth, {0: 0, 1: 1})
    for i in hidden:  # the occlusion (< max_gap) is bridged: A's edit continues, interpolated
        a_face = out[i].faces[0]
        assert a_face.status == "interpolated" and a_face.edit_weight == 1.0
    assert [c.as_dict()["total"] for c in stream.counts] == [40, 40]


def test_dlib_cannot_tell_copies_apart_so_trajectory_decides():
    """The clips' faces are copies of one photo: dlib's descriptor does not separate them (so the
    tracker must not use it), and identities still hold by trajectory."""
    from vidinvert.face import dlib_models

    if not dlib_models.dlib_available():
        pytest.skip("dlib not installed")
    a = Person(64, lambda i: (10 + 6 * i, 100))
    b = Person(88, lambda i: (230 - 6 * i, 80))
    out, truth, stream = _run([a, b], 40)  # default embedder: dlib's descriptor
    tracks = stream.aligner.tracker.tracks
    assert all(t.embedding is not None for t in tracks)
    assert np.linalg.norm(tracks[0].embedding - tracks[1].embedding) < 0.6
    assert not stream.aligner.tracker._separable(0)
    _assert_follows(out, truth, {0: 0, 1: 1})


def test_leaving_and_returning_keeps_the_track_and_new_people_get_new_ids():
    """Three people: C steps out for 3 frames (short gap), A leaves for 30 frames (1.2 s, beyond
    max_gap) and returns on its trajectory, D enters at frame 20 and gets the next id."""
    a = Person(56, lambda i: None if 12 <= i < 42 else (10 + 2 * i, 20))
    c = Person(72, lambda i: None if 20 <= i < 23 else (200, 140 - i))
    d = Person(48, lambda i: (250, 10) if i >= 20 else None)
    out, truth, stream = _run([a, c, d], 60)
    assert stream.aligner.n_tracks == 3
    scan = TrackConfig().redetect_every + 1   # new people are found by a whole-frame scan every 6 frames
    _assert_follows(out, truth, {0: 0, 1: 1, 2: 2}, late={2: scan})
    start = next(ff.index for ff in out if len(ff.faces) == 3)
    assert 20 <= start < 20 + scan
    st_a = [ff.faces[0].status for ff in out]
    assert set(st_a[12:42]) == {"passthrough"} and st_a[42] == "detected"
    w_a = np.array([ff.faces[0].edit_weight for ff in out])
    f = SmoothConfig().fade_frames
    ramp = np.arange(1, f + 1) / (f + 1)
    np.testing.assert_allclose(w_a[12 - f:12], ramp[::-1])  # fades out before leaving ...
    np.testing.assert_allclose(w_a[42:42 + f], ramp)        # ... and back in on return
    assert [ff.faces[1].status for ff in out[20:23]] == ["interpolated"] * 3
    # D's track starts mid-clip: no entry before, its edit fades in, its counts cover the clip
    assert all(len(ff.faces) == 2 for ff in out[:start]) and all(len(ff.faces) == 3 for ff in out[start:])
    np.testing.assert_allclose([ff.faces[2].edit_weight for ff in out[start:start + f + 1]], list(ramp) + [1.0])
    assert stream.counts[2].as_dict() == {"edited": 60 - start, "detected": 60 - start, "interpolated": 0,
                                          "passthrough": start, "total": 60}
    assert out[0].faces[0].edit_weight == 1.0  # a track present at the clip's first frame does not fade


def test_selection_by_numbers_is_fixed_on_the_first_frame_with_faces():
    people = [Person(56, lambda i, x=x: (x + i, 60)) for x in (10, 110, 210)]
    late = Person(48, lambda i: (150, 170) if i >= 8 else None)
    frames, truth = render(people + [late], 16, fps=FPS)
    # 6 frames without faces first (whole-frame scans at frames 0 and 6, as with one face)
    k = TrackConfig().redetect_every + 1
    blank = [(i, i / FPS, frames[0][2] * 0 + frames[0][2][0, 0]) for i in range(k)]
    det = TemplateDetector([p.patch() for p in people + [late]])
    stream = align_tracks(blank + [(i + k, t + k / FPS, f) for i, t, f in frames],
                          FaceConfig(track=TrackConfig(select="2,0")), detector=det)
    out = list(stream)
    assert stream.aligner.n_tracks == 2 and stream.aligner.tracker.missing == ()
    assert [len(ff.faces) for ff in out[:k]] == [0] * k
    _assert_follows(out[k:], truth, {0: 0, 1: 2})   # ids by left-to-right order of the chosen faces
    st = align_tracks(iter(frames), FaceConfig(track=TrackConfig(select="1,5")), detector=det)
    list(st)
    assert st.aligner.n_tracks == 1 and st.aligner.tracker.missing == (5,)


def test_appearance_term_keeps_identities_where_motion_is_misleading():
    """Two different-looking people meet, the front one hides the other, and both turn back: a
    constant-velocity prediction swaps them; an embedder that separates them does not."""
    def path(x0, v):
        return lambda i: (x0 + v * min(i, 19) - v * max(0, i - 19), 90)

    a = Person(64, path(20, 6))
    b = Person(64, path(250, -6), swapped=True)
    frames, _ = render([a, b], 40, fps=FPS)
    emb = colour_embedder(frames[0][2], TemplateDetector([a.patch(), b.patch()]).detect([frames[0][2]])[0])
    assert np.linalg.norm(emb[0] - emb[1]) > 2 * 0.6  # the stand-in embedder separates them
    # whole-frame detection on every frame, so A can be re-found on the frame it reappears
    out, truth, stream = _run([a, b], 40, embedder=colour_embedder, batched=True)
    assert stream.aligner.tracker._separable(0) and stream.aligner.tracker._separable(1)
    assert stream.aligner.n_tracks == 2
    _assert_follows(out, truth, {0: 0, 1: 1})
    hidden = [i for i, row in enumerate(truth) if row[0] is None]
    assert len(hidden) >= 5 and all(out[i].faces[0].status == "interpolated" for i in hidden)
    out, truth, stream = _run([a, b], 40, embedder=colour_embedder, batched=True, appearance_weight=0.0)
    # by motion alone, A's track (predicted to keep moving right) takes B when B turns back: a swap
    assert np.linalg.norm(out[30].faces[0].face.center - truth[30][1]) < 2


def _one_face_clip():
    """One face, moving, with a 3-frame and a 20-frame absence, first seen at frame 4."""
    p = Person(64, lambda i: None if i < 4 or 20 <= i < 23 or 30 <= i < 50 else (20 + 3 * i, 60 + i))
    return p, render([p], 64, fps=FPS)[0]


@pytest.mark.parametrize("batched", [False, True])
def test_one_face_equals_the_one_face_stage(batched):
    person, frames = _one_face_clip()

    def detector():
        d = TemplateDetector([person.patch()])
        d.batched = batched
        return d

    old = list(FaceAligner(FaceConfig(chunk=5), detector=detector()).run(iter(frames)))
    for select in ("largest", "all"):
        stream = align_tracks(iter(frames), FaceConfig(chunk=5, track=TrackConfig(select=select)),
                              detector=detector())
        new = list(stream)
        assert len(new) == len(old) and stream.aligner.n_tracks == 1
        for o, ff in zip(old, new):
            if select == "all" and not ff.faces:  # before the track starts (found at frame 6)
                assert o.status == "passthrough" and o.index < 6
                continue
            (n,) = ff.faces
            assert (n.index, n.status, n.edit_weight, n.track) == (o.index, o.status, o.edit_weight, 0)
            assert (n.quad is None) == (o.quad is None)
            if o.quad is not None:
                np.testing.assert_array_equal(n.quad, o.quad)
                np.testing.assert_array_equal(n.landmarks_crop, o.landmarks_crop)
        assert {s for o in old for s in [o.status]} == {"detected", "interpolated", "passthrough"}
        old_counts = FaceAligner(FaceConfig(chunk=5), detector=detector())
        list(old_counts.run(iter(frames)))
        assert stream.counts[0].as_dict() == old_counts.counts.as_dict()


def test_one_face_equals_the_one_face_stage_with_dlib():
    """The same with the real detector (region searches at their own scale, re-detection cadence)."""
    pytest.importorskip("dlib")
    from vidinvert.face.detect import DlibDetector

    p = Person(150, lambda i: None if i < 4 or 20 <= i < 23 or 30 <= i < 40 else (10 + 2 * i, 40 + i))
    frames = render([p], 48, fps=FPS)[0]
    old = list(FaceAligner(FaceConfig(min_face=0.15), detector=DlibDetector(min_face=0.15)).run(iter(frames)))
    new = list(align_tracks(iter(frames), FaceConfig(min_face=0.15, track=TrackConfig(select="all")),
                            detector=DlibDetector(min_face=0.15)))
    assert sum(o.status == "detected" for o in old) > 20 and {o.status for o in old} == {
        "detected", "interpolated", "passthrough"}
    for o, ff in zip(old, new):
        if not ff.faces:
            assert o.status == "passthrough"
            continue
        n = ff.faces[0]
        assert (n.status, n.edit_weight) == (o.status, o.edit_weight)
        if o.quad is not None:
            np.testing.assert_array_equal(n.quad, o.quad)


def test_reader_frames_carry_their_timestamps():
    from vidinvert.video.reader import Frame

    person, frames = _one_face_clip()
    items = [Frame(index=i, pts=1000 + 40 * i, time=t, rgb=f, duration=40) for i, t, f in frames[:12]]
    out = list(align_tracks(items, FaceConfig(track=TrackConfig(select="all")),
                            detector=TemplateDetector([person.patch()])))
    assert [(ff.index, ff.pts, ff.duration) for ff in out] == [(i, 1000 + 40 * i, 40) for i in range(12)]
    assert all(ff.frame is items[i].rgb for i, ff in enumerate(out))


def test_batches_mix_frames_and_never_split_one():
    from vidinvert.face.stream import batch_frames

    a = Person(56, lambda i: (10 + i, 20))
    b = Person(56, lambda i: (150, 100) if 3 <= i < 9 else None)
    out, _, _ = _run([a, b], 14, select="all", batched=True)
    groups = list(batch_frames(iter(out), 3))
    assert [ff.index for g in groups for ff in g] == list(range(14))   # every frame once, in order
    sizes = [sum(len(ff.edited_faces) for ff in g) for g in groups]
    assert max(sizes) <= 3 and sum(sizes) == sum(len(ff.edited_faces) for ff in out)
    assert any(len({len(ff.edited_faces) for ff in g}) > 1 for g in groups)  # one- and two-face frames mixed
    for g in batch_frames(iter(out), 1):  # a frame with two faces is a group of its own
        assert sum(len(ff.edited_faces) for ff in g) <= 1 or len(g) == 1
    with pytest.raises(ValueError):
        next(batch_frames(iter(out), 0))
