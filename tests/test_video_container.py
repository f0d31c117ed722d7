"""What the container carries survives: pixel aspect, subtitles, timecode, chapters, tags, attachments, covers.

Sources are written with plain PyAV (tests/container_fixtures.py) and outputs read back with plain
PyAV, i.e. with FFmpeg's own demuxers and decoders.
"""

from __future__ import annotations

import json
import logging
from fractions import Fraction

import av
import pytest

from tests.container_fixtures import (
    CHAPTERS,
    EVENTS,
    FONT,
    TAGS,
    TIMECODE,
    cover_png,
    make_anamorphic,
    make_rich,
    make_with_data_stream,
    read_chapters,
    read_subtitles,
)
from tests.video_fixtures import LogCapture
from vidinvert.cli.app import main
from vidinvert.timespec import TimeRange
from vidinvert.video import VideoWriter, open_video, probe
from vidinvert.video.concat import concat_segments
from vidinvert.video.streams import shift_timecode

SAR = Fraction(128, 117)


def _carry(src, dest, *, time_range=None, codec="libx264", tags=None):
    info = probe(src)
    with VideoWriter(dest, like=info, carry_from=src, codec=codec, time_range=time_range,
                     metadata=tags or {"encoder": "vidinvert test"}) as w:
        for f in open_video(src, time_range=time_range):
            w.write_frame(f)
    return dest


