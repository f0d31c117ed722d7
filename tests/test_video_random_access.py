"""Random access: same frames, indices and timestamps as the streaming reader, any order."""

from __future__ import annotations

import importlib.util
import logging
import pickle
from fractions import Fraction

import numpy as np
import pytest
import torch

from tests.video_fixtures import LogCapture, make_clip
from vidinvert.errors import VidinvertError
from vidinvert.video import RandomAccessVideo, open_video

requires_decord = pytest.mark.skipif(importlib.util.find_spec("decord") is None, reason="decord is not installed")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    d = tmp_path_factory.mktemp("ra")
    return make_clip(d / "c.mp4", n_frames=40, size=(96, 64), kind="noise", crf=20, options={"g": "8"})


@pytest.fixture(scope="module")
def streamed(clip):
    return list(open_video(clip.path))


@pytest.mark.parametrize("order", ["random", "backwards", "sequential"])
def test_get_matches_streaming_reader(clip, streamed, order):
    video = RandomAccessVideo(clip.path)
    assert len(video) == len(streamed) == 40
    idx = {"random": np.random.default_rng(0).permutation(40)[:15].tolist(),
           "backwards": list(range(39, -1, -5)),
           "sequential": list(range(40))}[order]
    for i in idx:
        f, ref = video.get(i), streamed[i]
        assert (f.index, f.pts, f.time) == (ref.index, ref.pts, ref.time)
        assert np.array_equal(f.rgb, ref.rgb)
    np.testing.assert_allclose(video.times, [f.time for f in streamed])
    video.close()


def test_get_batch_order_repeats_and_errors(clip, streamed):
    with RandomAccessVideo(clip.path) as video:
        batch = video.get_batch([30, 2, 2, -1])
        assert batch.indices == (30, 2, 2, 39) and batch.images.shape == (4, 3, 64, 96)
        for k, i in enumerate(batch.indices):
            assert torch.equal(batch.images[k].permute(1, 2, 0), torch.from_numpy(streamed[i].rgb))
        with pytest.raises(IndexError):
            video.get(40)
    with pytest.raises(VidinvertError, match="unknown video backend"):
        RandomAccessVideo(clip.path, backend="opencv")


def test_picklable_for_dataloader_workers(clip, streamed):
    video = RandomAccessVideo(clip.path)
    video.get(3)  # opens the file
    clone = pickle.loads(pickle.dumps(video))
    assert np.array_equal(clone.get(17).rgb, streamed[17].rgb)


def test_vfr_rotated_and_raw_streams(tmp_path):
    vfr = make_clip(tmp_path / "v.mp4", pts=[0, 40, 80, 160, 200, 320], time_base=Fraction(1, 1000), rotation=270)
    video = RandomAccessVideo(vfr.path)
    np.testing.assert_allclose(video.times, vfr.times, atol=1e-9)
    assert video.get(4).rgb.shape == (48, 64, 3)
    raw = make_clip(tmp_path / "r.h264", n_frames=12, audio=False, options={"g": "4"})  # no timestamps, no seeking
    ref = list(open_video(raw.path))
    video = RandomAccessVideo(raw.path)
    assert len(video) == 12
    for i in (9, 2, 11, 0):
        assert video.get(i).pts == ref[i].pts and np.array_equal(video.get(i).rgb, ref[i].rgb)


@requires_decord
def test_decord_backend_agrees_on_indices_and_nearly_on_pixels(tmp_path):
    # Tagged BT.709 full range: decord honours present tags (measured), so pixels agree too.
    clip = make_clip(tmp_path / "d.mp4", n_frames=10, size=(96, 64), audio=False, colorspace="bt709",
                     color_range="full")
    pyav, dec = RandomAccessVideo(clip.path), RandomAccessVideo(clip.path, backend="decord")
    assert dec.backend == "decord" and len(dec) == len(pyav)
    a, b = pyav.get_batch([7, 1]), dec.get_batch([7, 1])
    assert a.indices == b.indices and a.pts == b.pts and a.times == b.times
    diff = (a.images.int() - b.images.int()).abs().float()
    assert diff.mean() < 1


@requires_decord
def test_decord_falls_back_on_rotated_clips(tmp_path):
    clip = make_clip(tmp_path / "r.mp4", n_frames=3, rotation=90, audio=False)
    with LogCapture("vidinvert.video") as logs:
        video = RandomAccessVideo(clip.path, backend="decord")
    assert video.backend == "pyav" and video.get(1).rgb.shape == (48, 64, 3)
    assert any("decord cannot read rotated clips" in m for m in logs.messages(logging.WARNING))
