"""Joining separately encoded segments (resumable runs) into one file, B-frames included."""

from __future__ import annotations

import av
import numpy as np
import pytest

from tests.video_fixtures import make_clip, psnr
from vidinvert.video import VideoWriter, open_video, probe
from vidinvert.video.concat import concat_segments


def _packets(path):
    with av.open(str(path)) as c:
        return [(p.pts, p.dts) for p in c.demux(c.streams.video[0]) if p.size]


def _encode_segments(src, tmp_path, cuts, codec="libx264"):
    info = probe(src)
    frames = list(open_video(src))
    bounds = [0, *cuts, len(frames)]
    segs = []
    for k, (a, b) in enumerate(zip(bounds, bounds[1:])):
        seg = tmp_path / f"seg{k}.mp4"
        with VideoWriter(seg, like=info, codec=codec, crf=18, preset="medium", carry_from=None) as w:
            for f in frames[a:b]:
                w.write(f.rgb, f.pts, f.duration)
        segs.append(seg)
    return info, frames, segs


# Frame gaps in ticks of 40: dense just before each join (cuts at 9 and 21) and wide just after,
# the case where an encoder's extrapolated first decode timestamps of a segment (pts0 minus the
# reorder delay measured on that segment's own gaps) fall before the previous segment's last ones.
GAPS = [1, 2, 1, 3, 1, 2, 1, 1, 1, 7, 7, 2, 1, 3, 1, 1, 2, 1, 1, 1, 1, 6, 6, 1, 2, 1, 1, 3, 1]
VFR = np.cumsum([0, *GAPS]) * 40


@pytest.mark.parametrize("codec, timestamps", [("libx264", "cfr"), ("libx264", "vfr"), ("libx265", "vfr")])
def test_joined_b_frame_segments_equal_one_file(tmp_path, codec, timestamps):
    pts = VFR.tolist() if timestamps == "vfr" else None
    src = make_clip(tmp_path / "src.mp4", size=(96, 64), n_frames=len(VFR), pts=pts, crf=10, audio=True).path
    info, frames, segs = _encode_segments(src, tmp_path, cuts=[9, 21], codec=codec)
    # the segments really use B-frames (decode order differs from presentation order)
    assert any(p[0] != sorted(q[0] for q in _packets(s))[i] for s in segs for i, p in enumerate(_packets(s)))
    out = concat_segments(segs, tmp_path / "joined.mp4", like=info, carry_from=src, trimmed=False)

    got = list(open_video(out))
    assert len(got) == len(frames)
    assert [f.time for f in got] == pytest.approx([f.time for f in frames], abs=1e-6)
    assert all(psnr(g.rgb, f.rgb) > 30 for g, f in zip(got, frames))
    dts = [d for _, d in _packets(out)]
    assert all(b > a for a, b in zip(dts, dts[1:])), "decode timestamps must increase strictly"
    assert all(d <= p for p, d in _packets(out))
    with av.open(str(out)) as c:  # the source's audio came along
        assert len(c.streams.audio) == 1
