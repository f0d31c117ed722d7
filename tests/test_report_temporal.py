"""The temporal report of a track (state -> report -> picture), without models: TL-ID / TG-ID and the
warping error through :class:`TrackState`, several tracks combined, the nulls and their reasons,
and the picture's data (its lines, not its pixels)."""

from __future__ import annotations

import io
import math

import pytest
import torch

from tests.texture_clips import as_crops, moving_clip
from vidinvert.metrics.temporal_identity import temporal_identity
from vidinvert.pipeline.report import StageClock, build_report, combine_track_reports
from vidinvert.pipeline.report_figure import MAX_TRACKS, report_figure
from vidinvert.pipeline.state import RunState, TrackState
from vidinvert.pipeline.temporal_report import REASON_DLIB, REASON_OFF, FrameMark

ARCFACE = "arcface-iresnet50"


def _embeddings(n: int, seed: int, d: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    proto = torch.randn(d, generator=g)
    return proto + 0.4 * torch.randn(n, d, generator=g)


def _feed(st: TrackState, crops, embs: dict, first_index: int, runs: list[slice], strength: float = 2.0) -> None:
    """Frames first_index.. of each run slice (a new run each), 25 frames/s."""
    for sl in runs:
        idx = range(first_index + sl.start, first_index + sl.stop)
        marks = [FrameMark(i, i / 25, interpolated=(i % 5 == 4), strength=strength) for i in idx]
        st.feed({k: v[sl] for k, v in crops.items()}, {k: None if e is None else e[sl] for k, e in embs.items()},
                marks, None, new_run=True)


def _report(st: TrackState, embedder=ARCFACE, first=0, last=None) -> dict:
    last = st.last if last is None else last
    counts = {"edited": st.frames, "detected": st.frames, "interpolated": 0, "passthrough": 0, "total": st.frames}
    return build_report(source=st.source, inversion=st.inversion, edits=st.edits, embedder=embedder, counts=counts,
                        clock=StageClock(), extra={"input": "clip.mp4", "clip": {"first_frame": first, "start": first / 25,
                                                                                 "last_frame": last, "end": last / 25}},
                        timeline=st.timeline, warp=st.warp)


@pytest.fixture(scope="module")
def clip():
    return as_crops(moving_clip(n=12, size=64))


def _lines(fig) -> dict[str, list]:
    """Each line's y values at its frames (the NaN points that break a line at a gap left out)."""
    return {ln.get_gid(): [y for x, y in zip(ln.get_xdata(), ln.get_ydata()) if not math.isnan(x)]
            for ax in fig.axes for ln in ax.get_lines() if ln.get_gid()}


def _breaks(fig, gid: str) -> int:
    (line,) = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid() == gid]
    return sum(math.isnan(x) for x in line.get_xdata())


def test_output_equal_to_source_scores_one_and_the_sources_warping_error(clip):
    st = TrackState(edit_names=("smile",))
    emb = _embeddings(len(clip), 0)
    _feed(st, {"source": clip, "inversion": clip.clone(), "smile": clip.clone()},
          {"source": emb, "inversion": emb.clone(), "smile": emb.clone()}, 0, [slice(0, 12)])
    rep = _report(st)
    assert rep["tl_id"] == pytest.approx({"inversion": 1.0, "smile": 1.0}, abs=1e-6)
    assert rep["tg_id"] == pytest.approx({"inversion": 1.0, "smile": 1.0}, abs=1e-6)
    we = rep["warping_error"]
    assert we["inversion"] == we["smile"] == we["source"] < 1e-3
    assert rep["temporal_identity"]["reason"] is None and rep["temporal_identity"]["tl_pairs"]["total"] == 11
    assert rep["warping_error_pairs"] == {"used": 11, "empty": 0}
    pf = rep["per_frame"]
    assert len(pf["time"]) == len(pf["warp_smile"]) == len(pf["id_first_inversion"]) == 12
    assert pf["warp_source"][0] is None and pf["id_first_source"][0] == pytest.approx(1.0)

    lines = _lines(report_figure(rep))
    expect = {f"{panel}/{s}/0" for panel in ("identity", "flicker", "warping") for s in ("source", "inversion", "smile")}
    assert set(lines) == expect | {"strength/edit/0"}
    assert all(len(v) == 12 for v in lines.values())
    assert lines["strength/edit/0"] == [2.0] * 12
    assert lines["warping/smile/0"][1:] == pytest.approx(pf["warp_smile"][1:]) and math.isnan(lines["warping/smile/0"][0])


