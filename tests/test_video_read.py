"""Streaming reader: indices, timestamps, rotation, VFR, odd sizes, 10-bit, trims, batches, memory."""

from __future__ import annotations

import tracemalloc
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from tests.video_fixtures import make_clip, make_corrupted, psnr
from vidinvert.errors import VidinvertError
from vidinvert.timespec import TimeRange
from vidinvert.video import FrameBatch, from_unit, open_video, probe


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("read")
    return {
        "plain": make_clip(d / "plain.mp4", n_frames=12),
        # keyframe every 5 frames, so trims really seek
        "gop5": make_clip(d / "gop5.mp4", n_frames=30, options={"g": "5", "keyint_min": "5"}),
        "vfr": make_clip(d / "vfr.mp4", pts=[0, 40, 80, 160, 200, 320, 360, 400, 470], time_base=Fraction(1, 1000)),
        "odd": make_clip(d / "odd.mp4", size=(63, 47), pix_fmt="yuv444p", n_frames=4),
        "10bit": make_clip(d / "ten.mp4", pix_fmt="yuv420p10le", n_frames=4),
        "raw": make_clip(d / "raw.h264", n_frames=30, audio=False, options={"g": "5"}),
    }


def test_frames_indices_times_and_content(clips):
    clip = clips["plain"]
    frames = list(open_video(clip.path))
    assert [f.index for f in frames] == list(range(clip.n_frames))
    assert [f.time for f in frames] == pytest.approx(list(clip.times), abs=1e-9)
    tb = probe(clip.path).time_base
    assert [f.pts for f in frames] == [round(t / tb) for t in clip.times]
    for f in frames:
        assert f.rgb.dtype == np.uint8 and f.rgb.shape == (48, 64, 3) and f.rgb.flags.c_contiguous
        assert psnr(f.rgb, clip.frame(f.index)) > 30


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_clip_comes_out_upright(tmp_path, rotation):
    clip = make_clip(tmp_path / f"r{rotation}.mp4", size=(64, 48), n_frames=3, rotation=rotation)
    # Independent reading of the tag: FFmpeg's av_display_rotation_get (counter-clockwise).
    with av.open(str(clip.path)) as c:
        ffmpeg_ccw = next(c.decode(video=0)).rotation
    info = probe(clip.path)
    assert info.rotation == (-round(ffmpeg_ccw)) % 360 == rotation
    assert (info.width, info.height) == (64, 48)
    stored = (48, 64) if rotation in (90, 270) else (64, 48)
    assert (info.coded_width, info.coded_height) == stored
    for f in open_video(clip.path):
        assert f.rgb.shape == (48, 64, 3)
        marker = f.rgb[:4, :4].reshape(-1, 3).mean(0)  # the red marker is top-left when upright
        assert marker[0] > 180 and marker[1] < 90 and marker[2] < 90
        assert psnr(f.rgb, clip.frame(f.index)) > 30


def test_mirrored_clip(tmp_path):
    clip = make_clip(tmp_path / "flip.mp4", n_frames=2, hflip=True)
    info = probe(clip.path)
    assert info.mirrored and info.rotation == 0
    for f in open_video(clip.path):
        assert f.rgb[:4, :4, 0].mean() > 180  # marker back at the top-left
        assert psnr(f.rgb, clip.frame(f.index)) > 30


def test_vfr_timestamps_are_kept(clips):
    clip = clips["vfr"]
    info = probe(clip.path)
    assert info.variable_frame_rate is True
    assert probe(clips["plain"].path).variable_frame_rate is False
    frames = list(open_video(clip.path))
    assert [f.time for f in frames] == pytest.approx(list(clip.times), abs=1e-9)
    assert info.frame_count == clip.n_frames and info.frame_count_exact


