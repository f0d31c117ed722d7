"""How ``invert``/``edit`` results are shown: a table per clip, the files written, failures as
one line each, or everything as JSON (``--json``) on stdout."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from rich.table import Table

from vidinvert.cli import common
from vidinvert.errors import VidinvertError


def report_table(rep: dict):
    """A clip's report as a Rich table: identity and stability per stream (per track and stream
    when several faces were tracked). With dlib the identity columns are shares of frames within
    0.6 with the mean distance beside them; with ArcFace cosines (eq. 9). TL-ID / TG-ID (STIT,
    ArcFace only) and the warping error (with the source's subtracted) follow."""
    t = Table(title=f"{Path(rep['input']).name}: identity and stability", show_lines=False)
    dlib = any(v is not None for v in (rep.get("identity_distance") or {}).values())
    unit = " (share ≤0.6, mean d)" if dlib else " (cos)" if rep["identity_embedder"] else ""
    t.add_column("stream")
    t.add_column("identity consistency" + unit, justify="right")
    t.add_column("identity vs source" + unit, justify="right")
    t.add_column("flicker (- source)", justify="right")
    t.add_column("TL-ID", justify="right")
    t.add_column("TG-ID", justify="right")
    t.add_column("warping error (- source)", justify="right")
    tracks = rep.get("tracks") or []
    if len(tracks) > 1:  # one row per track and stream
        t.columns[0].header = "track: stream"
        for tr in tracks:
            _stream_rows(t, tr, f"{tr['track']}: ", bool(rep["identity_embedder"]))
    else:
        _stream_rows(t, rep, "", bool(rep["identity_embedder"]))
    fr = rep["frames"]
    faces = f"{len(tracks)} face tracks, face-" if len(tracks) > 1 else ""
    measure = f", {rep['identity_measure']}" if rep.get("identity_measure") and rep["identity_embedder"] else ""
    t.caption = (f"{faces}frames: {fr['edited']} edited ({fr['detected']} detected, {fr['interpolated']} interpolated), "
                 f"{fr['passthrough']} passed through; identity: {rep['identity_embedder'] or 'off'}{measure}; "
                 f"{rep['fps_end_to_end']} frames/s end to end on {rep['device']}; {_temporal_note(rep)}")
    return t


def _temporal_note(rep: dict) -> str:
    """The caption's words on TL-ID / TG-ID (why null, pairs skipped, sampled) and the warping error."""
    ti = rep.get("temporal_identity") or {}
    if ti.get("reason"):
        words = f"TL-ID/TG-ID: {ti['reason']}"
    else:
        tl, tg = ti.get("tl_pairs") or {}, ti.get("tg_pairs") or {}
        sampled = f", TG-ID from {tg['sampled']} sampled pairs" if tg.get("sampled") else ""
        words = (f"TL-ID/TG-ID: {tl.get('skipped', 0)} + {tg.get('skipped', 0)} pairs skipped "
                 f"(source cosine ≤ {ti.get('min_source_cosine')}){sampled}")
    return f"{words}; {rep.get('warping_error_method', 'warping error')}"


def _num(x, nd=4) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def _sci(x) -> str:
    return "-" if x is None else f"{x:.2e}"


def _with_distance(x, d) -> str:
    """A dlib share with its mean distance, ``0.95 (d 0.312)``; a cosine as is."""
    if x is None:
        return "-"
    return _num(x) if d is None else f"{x:.2f} (d {d:.3f})"


def _stream_rows(t, rep: dict, prefix: str, identity: bool) -> None:
    """Rows of one report (or one track's part of it): source, inversion, then each edit."""
    ic, ids, fl, fms = rep["identity_consistency"], rep["identity_to_source"], rep["flicker"], rep["flicker_minus_source"]
    dist, dist_src = rep.get("identity_distance") or {}, rep.get("identity_distance_to_source") or {}
    tl, tg, we = rep.get("tl_id") or {}, rep.get("tg_id") or {}, rep.get("warping_error") or {}
    w_src = we.get("source")
    t.add_row(f"{prefix}source", _with_distance(ic.get("source"), dist.get("source")), "1" if identity else "-",
              _num(fl.get("source")), "-", "-", _sci(w_src))
    for name in ["inversion"] + [k for k in ic if k not in ("source", "inversion")]:
        w = we.get(name)
        t.add_row(f"{prefix}{name}", _with_distance(ic.get(name), dist.get(name)),
                  _with_distance(ids.get(name), dist_src.get(name)), f"{_num(fl.get(name))} ({_num(fms.get(name), 5)})",
                  _num(tl.get(name)), _num(tg.get(name)),
                  f"{_sci(w)} ({'-' if w is None or w_src is None else f'{w - w_src:+.2e}'})")


def result_printer(as_json: bool, n_inputs: int) -> Callable:
    """The ``on_result`` callback: a failed input is one red line at once; a finished one prints
    its table (clips) and the files written, unless ``--json`` (printed at the end)."""

    def show(r) -> None:
        if not r.ok:
            common.render_error(VidinvertError(f"{r.source}: {r.error}"))
            return
        if as_json:
            return
        rep = r.report
        if rep is not None and "identity_consistency" in rep:
            common.out.print(report_table(rep))
        for path in r.outputs.values():
            common.out.print(f"wrote {path}")
        if rep is not None and rep.get("preview"):
            p = rep["preview"]
            common.out.print(f"preview: {p['frames_rendered']} frames at {p['fps']:.2f} frames/s; "
                             f"the whole clip ({p['frames_total']} frames) needs about {p['estimated_seconds']:.0f} s")

    return show


def failure_count(result) -> None:
    """The end of a run of several inputs: how many failed (each was one red line already)."""
    failed = result.failed
    if failed and len(result.items) > 1:
        common.err.print(f"[red]{len(failed)} of {len(result.items)} inputs failed[/red]")
