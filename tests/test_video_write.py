"""Writer round trips: frames, timestamps, duration, audio, rotation, sizes, bit depth, trims, safety."""

from __future__ import annotations

import hashlib
import logging
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from tests.video_fixtures import LogCapture, make_clip, psnr
from vidinvert.errors import VidinvertError
from vidinvert.timespec import TimeRange
from vidinvert.video import VideoWriter, open_video, probe


def _roundtrip(src, dest, **kw):
    info = probe(src)
    frames = []
    with VideoWriter(dest, like=info, carry_from=kw.pop("carry_from", src), **kw) as w:
        for f in open_video(src, time_range=kw.get("time_range")):
            w.write_frame(f)
            frames.append(f)
    return info, frames, list(open_video(dest))


def _audio_packets(path):
    with av.open(str(path)) as c:
        out = []
        for s in c.streams.audio:
            out.append([(float(p.pts * p.time_base), bytes(p)) for p in c.demux(s) if p.size])
            c.seek(0)
        return out


def _audio_span(path):
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        pk = [p for p in c.demux(s) if p.size]
        return float(pk[0].pts * s.time_base), float((pk[-1].pts + pk[-1].duration) * s.time_base)


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_h264_round_trip_keeps_frames_timestamps_duration_and_audio(tmp_path):
    clip = make_clip(tmp_path / "s.mp4", n_frames=15, size=(96, 64))
    before = _sha(clip.path)
    info, frames, back = _roundtrip(clip.path, tmp_path / "o.mp4")
    out = probe(tmp_path / "o.mp4")
    assert out.frame_count == info.frame_count == len(back) == 15
    assert out.time_base == info.time_base
    assert [f.pts for f in back] == [f.pts for f in frames]
    assert abs(out.duration - info.duration) <= 1 / float(info.avg_frame_rate)
    assert (out.codec, out.pix_fmt) == ("h264", "yuv420p")
    for a, b in zip(frames, back):  # CRF 18 on these smooth frames stays well above 35 dB
        assert psnr(a.rgb, b.rgb) > 35
    assert _audio_packets(tmp_path / "o.mp4") == _audio_packets(clip.path)  # copied, byte-identical
    assert _sha(clip.path) == before  # the input is untouched


def test_rotated_source_is_written_upright_without_tag(tmp_path):
    clip = make_clip(tmp_path / "r.mp4", size=(48, 64), n_frames=4, rotation=90)
    _, frames, back = _roundtrip(clip.path, tmp_path / "o.mp4")
    out = probe(tmp_path / "o.mp4")
    assert (out.width, out.height, out.coded_width, out.coded_height) == (48, 64, 48, 64)
    assert out.rotation == 0 and out.orientation.is_identity
    with av.open(str(tmp_path / "o.mp4")) as c:
        assert next(c.decode(video=0)).rotation == 0
    assert all(psnr(a.rgb, b.rgb) > 35 for a, b in zip(frames, back))


def test_ffv1_rgb_is_exact(tmp_path):
    clip = make_clip(tmp_path / "s.mp4", n_frames=5, kind="noise", crf=30)
    _, frames, back = _roundtrip(clip.path, tmp_path / "o.mkv", codec="ffv1")
    assert probe(tmp_path / "o.mkv").pix_fmt == "bgr0"
    assert len(back) == len(frames)
    for a, b in zip(frames, back):
        assert np.array_equal(a.rgb, b.rgb)
    assert [round(f.time, 3) for f in back] == [round(f.time, 3) for f in frames]  # Matroska: ms
    # audio bytes identical (Matroska rescales timestamps to ms, the payload is copied)
    assert [b for _, b in _audio_packets(tmp_path / "o.mkv")[0]] == [b for _, b in _audio_packets(clip.path)[0]]
    # an RGB source can go back to H.264 (tagged with the matrix used)
    _, rgb_frames, h264 = _roundtrip(tmp_path / "o.mkv", tmp_path / "again.mp4", crf=0)
    assert probe(tmp_path / "again.mp4").colour.matrix == "bt601"
    assert all(psnr(a.rgb, b.rgb) > 35 for a, b in zip(rgb_frames, h264))


