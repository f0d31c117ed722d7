"""The benchmark's outputs: per-item CSV, summary JSON, a Markdown table like the paper's Table 3
(Table 1 in image mode), the identity-consistency box plot like its Figure 9 and, in video mode,
each video's figure over time (``figures/<key>.png``, the picture the video job writes beside
``--report``: :mod:`vidinvert.pipeline.report_figure`).

Statistics are over items (each video or image weighs the same): mean and population standard
deviation (``ddof=0``) of the per-item means; ``frame_mean`` weighs every evaluated frame the
same. Items are sorted by key first, so the numbers do not depend on the order results arrive in
(one process or many). Non-finite values (PSNR of identical images) are left out and counted.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vidinvert import fileio
from vidinvert.evaluate.suite import HIGHER_IS_BETTER, PAIR_METRICS, VIDEO_METRICS, ItemResult
from vidinvert.fileio import atomic_path
from vidinvert.pipeline.report_figure import write_report_figure

LABELS = {"ssim": "SSIM", "psnr": "PSNR", "mse": "MSE ([-1,1])", "lpips": "LPIPS", "id": "ID",
          "ic_source": "IC source", "ic_inversion": "IC inversion", "tl_id": "TL-ID", "tg_id": "TG-ID",
          "warp_source": "Warping error, source", "warp_inversion": "Warping error, inversion"}
# decimals of each metric's cell; None: scientific notation (the warping errors are ~1e-4)
DECIMALS = {"ssim": 3, "psnr": 2, "mse": 4, "lpips": 3, "id": 3, "ic_source": 3, "ic_inversion": 3, "tl_id": 3,
            "tg_id": 3, "warp_source": None, "warp_inversion": None}
TEMPORAL_COLUMNS = ("tl_id", "tg_id", "warp_source", "warp_inversion")
CSV_NAME = {"video": "videos.csv", "image": "images.csv"}
SUMMARY_NAME = "summary.json"
TABLE_NAME = "table.md"
PLOT_NAME = "identity_consistency.png"
FIGURES_DIR = "figures"


def _stats(values: Sequence[float | None]) -> dict[str, Any]:
    vals = np.array([v for v in values if v is not None], np.float64)
    finite = vals[np.isfinite(vals)]
    if finite.size == 0:
        return {"mean": None, "std": None, "n": 0, "non_finite": int(vals.size)}
    return {"mean": float(finite.mean()), "std": float(finite.std()), "n": int(finite.size),
            "non_finite": int(vals.size - finite.size)}


def summarize(results: Sequence[ItemResult], mode: str, *, selection: dict | None = None,
              extra: dict | None = None) -> dict[str, Any]:
    """The summary dict (``metrics``, ``frame_mean``, ``counts``, ``selection`` and ``extra``)."""
    items = sorted(results, key=lambda r: r.key)
    ok = [r for r in items if r.ok]
    names = list(PAIR_METRICS) + (list(VIDEO_METRICS) if mode == "video" else [])
    metrics: dict[str, Any] = {}
    frame_mean: dict[str, float | None] = {}
    for m in names:
        if m in VIDEO_METRICS:
            vals = [getattr(r, m) for r in ok]
        else:
            vals = [r.metrics.get(m) for r in ok]
        if all(v is None for v in vals):
            continue  # metric not computed (no LPIPS / identity network)
        metrics[m] = _stats(vals)
        if m in PAIR_METRICS:
            per_frame = np.array([x for r in ok for x in r.per_frame.get(m, []) if x is not None], np.float64)
            per_frame = per_frame[np.isfinite(per_frame)]
            frame_mean[m] = float(per_frame.mean()) if per_frame.size else None
    unit = "videos" if mode == "video" else "images"
    counts = {
        "selected": len(items),
        "evaluated": len(ok),
        "skipped": len(items) - len(ok),
        "unreadable": sum(r.status == "unreadable" for r in items),
        "frames": sum(r.frames for r in items),
        "frames_evaluated": sum(r.evaluated for r in ok),
    }
    if mode == "video":
        counts["no_face"] = sum(r.status == "no-face" for r in items)
        counts["frames_without_face"] = sum(r.passthrough for r in items)
        counts["frames_interpolated"] = sum(r.interpolated for r in ok)
    summary: dict[str, Any] = {
        "mode": mode,
        "unit": unit,
        "metrics": metrics,
        "frame_mean": frame_mean,
        "counts": counts,
        "skipped": [{"key": r.key, "status": r.status, "error": r.error} for r in items if not r.ok],
        "selection": selection or {},
    }
    if extra:
        summary.update(extra)
    return summary


def _cell(stat: dict | None, m: str) -> str:
    if not stat or stat.get("mean") is None:
        return "n/a"
    d = DECIMALS[m]
    if d is None:
        return f"{stat['mean']:.2e} ± {stat['std']:.1e}"
    return f"{stat['mean']:.{d}f} ± {stat['std']:.{d}f}"


def markdown_table(summary: dict[str, Any], method: str = "ours") -> str:
    """The Markdown table: one row per method (here one), columns SSIM, PSNR, MSE, LPIPS, ID;
    in video mode a second table with identity consistency (source vs inversion) and a third with
    TL-ID, TG-ID and the warping errors (source and inversion)."""
    m = summary["metrics"]
    arrow = {k: ("↑" if v else "↓") for k, v in HIGHER_IS_BETTER.items()}
    head = "| Method | " + " | ".join(f"{LABELS[k]} {arrow[k]}" for k in PAIR_METRICS) + " |"
    sep = "|" + "---|" * (len(PAIR_METRICS) + 1)
    row = f"| {method} | " + " | ".join(_cell(m.get(k), k) for k in PAIR_METRICS) + " |"
    c = summary["counts"]
    title = "Video inversion (Table 3)" if summary["mode"] == "video" else "Image inversion (Table 1)"
    lines = [f"**{title}**: mean ± std over {c['evaluated']} {summary['unit']} "
             f"({c['frames_evaluated']} frames); {c['skipped']} skipped", "", head, sep, row]
    if summary["mode"] == "video":
        lines += ["", "| Identity consistency ↑ | Source | Inversion |", "|---|---|---|",
                  f"| {method} | {_cell(m.get('ic_source'), 'ic_source')} | {_cell(m.get('ic_inversion'), 'ic_inversion')} |"]
        lines += ["", "| Temporal | " + " | ".join(f"{LABELS[k]} {arrow[k]}" for k in TEMPORAL_COLUMNS) + " |",
                  "|" + "---|" * (len(TEMPORAL_COLUMNS) + 1),
                  f"| {method} | " + " | ".join(_cell(m.get(k), k) for k in TEMPORAL_COLUMNS) + " |"]
    return "\n".join(lines) + "\n"


def write_csv(path: Path, results: Sequence[ItemResult]) -> Path:
    """One row per item (sorted by key), written atomically."""
    rows = [r.row() for r in sorted(results, key=lambda r: r.key)]
    fieldnames: list[str] = []
    for r in rows:
        fieldnames += [k for k in r if k not in fieldnames]
    with atomic_path(Path(path), overwrite=True) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fieldnames)
            w.writeheader()
            w.writerows(rows)
    return Path(path)


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def write_json(path: Path, obj: Any) -> Path:
    """Strict JSON (NaN written as null) through :func:`vidinvert.fileio.write_json`."""
    return fileio.write_json(path, _json_safe(obj), allow_nan=False)


def plot_identity_consistency(results: Sequence[ItemResult], path: Path, method: str = "inversion") -> Path | None:
    """Box plot of per-video identity consistency, source crops vs reconstructions (Figure 9).

    Uses matplotlib's Agg canvas directly (no pyplot, no global backend change). None when no
    video has identity consistency.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ok = [r for r in sorted(results, key=lambda r: r.key) if r.ok and r.ic_source is not None]
    if not ok:
        return None
    src = [r.ic_source for r in ok]
    inv = [r.ic_inversion for r in ok]
    fig = Figure(figsize=(4.0, 3.6), dpi=150)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.boxplot([src, inv], showfliers=True)
    ax.set_xticks([1, 2], ["Source", method])
    ax.set_ylabel("Identity consistency")
    ax.set_title(f"Identity consistency over {len(ok)} videos", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_path(Path(path), overwrite=True) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)


