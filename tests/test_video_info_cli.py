"""``vidinvert info``: the table and the JSON describe the clip as generated."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from tests.video_fixtures import make_clip
from vidinvert.cli.app import main


def test_info_table(tmp_path, capfd):
    clip = make_clip(tmp_path / "phone.mp4", size=(48, 64), n_frames=10, rotation=90, colorspace="bt709",
                     color_range="limited")
    assert main(["info", str(clip.path)]) == 0
    out, err = capfd.readouterr()
    assert err == ""
    for text in ("phone.mp4", "h264", "0.400 s", "10", "25.000 fps", "constant", "stored size     64x48 pixels", "displayed size  48x64",
                 "90° clockwise", "yuv420p", "8-bit", "limited", "bt709", "aac, 48000 Hz, 2 ch"):
        assert text in out, text
    assert "untagged" not in out


def test_info_json(tmp_path, capfd):
    clip = make_clip(tmp_path / "vfr.mkv", pts=[0, 40, 80, 160, 200, 330], time_base=Fraction(1, 1000),
                     pix_fmt="yuv420p10le", audio_codec="libopus")
    assert main(["info", str(clip.path), "--json"]) == 0
    out, _ = capfd.readouterr()
    d = json.loads(out)
    assert d["frame_count"] == 6 and d["frame_count_exact"] is True
    assert d["variable_frame_rate"] is True and d["rotation"] == 0
    assert (d["width"], d["height"], d["bit_depth"], d["pix_fmt"]) == (64, 48, 10, "yuv420p10le")
    assert d["duration"] == pytest.approx(0.37, abs=1e-6)  # last frame at 0.33 s lasts as long as the gap before it (40 ms)
    assert d["colour"]["matrix_tagged"] is False and d["colour"]["matrix"] == "bt601"
    assert [(a["codec"], a["sample_rate"], a["channels"]) for a in d["audio"]] == [("opus", 48000, 2)]