def test_write_batch_torch_equals_frames(tmp_path):
    clip = make_clip(tmp_path / "s.mp4", n_frames=6, kind="noise", audio=False)
    info = probe(clip.path)
    reader = open_video(clip.path)
    with VideoWriter(tmp_path / "o.mkv", like=info, codec="ffv1") as w:
        for batch in reader.batches(4):
            w.write_batch(batch.images, batch.pts, batch.durations)
    ref = list(open_video(clip.path))
    back = list(open_video(tmp_path / "o.mkv"))
    assert len(back) == 6 and all(np.array_equal(a.rgb, b.rgb) for a, b in zip(ref, back))
    with VideoWriter(tmp_path / "t.mkv", like=info, codec="ffv1") as w:
        w.write(torch.from_numpy(ref[0].rgb).permute(2, 0, 1), ref[0].pts)
    assert np.array_equal(next(iter(open_video(tmp_path / "t.mkv"))).rgb, ref[0].rgb)


def test_vfr_stays_vfr(tmp_path):
    pts = [0, 40, 80, 160, 200, 320, 360, 400, 470]
    clip = make_clip(tmp_path / "v.mp4", pts=pts, time_base=Fraction(1, 1000))
    info, frames, back = _roundtrip(clip.path, tmp_path / "o.mp4")
    assert [f.time for f in back] == pytest.approx(list(clip.times), abs=1e-9)
    out = probe(tmp_path / "o.mp4")
    assert out.variable_frame_rate is True and out.frame_count == len(pts)
    assert abs(out.duration - info.duration) <= 0.07  # within one (the longest) frame


def test_odd_size_is_kept_with_notice(tmp_path):
    # VP9 stores odd 4:2:0 frames; H.264 cannot, so the writer switches to 4:4:4 and says so.
    clip = make_clip(tmp_path / "odd.mkv", size=(63, 47), n_frames=3, codec="libvpx-vp9", crf=None)
    assert probe(clip.path).chroma == "420"
    with LogCapture("vidinvert.video") as logs:
        _, frames, back = _roundtrip(clip.path, tmp_path / "o.mp4")
    out = probe(tmp_path / "o.mp4")
    assert (out.width, out.height, out.pix_fmt) == (63, 47, "yuv444p")
    assert any("odd size 63x47" in m for m in logs.messages(logging.WARNING))
    assert all(psnr(a.rgb, b.rgb) > 35 for a, b in zip(frames, back))


@pytest.mark.parametrize("codec,ext", [("libx264", "mp4"), ("libx265", "mp4"), ("ffv1", "mkv")])
def test_ten_bit_stays_ten_bit(tmp_path, codec, ext):
    clip = make_clip(tmp_path / "t.mp4", n_frames=3, pix_fmt="yuv420p10le", audio=False)
    _, frames, back = _roundtrip(clip.path, tmp_path / f"o.{ext}", codec=codec)
    out = probe(tmp_path / f"o.{ext}")
    assert out.bit_depth == 10
    assert out.pix_fmt == {"libx264": "yuv420p10le", "libx265": "yuv420p10le", "ffv1": "gbrp10le"}[codec]
    for a, b in zip(frames, back):
        assert np.array_equal(a.rgb, b.rgb) if codec == "ffv1" else psnr(a.rgb, b.rgb) > 35


@pytest.mark.parametrize("start,end,indices", [("0.2", "0.6", range(5, 15)), ("5f", "20f", range(5, 20)),
                                               ("0.5", None, range(13, 30))])
def test_trim_cuts_video_and_audio_to_the_same_range(tmp_path, start, end, indices):
    clip = make_clip(tmp_path / "s.mp4", n_frames=30, options={"g": "5"})
    tr = TimeRange.parse(start, end)
    info, frames, back = _roundtrip(clip.path, tmp_path / "o.mp4", time_range=tr)
    assert [f.index for f in frames] == list(indices)
    out = probe(tmp_path / "o.mp4")
    assert out.frame_count == len(indices) and back[0].pts == 0  # the output starts at 0
    assert [f.pts for f in back] == [f.pts - frames[0].pts for f in frames]
    assert out.duration == pytest.approx(len(indices) * 0.04, abs=0.04)
    a0, a1 = _audio_span(tmp_path / "o.mp4")
    packet = 1024 / 48000  # the cut is packet-precise
    assert -1e-6 <= a0 <= packet and abs(a1 - out.duration) <= packet + 1e-6


