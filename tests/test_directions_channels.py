"""``directions channels``: a channel planted to act only inside the mouth ranks first, and the probe
estimate of each channel's share inside the region agrees with the share computed from the channel's
image change by central finite differences (the slow obvious way)."""

from __future__ import annotations

import json

import pytest
import torch

from vidinvert.cli.app import main
from vidinvert.edit.channels import locate_channels
from vidinvert.edit.stylespace import compute_style_stats
from vidinvert.face.regions import RegionMasker
from vidinvert.models import tiny_pair
from vidinvert.models.stylespace import generator_layout

PLANTED = 5  # output channel of convs.7, read by channel 5 of the last ToRGB: StyleSpace channel 13_5


def planted_generator():
    """The tiny generator with convs.7's output channel 5 zero outside the canonical face's mouth: its
    conv weights and bias are zeroed and the layer's stored noise is 1 inside the mouth, 0 outside."""
    gen, enc = tiny_pair(0)
    core = RegionMasker(("mouth",), None, size=64).masks([None])[0, 0] >= 0.999
    with torch.no_grad():
        conv = gen.convs[7]
        conv.conv.weight[0, PLANTED] = 0
        conv.activate.bias[PLANTED] = 0
        conv.noise.weight.fill_(1.0)
        gen.noises.noise_8.copy_(core.float()[None, None])
    return gen.requires_grad_(False), enc


@pytest.fixture(scope="module")
def planted():
    gen, enc = planted_generator()
    return gen, enc, compute_style_stats(gen, 500).std


def test_the_estimate_matches_finite_differences(planted):
    gen, _, std = planted
    masker = RegionMasker(("mouth",), None, size=64)
    scores, info = locate_channels(gen, masker, std, samples=2, probes=16, seed=3)
    assert info["mask_source"] == "landmarks" and 0 < info["mask_mean"] < 0.2
    layout = generator_layout(gen)
    z = torch.randn(2, gen.style_dim, generator=torch.Generator().manual_seed(3))
    errors = []
    with torch.no_grad():
        w = gen.mapping(z)[:, None].expand(-1, gen.n_latent, -1)
        m = masker.masks([None, None])
        for s in scores[::35]:  # channels from the top to the bottom of the ranking
            i = layout.flat_index(s.layer, s.channel)
            off = torch.zeros(1, layout.total)
            off[0, i] = 1e-2 * float(std[i])
            j = (gen(w, style_offset=off) - gen(w, style_offset=-off)) / (2 * off[0, i])
            errors.append(abs(s.share - float((m * j.square()).sum() / j.square().sum())))
    assert len(errors) > 15 and max(errors) < 0.15 and sum(errors) / len(errors) < 0.04, errors
    assert scores[0].label == f"13_{PLANTED}" and scores[0].share > 0.99


def test_cli_ranks_the_planted_channel_first(tmp_path, planted, capsys):
    gen, enc, _ = planted
    path = tmp_path / "planted.pt"
    torch.save({"g_ema": gen.state_dict(), "latent_avg": enc.latent_avg[0].clone()}, path)
    args = ["directions", "channels", "--region", "mouth", "--top", "3", "--samples", "2", "--probes", "8",
            "--generator", str(path), "--weights-dir", str(tmp_path), "--device", "cpu"]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["channels"][0]["channel"] == f"13_{PLANTED}" and out["channels"][0]["share"] > 0.99
    assert len(out["channels"]) == 3 and out["size"] == 64 and out["mask_source"] == "landmarks"
    assert main([*args, "--size", "32", "--layers", "0-8"]) == 0  # the 64 px layers are not measured
    text = capsys.readouterr().out
    assert "13_" not in text and "directions preview" in text
    assert main([*args, "--encoder", "x.pth"]) != 0
    assert "generator alone" in capsys.readouterr().err