def test_two_tracks_combine_pair_weighted_and_draw_one_line_per_series_and_track(clip):
    """Track 0: 12 frames in one run; track 1: two runs of 4 (a gap in between) and a planted
    identity switch; the combined TL-ID / TG-ID are the means over every pair of both tracks."""
    state = RunState(edit_names=("smile",))
    e0_src, e0_out = _embeddings(12, 1), _embeddings(12, 1) + 0.2 * _embeddings(12, 2)
    _feed(state.track(0), {"source": clip, "inversion": clip, "smile": clip * 0.9},
          {"source": e0_src, "inversion": e0_out, "smile": e0_out}, 0, [slice(0, 12)])
    e1_src = _embeddings(8, 3)
    e1_out = torch.cat([e1_src[:4], _embeddings(4, 4)])  # another person in the second run
    _feed(state.track(1), {"source": clip[:8], "inversion": clip[:8], "smile": clip[:8]},
          {"source": e1_src, "inversion": e1_out, "smile": e1_out}, 0, [slice(0, 4), slice(4, 8)])
    state.track(1).timeline.index[4:] = list(range(7, 11))  # the second run starts at frame 7
    state.track(1).timeline.time[4:] = [i / 25 for i in range(7, 11)]
    state.track(1).source.indices[4:] = list(range(7, 11))
    reports = [_report(state.track(t), last=11) for t in (0, 1)]
    tracks = [(st.frames, st.first, st.last) for st in (state.track(0), state.track(1))]
    rep = combine_track_reports(reports, tracks, counts={}, extra={"clip": reports[0]["clip"]})

    pooled = temporal_identity(torch.cat([e0_src, e1_src]), {"inversion": torch.cat([e0_out, e1_out])},
                               [0] * 12 + [1] * 4 + [2] * 4)
    assert rep["tl_id"]["inversion"] == pytest.approx(pooled.tl_id["inversion"], rel=1e-9)
    assert rep["tg_id"]["inversion"] == pytest.approx(pooled.tg_id["inversion"], rel=1e-9)
    assert rep["temporal_identity"]["tg_pairs"]["total"] == 66 + 6 + 6
    assert [t["tl_id"]["inversion"] for t in rep["tracks"]] == [reports[0]["tl_id"]["inversion"],
                                                              reports[1]["tl_id"]["inversion"]]
    w = [r["warping_error_pairs"]["used"] for r in reports]
    assert w == [11, 6]
    assert rep["warping_error"]["smile"] == pytest.approx(
        (reports[0]["warping_error"]["smile"] * 11 + reports[1]["warping_error"]["smile"] * 6) / 17)

    fig = report_figure(rep)
    lines = _lines(fig)
    for s in ("source", "inversion", "smile"):
        assert len(lines[f"flicker/{s}/0"]) == 12 and len(lines[f"flicker/{s}/1"]) == 8
    assert _breaks(fig, "identity/smile/1") == 1 and _breaks(fig, "identity/smile/0") == 0  # no line over the gap
    assert lines["identity/inversion/1"] == pytest.approx(reports[1]["per_frame"]["id_first_inversion"])
    assert len(lines) == 3 * 3 * 2 + 2  # identity, flicker, warping x 3 streams x 2 tracks + strength x 2
    strip = {c.get_gid(): c for ax in fig.axes for c in ax.collections if c.get_gid()}
    # track 1 is passed through at frames 4..6 (its gap) and 11 (after its end); every 5th frame is
    # marked as interpolated
    spans = [(p.vertices[:, 0].min() * 25, p.vertices[:, 0].max() * 25) for p in strip["passthrough/1"].get_paths()]
    assert spans == [pytest.approx((3.5, 6.5)), pytest.approx((10.5, 11.5))]
    assert strip["passthrough/0"].get_paths() == []
    assert len(strip["missing/0"].get_paths()) == 2  # frames 4 and 9