def test_audio_that_cannot_be_copied_is_transcoded(tmp_path):
    clip = make_clip(tmp_path / "s.mkv", n_frames=10, audio_codec="libopus")
    with LogCapture("vidinvert.video") as logs:
        _roundtrip(clip.path, tmp_path / "o.mov")  # MOV cannot hold Opus
    out = probe(tmp_path / "o.mov")
    assert [a.codec for a in out.audio] == ["aac"]
    assert out.audio[0].duration == pytest.approx(clip.audio_seconds, abs=0.05)
    assert any("transcoding it to AAC" in m for m in logs.messages(logging.WARNING))


def test_failure_mid_write_leaves_nothing(tmp_path):
    clip = make_clip(tmp_path / "s.mp4", n_frames=8)
    info = probe(clip.path)
    dest = tmp_path / "out" / "o.mp4"
    dest.parent.mkdir()
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(dest, like=info, carry_from=clip.path) as w:
            for f in open_video(clip.path):
                w.write_frame(f)
                if f.index == 4:
                    raise RuntimeError("boom")
    assert list(dest.parent.iterdir()) == []  # neither the output nor a partial file
    with pytest.raises(VidinvertError, match="no frames were written"):
        with VideoWriter(dest, like=info):
            pass
    assert list(dest.parent.iterdir()) == []


def test_overwrite_and_input_protection(tmp_path):
    clip = make_clip(tmp_path / "s.mp4", n_frames=3)
    info = probe(clip.path)
    before = _sha(clip.path)
    for kwargs in ({}, {"overwrite": True}):
        with pytest.raises(VidinvertError, match="refusing to write over the input"):
            VideoWriter(clip.path, like=info, **kwargs)
    link = tmp_path / "alias.mp4"
    link.symlink_to(clip.path)
    with pytest.raises(VidinvertError, match="refusing to write over the input"):
        VideoWriter(link, like=info, overwrite=True)
    assert _sha(clip.path) == before
    dest = tmp_path / "o.mp4"
    dest.write_bytes(b"old")
    with pytest.raises(VidinvertError, match="--overwrite"):
        VideoWriter(dest, like=info)
    assert dest.read_bytes() == b"old"
    _roundtrip(clip.path, dest, overwrite=True)
    assert probe(dest).frame_count == 3
    with pytest.raises(VidinvertError, match="unsupported output type"):
        VideoWriter(tmp_path / "o.avi", like=info)
    with pytest.raises(VidinvertError, match="does not exist"):
        VideoWriter(tmp_path / "missing" / "o.mp4", like=info)
    for kwargs, msg in (({"preset": "quick"}, "--preset quick"), ({"crf": 60}, "--crf 60"),
                        ({"codec": "mpeg2video"}, "--codec"), ({"pix_fmt": "yuv420p", "codec": "ffv1"}, None)):
        if msg is None:  # a valid explicit choice
            VideoWriter(tmp_path / "p.mkv", like=info, **kwargs).abort()
            continue
        with pytest.raises(VidinvertError, match=msg):
            VideoWriter(tmp_path / "x.mp4", like=info, **kwargs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alias.mp4", "o.mp4", "s.mp4"]


def test_bad_frames_are_programming_errors(tmp_path):
    clip = make_clip(tmp_path / "s.mp4", n_frames=2, audio=False)
    info = probe(clip.path)
    with pytest.raises(ValueError, match="pts must increase"):
        with VideoWriter(tmp_path / "o.mp4", like=info) as w:
            w.write(clip.frame(0), 10)
            w.write(clip.frame(1), 10)
    with pytest.raises(ValueError, match="output is 64x48"):
        with VideoWriter(tmp_path / "o.mp4", like=info) as w:
            w.write(np.zeros((10, 10, 3), np.uint8), 0)
    assert not (tmp_path / "o.mp4").exists()
