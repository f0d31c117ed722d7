"""The report as a picture: a clip's per-frame figures over time, one colour per face track.

:func:`report_figure` draws a video report (:func:`~vidinvert.pipeline.report.build_report` /
``combine_track_reports``, or ``eval``'s per-video report) with matplotlib's Agg canvas (no
pyplot, no global backend change), panels sharing one time axis in seconds:

* identity to the track's first frame (the terms of eq. 9: ArcFace cosine, or dlib's descriptor
  distance) of the source, the inversion and each edit; absent with ``--no-identity``;
* flicker (mean absolute difference of consecutive aligned crops, [0,1] units) of each stream;
* the warping error of each stream (:mod:`vidinvert.metrics.warping`);
* the edit strength over time (S_t times the fade: keyframes and fades show), when there is an edit;
* a strip per track: frames detected, missing (filled in by interpolation) and passed through.

Streams differ by line style, tracks by colour (legend); beyond :data:`MAX_TRACKS` tracks the
ones with the most measured frames are drawn and a note says how many are left out. Every line
has the ``gid`` ``"<panel>/<stream>/<track>"`` (strips ``"faces/<track>"``, ``"missing/<track>"``,
``"passthrough/<track>"``) and holds one point per measured frame of its track, at its time, plus
a NaN point (x and y) wherever the track's frames break, so no line crosses a gap; tests read the
figure's data, not its pixels. Photos have no
time axis and get no picture.
"""

from __future__ import annotations

import math
from pathlib import Path

from vidinvert.fileio import atomic_path

MAX_TRACKS = 5
_STYLES = {"source": ":", "inversion": "--"}
_EDIT_STYLES = ("-", "-.", (0, (5, 1)), (0, (1, 1)), (0, (3, 1, 1, 1, 1, 1)))
_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink")


def figure_path(report_path: Path) -> Path:
    """Where the picture of the report ``report_path`` goes: beside it, ``.png`` (``r.json`` -> ``r.png``)."""
    return Path(report_path).with_suffix(".png")


def _streams(rep: dict) -> list[str]:
    names = list((rep.get("flicker") or {}).keys())
    return ["source", "inversion"] + [n for n in names if n not in ("source", "inversion")]


def _track_rows(rep: dict) -> dict[int, list[int]]:
    """Per track id, the positions of its frames in the ``per_frame`` lists."""
    pf = rep["per_frame"]
    tracks = pf.get("track") or [0] * len(pf["time"])
    rows: dict[int, list[int]] = {}
    for k, t in enumerate(tracks):
        rows.setdefault(int(t), []).append(k)
    return rows


def _values(pf: dict, key: str, rows: list[int]) -> list[float] | None:
    vals = pf.get(key)
    if vals is None:
        return None
    return [math.nan if vals[k] is None else float(vals[k]) for k in rows]


def _broken(pf: dict, rows: list[int], y: list[float]) -> tuple[list[float], list[float]]:
    """``(x, y)`` of a track's series, x the frame times, with a NaN point inserted wherever the
    track's frames break (a gap or a stretch passed through), so no line is drawn across it."""
    xs: list[float] = []
    ys: list[float] = []
    for j, (k, v) in enumerate(zip(rows, y)):
        if j and pf["index"][k] != pf["index"][rows[j - 1]] + 1:
            xs.append(math.nan)
            ys.append(math.nan)
        xs.append(float(pf["time"][k]))
        ys.append(v)
    return xs, ys


def _panels(rep: dict, streams: list[str]) -> list[tuple[str, str, str]]:
    """``(panel name, per-frame key prefix, y label)`` of the panels this report has data for."""
    pf = rep["per_frame"]
    out = []
    if any(f"id_first_{s}" in pf for s in streams):
        out.append(("identity", "id_first_", "identity\n(cosine to the first frame)"))
    elif any(f"id_first_distance_{s}" in pf for s in streams):
        out.append(("identity", "id_first_distance_", "identity\n(dlib distance to the first frame)"))
    out.append(("flicker", "flicker_", "flicker\n(mean |crop t - crop t-1|, [0,1])"))
    if any(f"warp_{s}" in pf for s in streams):
        label = (rep.get("warping_error_method") or "warping error").replace(" (", "\n(")
        out.append(("warping", "warp_", label))
    return out


