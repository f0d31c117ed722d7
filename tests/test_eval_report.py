"""The report's statistics against numpy on hand-made results, and its files."""

from __future__ import annotations

import csv
import json
import random

import numpy as np
import pytest

from vidinvert.evaluate.report import markdown_table, plot_identity_consistency, summarize, write_report
from vidinvert.evaluate.suite import ItemResult


def _results():
    rng = np.random.default_rng(0)
    out = []
    for v in range(5):
        n = 3 + v
        per = {"ssim": rng.uniform(0.5, 0.9, n), "psnr": rng.uniform(20, 30, n), "mse": rng.uniform(0.001, 0.01, n),
               "lpips": rng.uniform(0.1, 0.3, n), "id": rng.uniform(0.6, 0.9, n)}
        out.append(ItemResult(key=f"Actor_0{v}/clip.mp4", path=f"/d/{v}.mp4", frames=n + 1, evaluated=n, detected=n,
                              passthrough=1, metrics={k: float(x.mean()) for k, x in per.items()},
                              per_frame={k: x.tolist() for k, x in per.items()}, frame_indices=list(range(n)),
                              ic_source=float(rng.uniform(0.8, 1)), ic_inversion=float(rng.uniform(0.7, 1)),
                              seconds=1.0))
    out.append(ItemResult(key="Actor_09/broken.mp4", path="/d/b.mp4", status="unreadable", error="not a video"))
    out.append(ItemResult(key="Actor_10/noface.mp4", path="/d/n.mp4", status="no-face", frames=4, passthrough=4))
    return out


def test_summary_statistics_match_numpy():
    results = _results()
    s = summarize(results, "video")
    ok = [r for r in results if r.ok]
    for m in ("ssim", "psnr", "mse", "lpips", "id"):
        per_video = np.array([r.metrics[m] for r in ok])
        assert s["metrics"][m]["mean"] == pytest.approx(per_video.mean(), rel=1e-12)
        assert s["metrics"][m]["std"] == pytest.approx(per_video.std(ddof=0), rel=1e-12)
        assert s["metrics"][m]["n"] == 5
        frames = np.concatenate([r.per_frame[m] for r in ok])
        assert s["frame_mean"][m] == pytest.approx(frames.mean(), rel=1e-12)
    ic = np.array([r.ic_inversion for r in ok])
    assert s["metrics"]["ic_inversion"]["mean"] == pytest.approx(ic.mean(), rel=1e-12)
    c = s["counts"]
    assert (c["selected"], c["evaluated"], c["skipped"], c["unreadable"], c["no_face"]) == (7, 5, 2, 1, 1)
    assert c["frames"] == sum(r.frames for r in results) and c["frames_without_face"] == 5 + 4
    assert [x["key"] for x in s["skipped"]] == ["Actor_09/broken.mp4", "Actor_10/noface.mp4"]


def test_summary_does_not_depend_on_arrival_order():
    results = _results()
    shuffled = results[:]
    random.Random(3).shuffle(shuffled)
    assert json.dumps(summarize(results, "video")) == json.dumps(summarize(shuffled, "video"))


def test_missing_metrics_and_non_finite_values():
    r1 = ItemResult(key="a", path="a", kind="image", evaluated=1, metrics={"ssim": 1.0, "psnr": float("inf"), "mse": 0.0})
    r2 = ItemResult(key="b", path="b", kind="image", evaluated=1, metrics={"ssim": 0.5, "psnr": 20.0, "mse": 0.01})
    s = summarize([r1, r2], "image")
    assert "lpips" not in s["metrics"] and "ic_source" not in s["metrics"]
    assert s["metrics"]["psnr"] == {"mean": 20.0, "std": 0.0, "n": 1, "non_finite": 1}
    table = markdown_table(s, "enc")
    assert "Table 1" in table and "| enc | 0.750 ± 0.250 | 20.00 ± 0.00 | 0.0050 ± 0.0050 | n/a | n/a |" in table


def test_table_and_files(tmp_path):
    results = _results()
    s = summarize(results, "video", selection={"source": "x"})
    table = markdown_table(s, "143_enc")
    lines = table.splitlines()
    assert lines[2] == "| Method | SSIM ↑ | PSNR ↑ | MSE ([-1,1]) ↓ | LPIPS ↓ | ID ↑ |"
    m = s["metrics"]
    assert f"| 143_enc | {m['ssim']['mean']:.3f} ± {m['ssim']['std']:.3f} | {m['psnr']['mean']:.2f} ± " in table
    assert "Identity consistency" in table and f"{m['ic_source']['mean']:.3f}" in table
    assert "over 5 videos" in lines[0] and "2 skipped" in lines[0]

    paths = write_report(tmp_path, results, s, "143_enc")
    rows = list(csv.DictReader(open(paths["csv"])))
    assert [r["key"] for r in rows] == sorted(r.key for r in results)
    assert rows[0]["status"] == "ok" and float(rows[0]["ssim"]) == results[0].metrics["ssim"]
    assert rows[5]["status"] == "unreadable" and rows[5]["ssim"] == "" and rows[5]["error"] == "not a video"
    saved = json.loads(paths["summary"].read_text())
    assert saved["metrics"] == json.loads(json.dumps(s["metrics"]))
    assert paths["table"].read_text() == table
    png = paths["plot"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(paths["plot"]) as im:
        assert im.size[0] > 300 and im.size[1] > 300


def test_no_plot_without_identity(tmp_path):
    r = ItemResult(key="a", path="a", evaluated=2, metrics={"ssim": 0.5})
    assert plot_identity_consistency([r], tmp_path / "p.png") is None
    assert not (tmp_path / "p.png").exists()