def test_odd_size_and_10bit(clips):
    odd = list(open_video(clips["odd"].path))
    assert odd[0].rgb.shape == (47, 63, 3)
    assert psnr(odd[0].rgb, clips["odd"].frame(0)) > 30
    info = probe(clips["10bit"].path)
    assert info.pix_fmt == "yuv420p10le" and info.bit_depth == 10
    for f in open_video(clips["10bit"].path):
        assert f.rgb.dtype == np.uint8 and psnr(f.rgb, clips["10bit"].frame(f.index)) > 30


@pytest.mark.parametrize(
    "start,end,expected",
    [
        ("0.5", "0.8", range(13, 20)),  # frame 12 is at 0.48 s, 13 at 0.52 s; 0.8 s (frame 20) excluded
        ("0.52s", None, range(13, 30)),
        ("7f", "13f", range(7, 13)),
        ("10f", "0.6", range(10, 15)),
        (None, "3f", range(0, 3)),
        ("29f", None, range(29, 30)),
    ],
)
@pytest.mark.parametrize("name", ["gop5", "raw"])
def test_trims_keep_true_indices_and_exact_frames(clips, name, start, end, expected):
    path = clips[name].path
    full = list(open_video(path))
    got = list(open_video(path, time_range=TimeRange.parse(start, end)))
    assert [f.index for f in got] == list(expected)
    for f in got:  # seeking to a keyframe and decoding forward gives the very same frames
        ref = full[f.index]
        assert (f.pts, f.time) == (ref.pts, ref.time)
        assert np.array_equal(f.rgb, ref.rgb)


def test_trim_count_and_errors(clips):
    path = clips["gop5"].path
    assert open_video(path, time_range=TimeRange.parse("0.5", "0.8")).count() == 7
    assert open_video(path).count() == 30
    with pytest.raises(VidinvertError, match="after the end"):
        list(open_video(path, time_range=TimeRange.parse("30f", None)))
    with pytest.raises(VidinvertError, match="after the end"):
        list(open_video(path, time_range=TimeRange.parse("12.0", None)))
    with pytest.raises(VidinvertError, match="no video frames in"):
        list(open_video(path, time_range=TimeRange.parse("20f", "0.2")))  # empty: mixed units


def test_batches(clips):
    clip = clips["plain"]
    frames = list(open_video(clip.path))
    for prefetch in (0, 2):
        batches = list(open_video(clip.path).batches(5, prefetch=prefetch))
        assert [len(b) for b in batches] == [5, 5, 2]
        b = batches[1]
        assert isinstance(b, FrameBatch) and b.images.dtype == torch.uint8 and b.images.shape == (5, 3, 48, 64)
        assert b.indices == (5, 6, 7, 8, 9) and b.pts == tuple(f.pts for f in frames[5:10])
        assert torch.equal(b.images[2].permute(1, 2, 0), torch.from_numpy(frames[7].rgb))
        unit = b.to_unit()
        assert unit.dtype == torch.float32 and unit.min() >= -1 and unit.max() <= 1
        assert torch.equal(from_unit(unit), b.images)


def test_prefetch_stops_cleanly_and_forwards_errors(clips, tmp_path):
    it = open_video(clips["gop5"].path).frames(prefetch=2)
    first = next(it)
    assert first.index == 0
    it.close()  # consumer stops early: the decode thread must end
    bad = make_corrupted(
        make_clip(tmp_path / "n.mp4", size=(176, 144), n_frames=30, kind="noise",
                  container_options={"movflags": "+faststart"}).path,
        tmp_path / "bad.mp4",
    )
    with pytest.raises(VidinvertError, match=r"frame \d+ \(\d+\.\d+ s\)"):
        list(open_video(bad).frames(prefetch=2))


def test_reader_is_lazy_and_memory_is_bounded(tmp_path):
    clip = make_clip(tmp_path / "long.mp4", size=(320, 240), n_frames=60, audio=False)
    frame_bytes = 320 * 240 * 3
    tracemalloc.start()
    try:
        n = 0
        for f in open_video(clip.path):
            n += 1
            del f
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == 60
    assert peak < 8 * frame_bytes  # a few frames in flight, never the clip (60 frames)