def video_figure_path(figures_dir: Path, key: str) -> Path:
    """``figures/<key>.png`` (the key keeps its suffix: ``sub/a.mp4`` -> ``figures/sub/a.mp4.png``)."""
    return Path(figures_dir) / f"{key}.png"


def write_video_figures(figures_dir: Path, results: Sequence[ItemResult]) -> list[Path]:
    """Each evaluated video's figure over time (:func:`~vidinvert.pipeline.report_figure.report_figure`
    of its ``temporal`` report); the paths written."""
    written = []
    for r in sorted(results, key=lambda r: r.key):
        if not r.ok or not r.temporal:
            continue
        path = video_figure_path(figures_dir, r.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        if write_report_figure(r.temporal, path) is not None:
            written.append(path)
    return written


def write_report(out_dir: Path, results: Sequence[ItemResult], summary: dict[str, Any],
                 method: str = "ours") -> dict[str, Path]:
    """Write every output file into ``out_dir``; returns their paths by kind."""
    out_dir = Path(out_dir)
    mode = summary["mode"]
    paths = {"csv": write_csv(out_dir / CSV_NAME[mode], results)}
    table = markdown_table(summary, method)
    with atomic_path(out_dir / TABLE_NAME, overwrite=True) as tmp:
        tmp.write_text(table)
    paths["table"] = out_dir / TABLE_NAME
    if mode == "video":
        plot = plot_identity_consistency(results, out_dir / PLOT_NAME, method)
        if plot is not None:
            paths["plot"] = plot
        if write_video_figures(out_dir / FIGURES_DIR, results):
            paths["figures"] = out_dir / FIGURES_DIR
    summary["files"] = {k: str(v) for k, v in paths.items()} | {"summary": str(out_dir / SUMMARY_NAME)}
    paths["summary"] = write_json(out_dir / SUMMARY_NAME, summary)
    return paths
