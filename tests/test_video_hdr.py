"""HDR: PQ / HLG curves against published values, the SDR rendering R and its inverse, the probe's
HDR metadata and what the writer carries (libx265) or drops with a notice (other encoders)."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import torch

from tests.hdr_fixtures import MASTER_VALUES, MAX_CLL, decoded_signal, make_hdr_clip, make_hdr_face_clip
from tests.video_fixtures import LogCapture, make_clip
from vidinvert.cli.app import main
from vidinvert.video import VideoWriter, choose_pix_fmt, hdr, open_video, probe
from vidinvert.video.hdrmeta import HdrInfo, MasteringDisplay
from vidinvert.video.rendering import SDR_IDENTITY, Rendering, is_identity
from vidinvert.video.rendering_hdr import rendering_for

CODE10 = 1 / 1023  # one 10-bit code value, in [0, 1] signal units


@pytest.fixture(scope="module")
def pq_clip(tmp_path_factory):
    return make_hdr_clip(tmp_path_factory.mktemp("hdr") / "pq.mkv")


# ------------------------------------------------------------------------------- curves
def test_pq_matches_published_values():
    # SMPTE ST 2084 / BT.2408: 100 cd/m² -> 0.5081, 203 -> 0.5807 (10-bit narrow code 572-573), 1000 -> 0.7518
    assert float(hdr.pq_inverse_eotf(100.0)) == pytest.approx(0.50808, abs=5e-5)
    assert float(hdr.pq_inverse_eotf(203.0)) == pytest.approx(0.5807, abs=1e-4)
    assert round(64 + 876 * float(hdr.pq_inverse_eotf(203.0))) in (572, 573)
    assert float(hdr.pq_inverse_eotf(1000.0)) == pytest.approx(0.75183, abs=5e-5)
    assert float(hdr.pq_eotf(1.0)) == pytest.approx(10000.0)
    assert float(hdr.pq_eotf(0.5)) == pytest.approx(92.25, abs=0.05)
    e = np.linspace(0, 1, 1001)[1:]  # (0 cd/m² is the signal c1^m2 = 7.3e-7, not 0: a tiny offset of the standard)
    assert np.abs(hdr.pq_inverse_eotf(hdr.pq_eotf(e)) - e).max() < 1e-9


def test_hlg_matches_bt2100_and_bt2408():
    assert float(hdr.hlg_oetf(1 / 12)) == pytest.approx(0.5, abs=1e-12)
    assert float(hdr.hlg_oetf(1.0)) == pytest.approx(1.0, abs=1e-6)
    assert float(hdr.hlg_inverse_oetf(0.5)) == pytest.approx(1 / 12)
    white = np.full(3, hdr.hlg_inverse_oetf(0.75))  # BT.2408: 75% HLG is 203 cd/m² on a 1000 cd/m² display
    assert hdr.hlg_ootf(white) == pytest.approx(np.full(3, 203.0), abs=1.0)
    assert hdr.hlg_system_gamma(1000) == pytest.approx(1.2)
    e = np.random.default_rng(0).random((500, 3))
    assert np.abs(hdr.hlg_inverse_ootf(hdr.hlg_ootf(e)) - e).max() < 1e-9


def test_bt2020_to_bt709_matches_bt2087():
    bt709_to_bt2020 = np.array([[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]])
    assert np.abs(hdr.BT709_TO_BT2020 - bt709_to_bt2020).max() < 1e-4
    assert hdr.BT2020_TO_BT709 @ np.ones(3) == pytest.approx(np.ones(3))  # white stays white


def _eetf_reference(e: float, lw: float, lmax: float) -> float:
    """BT.2390 section 5.4 EETF, written out for one value (black level 0)."""
    def pq(nits):
        y = (nits / 10000) ** (2610 / 16384)
        return ((3424 / 4096 + 2413 / 128 * y) / (1 + 2392 / 128 * y)) ** (2523 / 32)
    e1 = e / pq(lw)
    m = pq(lmax) / pq(lw)
    ks = 1.5 * m - 0.5
    if e1 < ks:
        return e
    t = (min(e1, 1.0) - ks) / (1 - ks)
    p = (2 * t**3 - 3 * t**2 + 1) * ks + (t**3 - 2 * t**2 + t) * (1 - ks) + (-2 * t**3 + 3 * t**2) * m
    return p * pq(lw)


@pytest.mark.parametrize("peak", [1000.0, 4000.0])
def test_eetf_matches_the_bt2390_formula_and_inverts(peak):
    e = np.linspace(0, float(hdr.pq_inverse_eotf(peak)), 301)
    ref = np.array([_eetf_reference(v, peak, 100.0) for v in e])
    out = hdr.bt2390_eetf(e, peak, 100.0)
    assert np.abs(out - ref).max() < 1e-12
    assert float(hdr.pq_eotf(out[-1])) == pytest.approx(100.0, rel=1e-9)  # the source peak lands on 100 cd/m²
    assert np.all(np.diff(out) > 0)
    assert np.abs(hdr.bt2390_inverse_eetf(out, peak, 100.0) - e).max() < 1e-5


# ---------------------------------------------------------------------------- rendering
def test_probe_reads_pq_tags_and_metadata(pq_clip):
    info = probe(pq_clip)
    assert info.is_hdr and info.hdr.transfer == "pq" and info.bit_depth == 10
    assert (info.colour.trc, info.colour.primaries, info.colour.matrix) == (16, 9, "bt2020")
    md = info.hdr.mastering
    for k, v in MASTER_VALUES.items():
        assert getattr(md, k) == pytest.approx(v, abs=1e-9), k
    assert (info.hdr.light_level.max_cll, info.hdr.light_level.max_fall) == MAX_CLL
    spec = rendering_for(info).spec
    assert (spec.transfer, spec.source_peak, spec.source_peak_from, spec.target_peak) == ("pq", 1000.0,
                                                                                         "mastering display", 100.0)
    assert not probe(make_clip(pq_clip.parent / "sdr.mp4", n_frames=2, audio=False).path).is_hdr


def test_pq_fixture_round_trips_within_one_code_value(pq_clip):
    r = rendering_for(probe(pq_clip, count_frames=False))
    assert isinstance(r, Rendering) and not is_identity(r)
    x = decoded_signal(pq_clip)
    ok = r.unclipped(x)
    assert not ok[x.max(-1) > 0.7519].any()  # above PQ(1000 cd/m²), the mastering peak, R leaves [0, 1]
    assert ok.mean() > 0.5  # the ramp's colours are in BT.709; only the highlights above the peak clip
    y = r.forward(x)
    assert np.abs(r.inverse(y) - x).max(-1)[ok].max() < CODE10
    assert np.abs(r.inverse(y) - x).max() < CODE10  # unclipped R is invertible beyond that range too
    assert np.array_equal(r.render(x)[ok], y[ok]) and r.render(x).min() >= 0 and r.render(x).max() <= 1
    codes = np.arange(0, 770) / 1023  # the grey ramp in 10-bit codes up to PQ(1000) = 769.1 / 1023
    grey = np.repeat(codes[:, None], 3, 1)
    assert r.unclipped(grey).all()
    assert np.abs(r.inverse(r.forward(grey)) - grey).max() < CODE10
    t = torch.as_tensor(x, dtype=torch.float32).permute(2, 0, 1)[None]  # torch [1, 3, H, W]
    back = r.inverse(r.forward(t, axis=1), axis=1)[0].permute(1, 2, 0).numpy()
    assert np.abs(back - x).max(-1)[ok].max() < CODE10


def test_hlg_round_trip_and_spec(tmp_path):
    clip = make_hdr_clip(tmp_path / "hlg.mkv", transfer="hlg", metadata=False)
    info = probe(clip)
    assert info.is_hdr and info.hdr.transfer == "hlg" and info.hdr.mastering is None
    r = rendering_for(info)
    assert (r.spec.source_peak, r.spec.hlg_system_gamma) == (1000.0, pytest.approx(1.2))
    x = decoded_signal(clip)
    ok = r.unclipped(x)
    assert ok.mean() > 0.5
    assert np.abs(r.inverse(r.forward(x)) - x).max(-1)[ok].max() < CODE10
    grey = np.repeat((np.arange(1024) / 1023)[:, None], 3, 1)  # HLG: every grey reaches at most 1000 cd/m²
    assert np.abs(r.inverse(r.forward(grey)) - grey).max() < CODE10


def test_sdr_rendering_is_identity(tmp_path):
    r = rendering_for(HdrInfo())
    x = np.random.default_rng(1).random((4, 4, 3))
    assert r.is_identity and r.forward(x) is x and r.inverse(x) is x and r.name == SDR_IDENTITY.name
    bare = rendering_for(HdrInfo("pq", 9, None, None)).spec
    assert (bare.source_peak, bare.source_peak_from) == (1000.0, "default (no metadata)")
    assert MasteringDisplay.from_side_data(bytes(88)) is None


# -------------------------------------------------------------------------------- writer
def _rewrite(src, dest, codec):
    info = probe(src)
    with VideoWriter(dest, like=info, codec=codec, preset="ultrafast", carry_from=src) as w:
        for f in open_video(src):
            w.write_frame(f)
    return info, probe(dest)


def test_libx265_carries_tags_and_metadata(pq_clip, tmp_path):
    src, out = _rewrite(pq_clip, tmp_path / "o.mp4", "libx265")
    assert out.hdr == src.hdr
    assert (out.colour.trc, out.colour.primaries, out.colour.matrix, out.pix_fmt) == (16, 9, "bt2020", "yuv420p10le")


@pytest.mark.parametrize("codec,ext", [("libx264", "mkv"), ("ffv1", "mkv")])
def test_other_codecs_drop_metadata_with_one_notice(pq_clip, tmp_path, codec, ext):
    with LogCapture() as logs:
        _, out = _rewrite(pq_clip, tmp_path / f"o.{ext}", codec)
        _rewrite(pq_clip, tmp_path / f"again.{ext}", codec)
    notes = [m for m in logs.messages(logging.WARNING) if "HDR" in m]
    assert len(notes) == 1 and codec in notes[0]
    assert "mastering display" in notes[0] and "MaxCLL" in notes[0]
    assert out.hdr.transfer == "pq" and out.colour.trc == 16 and out.hdr.mastering is None


def test_twelve_bit_x265(tmp_path):
    clip = make_hdr_clip(tmp_path / "pq12.mkv", depth=12, n_frames=2)
    info = probe(clip)
    assert info.bit_depth == 12
    assert choose_pix_fmt("libx265", info) == "yuv420p12le"
    assert choose_pix_fmt("libx264", info) == "yuv420p10le"


def test_info_says_hdr_and_which_rendering(pq_clip, capfd):
    assert main(["info", str(pq_clip)]) == 0
    out, _ = capfd.readouterr()
    assert "PQ (SMPTE ST 2084)" in out and "MaxCLL 1000" in out and "pq-bt2390-1000to100-bt709-bt1886" in out
    assert main(["info", str(pq_clip), "--json"]) == 0
    d = json.loads(capfd.readouterr()[0])
    assert d["is_hdr"] is True and d["hdr"]["light_level"] == {"max_cll": 1000, "max_fall": 400}
    assert d["sdr_rendering"]["name"] == "pq-bt2390-1000to100-bt709-bt1886"
    assert math.isclose(d["sdr_rendering"]["source_peak"], 1000.0)


def test_edit_of_an_hdr_clip_records_r_and_keeps_the_metadata(tmp_path, tiny_weights, direction):
    clip = make_hdr_face_clip(tmp_path / "hdr.mkv")
    out = tmp_path / "edited.mp4"
    rc = main(["edit", str(clip), "--direction", str(direction), "--strength", "2", "-o", str(out), "--codec",
               "libx265", "--preset", "ultrafast", "--report", str(tmp_path / "r.json"), "--encoder",
               str(tiny_weights["encoder"]), "--generator", str(tiny_weights["generator"]), "--device", "cpu"])
    assert rc == 0
    src, got = probe(clip), probe(out)
    assert got.hdr == src.hdr and got.pix_fmt == "yuv420p10le"
    run = json.loads((tmp_path / "edited.run.json").read_text())
    for rec in (run["report"]["hdr"], json.loads((tmp_path / "r.json").read_text())["hdr"]):
        assert rec["is_hdr"] is True and rec["signal"].startswith("PQ (SMPTE ST 2084), BT.2020")
        assert rec["sdr_rendering"]["name"] == "pq-bt2390-1000to100-bt709-bt1886"
        assert rec["metadata"]["content_light_level"] == {"max_cll": 1000, "max_fall": 400}


@pytest.mark.parametrize("transfer", ["pq", "hlg"])
def test_working_copy_is_r_within_one_level(tmp_path, transfer):
    clip = make_hdr_clip(tmp_path / f"{transfer}.mkv", transfer=transfer, chroma="444")
    r = rendering_for(probe(clip))
    frame = next(iter(open_video(clip)))
    want = np.rint(255 * np.clip(r.forward(decoded_signal(clip)), 0, 1))  # R computed directly, float64
    assert np.abs(frame.rgb.astype(int) - want).max() <= 1


def test_eight_bit_frames_of_an_hdr_clip_are_written_through_r_inverse(tmp_path):
    clip = make_hdr_clip(tmp_path / "pq444.mkv", chroma="444")
    _rewrite(clip, tmp_path / "o.mkv", "ffv1")  # the reader's 8-bit frames (R), no planes
    src, out = decoded_signal(clip), decoded_signal(tmp_path / "o.mkv")
    ok = rendering_for(probe(clip)).unclipped(src)
    assert np.abs(out - src).max(-1)[ok].max() < 6 * CODE10  # the 8-bit SDR steps, brought back
