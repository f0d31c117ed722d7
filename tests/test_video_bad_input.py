"""Bad inputs: one clear line naming the file, a non-zero exit, no traceback, no output left."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from tests.video_fixtures import (
    LogCapture,
    find_concealed_damage,
    make_audio_only,
    make_clip,
    make_corrupted,
    make_not_a_video,
    make_still_image,
    make_truncated,
    make_unsupported_codec,
    make_zero_frames,
    single_threaded_decoding,
)
from vidinvert.cli.app import main
from vidinvert.errors import VidinvertError
from vidinvert.timespec import TimeRange
from vidinvert.video import RandomAccessVideo, VideoWriter, open_video, probe

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "folder.mp4").mkdir()
    noisy = dict(size=(176, 144), n_frames=30, kind="noise")
    fast = make_clip(d / "fast.mp4", container_options={"movflags": "+faststart"}, **noisy)
    mkv = make_clip(d / "m.mkv", **noisy)
    plain = make_clip(d / "plain.mp4", n_frames=10)
    return {
        # name: (path, what the message must say, does it fail only while decoding?)
        "missing": (d / "nope.mp4", "no such file", False),
        "folder": (d / "folder.mp4", "is a folder", False),
        "text": (make_not_a_video(d / "notes.mp4"), "not a video FFmpeg can read", False),
        "image": (make_still_image(d / "photo.png"), "still image", False),
        "audio_only": (make_audio_only(d / "song.m4a"), "only audio", False),
        "zero_frames": (make_zero_frames(d / "empty.mkv"), "no frames", False),
        "unsupported": (make_unsupported_codec(d / "avs3.mkv"), "not supported by this FFmpeg build", False),
        "no_header": (make_truncated(plain.path, d / "cut_plain.mp4"), "truncated before its header", False),
        "truncated_mp4": (make_truncated(fast.path, d / "cut.mp4"), r"truncated or corrupt: the video ends at frame \d+", False),
        "truncated_mkv": (make_truncated(mkv.path, d / "cut.mkv"), r"truncated or corrupt: the video ends at frame \d+", False),
        "corrupt": (make_corrupted(fast.path, d / "corrupt.mp4"), r"corrupt or truncated video data at frame \d+ \(\d+\.\d{3} s\)", True),
    }


NAMES = ["missing", "folder", "text", "image", "audio_only", "zero_frames", "unsupported", "no_header",
         "truncated_mp4", "truncated_mkv", "corrupt"]


@pytest.mark.parametrize("name", NAMES)
def test_reader_raises_one_line(bad, name):
    path, pattern, _ = bad[name]
    with pytest.raises(VidinvertError, match=pattern) as exc:
        for _ in open_video(path):
            pass
    msg = str(exc.value)
    assert "\n" not in msg and path.name in msg


@pytest.mark.parametrize("name", NAMES)
def test_info_cli_exit_code_and_single_line(bad, name, capfd):
    path, pattern, decode_only = bad[name]
    code = main(["info", str(path)])
    out, err = capfd.readouterr()
    if decode_only:  # info demuxes but does not decode: the damage shows when reading
        assert code == 0
        return
    assert code != 0
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and path.name in lines[0]
    assert "Traceback" not in err and out == ""


@pytest.mark.parametrize("name", ["audio_only", "zero_frames", "text", "folder"])
def test_random_access_refuses(bad, name):
    path, pattern, _ = bad[name]
    with pytest.raises(VidinvertError, match=pattern):
        RandomAccessVideo(path)


@pytest.mark.parametrize("name", ["text", "missing", "folder"])
def test_writer_refuses_bad_audio_source_and_leaves_nothing(bad, name, tmp_path):
    path, pattern, _ = bad[name]
    good = make_clip(tmp_path / "g.mp4", n_frames=2)
    with pytest.raises(VidinvertError, match=pattern):
        VideoWriter(tmp_path / "o.mp4", like=probe(good.path), carry_from=path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.mp4"]  # no partial output


def test_subprocess_cli_error_is_one_line(bad, tmp_path):
    path = bad["audio_only"][0]
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200")
    proc = subprocess.run([sys.executable, "-m", "vidinvert", "info", str(path)], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == [f"error: {path} has only audio: it needs a video stream"]
    assert proc.stdout == ""


def test_concealed_damage_keeps_every_frame_and_is_reported(tmp_path, monkeypatch):
    """Damage FFmpeg's error resilience repairs: all frames come out, the repaired one is named."""
    single_threaded_decoding(monkeypatch)
    src = make_clip(tmp_path / "src.mp4", size=(320, 240), n_frames=48, crf=20).path
    bad, flagged_pts = find_concealed_damage(src, tmp_path / "damaged.mp4", packets=range(8, 40, 3))

    clean = open_video(src)
    assert len(list(clean)) == 48 and clean.damaged == []
    reader = open_video(bad)
    with LogCapture("vidinvert.video") as logs:
        frames = list(reader)
    assert len(frames) == 48
    hits = [f for f in frames if f.pts in flagged_pts]  # the frames plain PyAV flags
    assert [d.index for d in reader.damaged] == [f.index for f in hits]
    assert {d.repair for d in reader.damaged} == {"concealed"}
    (msg,) = [m for m in logs.messages(logging.WARNING) if "damaged" in m]
    assert f"{len(hits)} frame(s) (first at frame {hits[0].index}, {hits[0].time:.3f} s)" in msg
    assert "damaged.mp4" in msg
    assert "\n" not in msg


def test_conceal_finishes_every_frame_and_finds_the_same_damage_on_each_run(bad):
    """``on_damage="conceal"``: the clip that stops a ``stop`` pass (frame and time named, above)
    comes out whole: as many frames as its packets, in order, the ones that did not decode
    standing in as copies of the last good frame, the same damaged frames on every run."""
    path = bad["corrupt"][0]
    with av.open(str(path)) as c:  # plain PyAV: the frames the container holds
        want_pts = sorted(p.pts for p in c.demux(c.streams.video[0]) if p.size)
    runs = []
    for _ in range(2):
        reader = open_video(path, on_damage="conceal")
        frames = list(reader)
        assert [f.pts for f in frames] == want_pts and [f.index for f in frames] == list(range(len(want_pts)))
        runs.append(list(reader.damaged))
    assert runs[0] == runs[1]
    repeated = [d for d in runs[0] if d.repair == "repeated"]
    assert repeated, runs[0]
    for d in repeated:  # a stand-in is the frame before it
        assert np.array_equal(frames[d.index].rgb, frames[d.index - 1].rgb)
        assert d.time == pytest.approx(frames[d.index].time)
    # a range through the damage: only its frames, still every one of them
    tr = TimeRange.parse(f"{repeated[0].index - 2}f", f"{repeated[0].index + 3}f")
    part = open_video(path, time_range=tr, on_damage="conceal")
    assert [f.index for f in part] == list(range(repeated[0].index - 2, repeated[0].index + 3))
    assert repeated[0].index in [d.index for d in part.damaged]


def test_on_damage_value_is_checked(bad):
    with pytest.raises(VidinvertError, match="--on-damage skip is not one of stop, conceal"):
        open_video(bad["corrupt"][0], on_damage="skip")
