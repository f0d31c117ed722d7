"""STIT's TL-ID / TG-ID against a direct double loop over the pairs, on planted embeddings."""

from __future__ import annotations

import math

import pytest
import torch

from tests.temporal_reference import direct
from vidinvert.metrics.temporal_identity import (
    run_bounds,
    sample_pairs,
    temporal_identity,
)


@pytest.fixture()
def planted():
    """One person (prototype A plus noise) in the source throughout; the output shows A in its
    first half and another person (B) in the second. Frames 9 and 10 of the source are noise
    nearly orthogonal to A (their pairs with the others are skipped)."""
    g = torch.Generator().manual_seed(0)
    d, n = 512, 60
    a, b = torch.randn(d, generator=g), torch.randn(d, generator=g)
    a, b = a / a.norm(), b / b.norm()

    def noisy(proto, k):
        return proto + 0.35 * torch.randn(k, d, generator=g) / math.sqrt(d)

    source = noisy(a, n)
    source[9:11] = torch.randn(2, d, generator=g)  # cos with A about 0 +- 0.05
    output = torch.cat([noisy(a, n // 2), noisy(b, n - n // 2)])
    return source, output


def test_output_equal_to_source_scores_one(planted):
    source, _ = planted
    ti = temporal_identity(source, {"inversion": source.clone()}, [0] * len(source))
    assert ti.tl_id["inversion"] == pytest.approx(1.0, abs=1e-6)
    assert ti.tg_id["inversion"] == pytest.approx(1.0, abs=1e-6)


def test_identity_switch_drops_tg_id_while_tl_id_stays_near_one(planted):
    source, output = planted
    runs = [0] * len(source)
    ti = temporal_identity(source, {"edit": output}, runs)
    tl, tg, (tl_used, tl_skip), (tg_used, tg_skip) = direct(source, output, runs)
    assert ti.tl_id["edit"] == pytest.approx(tl, rel=1e-6)
    assert ti.tg_id["edit"] == pytest.approx(tg, rel=1e-6)
    assert (ti.tl_pairs.used, ti.tl_pairs.skipped, ti.tl_pairs.total) == (tl_used, tl_skip, 59)
    assert (ti.tg_pairs.used, ti.tg_pairs.skipped, ti.tg_pairs.total) == (tg_used, tg_skip, 60 * 59 // 2)
    # the noise frames 9, 10 make 3 adjacent pairs (8-9, 9-10, 10-11) and 2*58 + 1 global pairs skip
    assert tl_skip == 3 and tg_skip == 2 * 58 + 1
    # half the pairs compare A with B: TG-ID falls far below 1; only the pair at the switch breaks TL-ID
    assert ti.tg_id["edit"] < 0.65
    assert ti.tl_id["edit"] > 0.96
    without_switch = temporal_identity(source, {"edit": output}, [0] * 30 + [1] * 30)
    assert without_switch.tl_id["edit"] == pytest.approx(1.0, abs=0.02)
    assert ti.tl_id["edit"] < without_switch.tl_id["edit"] - 0.01


def test_blockwise_runs_equal_the_direct_loop(planted):
    """Blocks that do not divide the runs, three runs (no pair spans two), two streams."""
    source, output = planted
    runs = [0] * 20 + [1] * 25 + [2] * 15
    ti = temporal_identity(source, {"a": output, "b": source.flip(0)}, runs, block=7)
    for name, out in (("a", output), ("b", source.flip(0))):
        tl, tg, (tl_used, _), (tg_used, _) = direct(source, out, runs)
        assert ti.tl_id[name] == pytest.approx(tl, rel=1e-6)
        assert ti.tg_id[name] == pytest.approx(tg, rel=1e-6)
    assert ti.tl_pairs.total == 19 + 24 + 14 and ti.tl_pairs.used == tl_used
    assert ti.tg_pairs.total == (20 * 19 + 25 * 24 + 15 * 14) // 2 and ti.tg_pairs.used == tg_used
    assert ti.tg_pairs.sampled is None


def test_above_the_exact_size_tg_id_is_a_labelled_seeded_sample(planted):
    source, output = planted
    runs = [0] * 30 + [1] * 30
    exact = temporal_identity(source, {"e": output}, runs)
    sampled = temporal_identity(source, {"e": output}, runs, exact_max_frames=40, sample_pairs_count=20000)
    again = temporal_identity(source, {"e": output}, runs, exact_max_frames=40, sample_pairs_count=20000)
    assert sampled.tg_pairs.sampled == 20000 and sampled.tg_pairs.used + sampled.tg_pairs.skipped == 20000
    assert sampled.tg_id == again.tg_id  # seeded
    assert sampled.tg_id["e"] == pytest.approx(exact.tg_id["e"], abs=0.01)
    assert sampled.tl_id == exact.tl_id  # TL-ID is always exact
    assert sampled.tg_pairs.weight == pytest.approx(exact.tg_pairs.used, rel=0.05)
    pairs = sample_pairs(run_bounds(runs), 5000, seed=3)
    assert (pairs[:, 0] < pairs[:, 1]).all()
    assert ((pairs // 30)[:, 0] == (pairs // 30)[:, 1]).all()  # within one run


def test_no_pairs_and_mismatched_shapes():
    one = temporal_identity(torch.randn(1, 8), {"x": torch.randn(1, 8)}, [0])
    assert one.tl_id["x"] is None and one.tg_id["x"] is None and one.tg_pairs.total == 0
    with pytest.raises(ValueError, match="do not match"):
        temporal_identity(torch.randn(4, 8), {"x": torch.randn(3, 8)}, [0] * 4)
    assert run_bounds([0, 0, 1, 1, 1, 4]) == [(0, 2), (2, 5), (5, 6)]