def _video_start(path) -> float:
    """The first video frame's time in the file (Matroska shifts a file whose audio starts early)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return float(next(c.decode(s)).pts * s.time_base)


@pytest.fixture(scope="module")
def rich(tmp_path_factory):
    d = tmp_path_factory.mktemp("rich")
    return {ext: make_rich(d / f"src.{ext}").path for ext in ("mp4", "mkv", "mov")}


@pytest.mark.parametrize("ext", ["mov", "mp4", "mkv", "webm"])
def test_container_only_pixel_aspect_reaches_the_output(tmp_path, ext):
    src = make_anamorphic(tmp_path / f"src.{ext}", SAR)
    with av.open(str(src)) as c:  # the fixture says it in the container only
        assert c.streams.video[0].codec_context.sample_aspect_ratio in (None, 1)
    info = probe(src)
    # displayed as players do: 176 * 128/117 = 192.5 -> 193 (Matroska stores the rounded display width)
    assert (info.display_width, info.display_height) == (193, 144)
    assert (info.width, info.height) == (176, 144)  # frames stay in stored pixels
    for out_ext, codec in (("mp4", "libx264"), ("mov", "libx264"), ("mkv", "ffv1")):
        dest = _carry(src, tmp_path / f"out.{out_ext}", codec=codec)
        out = probe(dest)
        assert (out.display_width, out.display_height) == (193, 144), out_ext
        assert (out.width, out.height) == (176, 144)
        if out_ext in ("mp4", "mov"):
            assert b"pasp" in dest.read_bytes(), out_ext  # the container says it too, not only the H.264 VUI
            if ext in ("mov", "mp4"):
                assert out.sample_aspect_ratio == SAR, out_ext  # exact through pasp


def test_subtitles_survive_mp4_to_mp4_and_to_mkv(tmp_path, rich):
    src = rich["mp4"]
    (want,) = read_subtitles(src)
    assert [e[2] for e in want["events"]] == [t for _, _, t in EVENTS]  # the fixture is what we think
    for ext, codec in (("mp4", "mov_text"), ("mkv", "srt")):
        with LogCapture("vidinvert.video") as logs:
            out = _carry(src, tmp_path / f"out.{ext}")
        (got,) = read_subtitles(out)
        assert got["codec"] == codec
        assert (got["language"], got["title"], got["default"], got["forced"]) == ("fra", "French", True, True)
        t0 = _video_start(out) - _video_start(src)
        shifted = [(round(a - t0, 3), round(b - t0, 3), t) for a, b, t in got["events"]]
        assert shifted == want["events"]
        conversions = [m for m in logs.messages(logging.WARNING) if "converted to srt" in m]
        assert len(conversions) == (ext == "mkv")


def test_ass_into_mp4_is_converted_with_a_notice_and_the_font_named(tmp_path, rich):
    with LogCapture("vidinvert.video") as logs:
        out = _carry(rich["mkv"], tmp_path / "out.mp4")
    (got,) = read_subtitles(out)
    assert got["codec"] == "mov_text" and [e[2] for e in got["events"]] == [t for _, _, t in EVENTS]
    msgs = logs.messages(logging.WARNING)
    assert any("ssa" in m and "mov_text" in m and "styling" in m for m in msgs)
    (left,) = [m for m in msgs if "not carried" in m]
    assert "attachment" in left and "font.ttf" in left and "\n" not in left


@pytest.mark.parametrize("codec", ["srt", "webvtt"])
def test_srt_and_webvtt_into_mp4_are_converted_to_mov_text_with_text_times_and_flags(tmp_path, codec):
    src = make_rich(tmp_path / f"src.{codec}.mkv", subtitle_codec=codec).path
    (want,) = read_subtitles(src)
    assert want["codec"] == codec and [e[2] for e in want["events"]] == [t for _, _, t in EVENTS]
    with LogCapture("vidinvert.video") as logs:
        out = _carry(src, tmp_path / "out.mp4")
    (got,) = read_subtitles(out)
    assert got["codec"] == "mov_text"
    assert (got["language"], got["title"], got["default"], got["forced"]) == ("fra", "French", True, True)
    t0 = _video_start(out) - _video_start(src)
    assert [(round(a - t0, 3), round(b - t0, 3), t) for a, b, t in got["events"]] == want["events"]
    (notice,) = [m for m in logs.messages(logging.WARNING) if "converted to mov_text" in m]
    assert f"({codec})" in notice and "this loses" in notice


def test_a_data_stream_the_output_cannot_hold_is_named_in_one_notice(tmp_path):
    src = make_with_data_stream(tmp_path / "src.ts")
    with av.open(str(src)) as c:  # the fixture has what we think: a data stream beside the video
        assert [s.type for s in c.streams] == ["video", "data"]
    with LogCapture("vidinvert.video") as logs:
        out = _carry(src, tmp_path / "out.mp4")
    (left,) = [m for m in logs.messages(logging.WARNING) if "not carried" in m]
    assert left.startswith("src.ts: ") and "MP4 output" in left and "data stream #1 (bin_data)" in left
    assert "\n" not in left
    with av.open(str(out)) as c:
        assert [s.type for s in c.streams] == ["video"]
    assert probe(out).frame_count == 5


def test_timecode_chapters_tags_cover_and_attachment_read_back_equal(tmp_path, rich):
    # MOV keeps its timecode track; MP4 its cover; Matroska its attachments (font and cover)
    mov = _carry(rich["mov"], tmp_path / "out.mov")
    mp4 = _carry(rich["mp4"], tmp_path / "out.mp4")
    mkv = _carry(rich["mkv"], tmp_path / "out.mkv")
    want_chapters = [(a / 1000, b / 1000, t) for a, b, t in CHAPTERS]
    for out in (mov, mp4, mkv):
        info = probe(out)
        assert info.timecode == TIMECODE
        assert read_chapters(out) == want_chapters
        tags = {k.lower(): v for k, v in info.metadata}
        assert all(tags[k] == v for k, v in TAGS.items()), tags
        assert {k.lower(): v for k, v in info.video_metadata}["encoder"] == "vidinvert test"
        assert [(a.language, a.title) for a in info.audio] == [("spa", "Spanish")]
    with av.open(str(mov)) as c:
        assert [s for s in c.streams.data if s.metadata.get("timecode") == TIMECODE]  # a tmcd track
    with av.open(str(mp4)) as c:
        (cover,) = [s for s in c.streams.video if int(s.disposition) & int(av.stream.Disposition.attached_pic)]
        assert bytes(next(p for p in c.demux(cover) if p.size)) == cover_png()
    with av.open(str(mkv)) as c:
        files = {s.metadata["filename"]: s for s in c.streams if s.metadata.get("filename")}
        assert bytes(files["font.ttf"].data) == FONT
        assert files["font.ttf"].mimetype == "application/x-truetype-font"
        assert bytes(next(p for p in c.demux(files["cover.png"]) if p.size)) == cover_png()


def test_a_trim_moves_timecode_chapters_and_subtitles_with_it(tmp_path, rich):
    out = _carry(rich["mp4"], tmp_path / "trim.mp4", time_range=TimeRange.parse("5f", "15f"))  # 0.2 .. 0.6 s
    info = probe(out)
    assert info.frame_count == 10
    assert info.timecode == "01:02:03:09"  # five frames later
    assert read_chapters(out) == [(0.0, 0.2, "Intro"), (0.2, 0.4, "Main")]
    (got,) = read_subtitles(out)
    # Bonjour 0.1-0.3 s -> 0.2-0.3 s, Au revoir 0.45-0.8 s -> 0.45-0.6 s, both shifted by -0.2 s
    assert got["events"] == [(0.0, 0.1, "Bonjour"), (0.25, 0.4, "Au revoir")]


def test_joined_segments_keep_subtitles_chapters_and_tags(tmp_path, rich):
    src = rich["mp4"]
    info = probe(src)
    segs = []
    frames = list(open_video(src))
    for k in range(2):
        seg = tmp_path / f"seg{k}.mp4"
        with VideoWriter(seg, like=info, carry_from=None, codec_options={"bf": "0"}) as w:
            for f in frames[k * 13 : (k + 1) * 13]:
                w.write_frame(f)
        segs.append(seg)
    out = concat_segments(segs, tmp_path / "joined.mp4", like=info, carry_from=src, trimmed=False,
                          metadata={"encoder": "vidinvert test"})
    assert read_subtitles(out) == read_subtitles(src)
    assert read_chapters(out) == read_chapters(src)
    assert probe(out).timecode == TIMECODE


def test_info_shows_stored_and_displayed_size_and_the_other_streams(tmp_path, rich, capsys):
    src = make_anamorphic(tmp_path / "a.mov", SAR)
    assert main(["info", str(src)]) == 0
    out = capsys.readouterr().out
    assert "176x144 pixels, pixel aspect 128:117" in out and "193x144" in out
    assert main(["info", str(rich["mkv"]), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert (d["display_width"], d["display_height"], d["pixel_aspect"]) == (64, 48, "1")
    kinds = {s["kind"]: s for s in d["streams"]}
    assert kinds["subtitle"]["language"] == "fra" and kinds["subtitle"]["disposition"] == ["default", "forced"]
    assert "font.ttf" in kinds["attachment"]["detail"] and "cover" in kinds
    assert [c["title"] for c in d["chapters"]] == ["Intro", "Main"] and d["timecode"] == TIMECODE
    assert main(["info", str(rich["mp4"])]) == 0
    table = capsys.readouterr().out
    for text in ("subtitle #", "French", "forced", "timecode", "starts at 01:02:03:04", "chapter 2", "Main", "cover #"):
        assert text in table


@pytest.mark.parametrize("tc, frames, rate, want", [
    ("01:02:03:04", 5, 25, "01:02:03:09"),
    ("00:00:59:24", 1, 25, "00:01:00:00"),
    ("23:59:59:29", 1, Fraction(30000, 1001), "00:00:00:00"),  # non-drop wraps at 24 h
    ("00:00:59;29", 1, Fraction(30000, 1001), "00:01:00;02"),  # drop-frame skips ;00 and ;01 ...
    ("00:09:59;29", 1, Fraction(30000, 1001), "00:10:00;00"),  # ... except every tenth minute
    ("00:00:00;00", 17982, Fraction(30000, 1001), "00:10:00;00"),  # 10 min of 29.97 fps
])
def test_shift_timecode_against_smpte_examples(tc, frames, rate, want):
    assert shift_timecode(tc, frames, rate) == want