def _frame_seconds(rep: dict, times: list[float]) -> float:
    clip = rep.get("clip") or {}
    n = (clip.get("last_frame") or 0) - (clip.get("first_frame") or 0)
    if n > 0 and clip.get("end") is not None:
        return (clip["end"] - clip["start"]) / n
    steps = sorted(b - a for a, b in zip(times, times[1:]) if b > a)
    return steps[len(steps) // 2] if steps else 0.04


def _spans(times: list[float], flags: list[bool], dt: float) -> list[tuple[float, float]]:
    """Merged ``(start, width)`` spans of the frames whose flag is set (each frame covers ``t ± dt/2``)."""
    out: list[list[float]] = []
    for t, f in zip(times, flags):
        if not f:
            continue
        if out and t - dt / 2 <= out[-1][1] + 1e-9:
            out[-1][1] = t + dt / 2
        else:
            out.append([t - dt / 2, t + dt / 2])
    return [(a, b - a) for a, b in out]


def _passed_through(rep: dict, pf: dict, rows: list[int], dt: float) -> list[tuple[float, float]]:
    """Spans of the clip where the track has no measured frame (face missing too long, or not yet there)."""
    clip = rep.get("clip") or {}
    index = [pf["index"][k] for k in rows]
    times = [pf["time"][k] for k in rows]
    first, last = clip.get("first_frame", index[0] if index else 0), clip.get("last_frame", index[-1] if index else 0)
    start, end = clip.get("start", times[0] if times else 0.0), clip.get("end", times[-1] if times else 0.0)
    out = []
    prev_i, prev_t = first - 1, start - dt
    for i, t in [*zip(index, times), (last + 1, end + dt)]:
        if i > prev_i + 1:
            out.append((prev_t + dt / 2, t - prev_t - dt))
        prev_i, prev_t = i, t
    return out


def report_figure(rep: dict):
    """The figure (a matplotlib ``Figure``) of a clip's report, or None when it has no time axis."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    pf = rep.get("per_frame") or {}
    if not pf.get("time"):
        return None
    streams = _streams(rep)
    rows = _track_rows(rep)
    sizes = {tr["track"]: tr.get("measured_frames", 0) for tr in rep.get("tracks") or []}
    shown = sorted(sorted(rows, key=lambda t: -sizes.get(t, len(rows[t])))[:MAX_TRACKS])
    panels = _panels(rep, streams)
    edits = [s for s in streams if s not in ("source", "inversion")]
    ratios = [1.0] * len(panels) + ([0.55] if edits else []) + [0.25 + 0.15 * len(shown)]
    height = 1.8 * sum(ratios) + 0.9
    fig = Figure(figsize=(9.0, height), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(ratios), 1, sharex=True, squeeze=False, height_ratios=ratios)[:, 0]
    style = {s: _STYLES.get(s, _EDIT_STYLES[(edits.index(s) if s in edits else 0) % len(_EDIT_STYLES)])
             for s in streams}
    colour = {t: _COLOURS[i % len(_COLOURS)] for i, t in enumerate(sorted(rows))}
    all_times = [pf["time"][k] for t in shown for k in rows[t]]
    dt = _frame_seconds(rep, sorted(all_times))
    for ax, (panel, prefix, label) in zip(axes, panels):
        for s in streams:
            for t in shown:
                y = _values(pf, f"{prefix}{s}", rows[t])
                if y is None:
                    continue
                ax.plot(*_broken(pf, rows[t], y), linestyle=style[s], color=colour[t], linewidth=1.1,
                        gid=f"{panel}/{s}/{t}")
        ax.set_ylabel(label, fontsize=7)
        ax.grid(alpha=0.3)
    k = len(panels)
    if edits:
        ax = axes[k]
        for t in shown:
            ax.plot(*_broken(pf, rows[t], _values(pf, "strength", rows[t])), color=colour[t], linewidth=1.1,
                    gid=f"strength/edit/{t}")
        ax.set_ylabel("edit strength\n(S_t x fade)", fontsize=7)
        ax.grid(alpha=0.3)
        k += 1
    strip = axes[k]
    for y, t in enumerate(shown):
        ts = [pf["time"][j] for j in rows[t]]
        interp = [bool(pf["interpolated"][j]) for j in rows[t]]
        strip.broken_barh(_spans(ts, [not f for f in interp], dt), (y - 0.35, 0.7), color=colour[t], gid=f"faces/{t}")
        strip.broken_barh(_spans(ts, interp, dt), (y - 0.35, 0.7), facecolor="white", edgecolor=colour[t],
                          hatch="////", gid=f"missing/{t}")
        strip.broken_barh(_passed_through(rep, pf, rows[t], dt), (y - 0.35, 0.7), facecolor="0.85",
                          edgecolor="0.6", hatch="xx", gid=f"passthrough/{t}")
    strip.set_yticks(range(len(shown)), [f"track {t}" for t in shown], fontsize=7)
    strip.set_ylim(-0.6, len(shown) - 0.4)
    strip.set_xlabel("time (s)")
    clip = rep.get("clip") or {}
    if clip.get("end") is not None:
        strip.set_xlim(clip["start"] - dt / 2, clip["end"] + dt / 2)
    handles = [Line2D([], [], color="black", linestyle=style[s], label=s) for s in streams]
    handles += [Patch(color=colour[t], label=f"track {t}") for t in shown]
    handles += [Patch(facecolor="white", edgecolor="black", hatch="////", label="face missing (interpolated)"),
                Patch(facecolor="0.85", edgecolor="0.6", hatch="xx", label="passed through")]
    fig.legend(handles=handles, loc="upper right", fontsize=7, ncol=min(4, len(handles)), frameon=False)
    title = Path(str(rep.get("input", ""))).name
    left = len(rows) - len(shown)
    if left > 0:
        title += f" ({left} more track{'s' if left > 1 else ''} not shown: the {len(shown)} with the most frames are)"
    fig.suptitle(title, fontsize=9, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / height))
    return fig


def write_report_figure(rep: dict, path: Path) -> Path | None:
    """Draw :func:`report_figure` and write it as PNG (atomically, replacing an older one beside its
    report, as the report itself is); None, and nothing written, when the report has no time axis."""
    fig = report_figure(rep)
    if fig is None:
        return None
    with atomic_path(Path(path), overwrite=True) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)