def test_nulls_say_why_and_no_identity_keeps_the_warping_error(clip):
    st = TrackState()
    emb = _embeddings(len(clip), 0)
    _feed(st, {"source": clip, "inversion": clip * 0.8}, {"source": emb, "inversion": emb}, 0, [slice(0, 12)])
    dlib = _report(st, embedder="dlib-resnet128")
    assert dlib["tl_id"] == {"inversion": None} and dlib["tg_id"] == {"inversion": None}
    assert dlib["temporal_identity"]["reason"] == REASON_DLIB == "needs ArcFace weights"
    assert "id_first_distance_inversion" in dlib["per_frame"]

    off = TrackState()
    _feed(off, {"source": clip, "inversion": clip * 0.8}, {"source": None, "inversion": None}, 0, [slice(0, 12)])
    rep = _report(off, embedder=None)
    assert rep["temporal_identity"]["reason"] == REASON_OFF and rep["warping_error"]["inversion"] > 0
    lines = _lines(report_figure(rep))
    assert not any(k.startswith("identity/") for k in lines)  # no identity curves; no edit, no strength
    assert {k.split("/")[0] for k in lines} == {"flicker", "warping"}
    assert report_figure({"identity_consistency": {}, "per_frame": {}}) is None  # a photo: no time axis


def test_the_state_carries_everything_across_a_save(clip):
    """What ``--resume`` saves (``running.pt``, read back with weights_only) gives the same report."""
    emb = _embeddings(len(clip), 0)
    crops = {"source": clip, "inversion": clip * 0.9}
    whole = RunState()
    _feed(whole.track(0), crops, {"source": emb, "inversion": emb * 1.1}, 0, [slice(0, 12)])
    first = RunState()
    first.track(0).feed({k: v[:5] for k, v in crops.items()}, {"source": emb[:5], "inversion": emb[:5] * 1.1},
                        [FrameMark(i, i / 25, i % 5 == 4, 2.0) for i in range(5)], None, new_run=True)
    buf = io.BytesIO()
    torch.save(first.snapshot(), buf)
    buf.seek(0)
    resumed = RunState()
    resumed.load(torch.load(buf, weights_only=True))
    resumed.track(0).feed({k: v[5:] for k, v in crops.items()}, {"source": emb[5:], "inversion": emb[5:] * 1.1},
                          [FrameMark(i, i / 25, i % 5 == 4, 2.0) for i in range(5, 12)], None, new_run=False)
    a, b = _report(whole.track(0)), _report(resumed.track(0))
    for key in ("tl_id", "tg_id", "warping_error", "per_frame", "temporal_identity"):
        assert a[key] == b[key], key
    assert a["flicker"] == pytest.approx(b["flicker"], rel=1e-6)  # float32 sums in other groupings


def test_beyond_max_tracks_the_largest_are_drawn_with_a_note():
    n = MAX_TRACKS + 2
    sizes = [3 + k for k in range(n)]
    per_frame = {"track": [], "index": [], "time": [], "interpolated": [], "strength": [], "flicker_source": []}
    for t, size in enumerate(sizes):
        per_frame["track"] += [t] * size
        per_frame["index"] += list(range(size))
        per_frame["time"] += [i / 25 for i in range(size)]
        per_frame["interpolated"] += [False] * size
        per_frame["strength"] += [0.0] * size
        per_frame["flicker_source"] += [None] + [0.01] * (size - 1)
    rep = {"input": "many.mp4", "flicker": {"source": 0.01}, "per_frame": per_frame,
           "tracks": [{"track": t, "measured_frames": s} for t, s in enumerate(sizes)]}
    fig = report_figure(rep)
    drawn = {int(k.split("/")[2]) for k in _lines(fig)}
    assert drawn == set(range(2, n))  # the MAX_TRACKS largest
    assert "2 more tracks not shown" in fig._suptitle.get_text()
