"""The corpus manifest: one JSON line per finished input, one file per rank, merged on demand.

Files in the output folder (a documented, stable format):

* ``manifest.rank-R.jsonl``: rank (or shard) ``R`` appends one record per input it finished,
  each line written whole, flushed and fsync'ed. Only rank ``R`` ever writes it.
* ``manifest.jsonl``: the merge of every rank file: the latest record of each input (by its
  ``time``, then file name and line), sorted by ``input``. Rewritten atomically by each merge.
* ``manifest.summary.json``: counts and rates of the merged manifest.

A record::

    {"input": "sub/clip.mp4",          # path relative to its source root (outputs mirror it)
     "path": "corpus/sub/clip.mp4",    # as found
     "status": "done" | "failed",
     "outputs": ["sub/clip.smile.mp4"], "output_bytes": [123456],   # relative to the output folder
     "frames": 240, "seconds": 12.5, "fps": 19.2, "identity_consistency": 0.91 | null,
     "error": null | "one line", "fingerprint": "9f0c...", "rank": 0, "world": 2,
     "finished_at": "2026-12-03T10:00:00Z", "time": 1796292000.0, "details": {...},
     # clips only (absent for photos and failures):
     "tl_id": 0.98 | null, "tg_id": 0.95 | null, "warping_error": 0.0004 | null,
     "temporal": {"tl_id": {"inversion": ..., "smile": ...}, "tg_id": {...},
                  "warping_error": {"source": ..., "inversion": ..., "smile": ...},
                  "reason": null | "needs ArcFace weights" | "identity metrics off",
                  "tracks": [{"track": 0, "tl_id": {...}, "tg_id": {...}, "warping_error": {...}}]}}

``identity_consistency``, ``tl_id``, ``tg_id`` and ``warping_error`` are the first edit's figures
(the inversion's for ``invert``); ``temporal`` has every stream's (``tracks`` with several faces).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vidinvert.errors import VidinvertError
from vidinvert.fileio import atomic_path, write_json

log = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"
SUMMARY = "manifest.summary.json"
RANK_PREFIX = "manifest.rank-"


def rank_manifest(out_dir: Path, rank: int) -> Path:
    """``out_dir/manifest.rank-R.jsonl``."""
    return Path(out_dir) / f"{RANK_PREFIX}{rank}.jsonl"


def rank_files(out_dir: Path) -> list[Path]:
    """Every rank manifest in ``out_dir``, by rank number."""
    found = []
    for p in Path(out_dir).glob(f"{RANK_PREFIX}*.jsonl"):
        num = p.name[len(RANK_PREFIX):-len(".jsonl")]
        if num.isdigit():
            found.append((int(num), p))
    return [p for _, p in sorted(found)]


class ManifestWriter:
    """Appends records to one rank's manifest (one whole line per record, flushed and fsync'ed)."""

    def __init__(self, out_dir: Path, rank: int) -> None:
        self.path = rank_manifest(out_dir, rank)
        if self.path.exists() and self.path.stat().st_size:
            with open(self.path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                torn = fh.read(1) != b"\n"
            if torn:  # a process died mid-line: end that line so the next record stays whole
                self._write("\n")

    def _write(self, text: str) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    def append(self, record: Mapping[str, Any]) -> None:
        self._write(json.dumps(record, sort_keys=True, default=str) + "\n")


def read_records(path: Path) -> list[dict]:
    """The records of one manifest file; a line that is not a JSON object (a torn last line of a
    process that died, or one being written right now) is skipped."""
    out = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            log.debug(f"{path}:{n}: not a whole JSON line, skipped")
            continue
        if isinstance(rec, dict) and isinstance(rec.get("input"), str):
            out.append(rec)
    return out


def latest_records(out_dir: Path) -> dict[str, dict]:
    """Each input's latest record over every rank file (largest ``time``; then file, then line)."""
    best: dict[str, tuple[tuple, dict]] = {}
    for p in rank_files(out_dir):
        for line_no, rec in enumerate(read_records(p)):
            order = (float(rec.get("time") or 0.0), p.name, line_no)
            key = rec["input"]
            if key not in best or order > best[key][0]:
                best[key] = (order, rec)
    return {k: v[1] for k, v in best.items()}


def now_iso(t: float | None = None) -> str:
    """UTC time as ``2026-12-03T10:00:00Z``."""
    return datetime.fromtimestamp(time.time() if t is None else t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def output_entry(path: Path, out_dir: Path) -> str:
    """How an output is named in a record: relative to ``out_dir`` (POSIX) when inside it, else absolute."""
    p, root = Path(path).resolve(), Path(out_dir).resolve()
    try:
        return p.relative_to(root).as_posix()
    except ValueError:
        return p.as_posix()


def outputs_complete(record: Mapping[str, Any], out_dir: Path) -> bool:
    """True when every output of ``record`` exists with the size it was recorded with."""
    outputs = record.get("outputs") or []
    sizes = record.get("output_bytes") or []
    if not outputs or len(sizes) != len(outputs):
        return False
    for name, size in zip(outputs, sizes):
        p = Path(name) if Path(name).is_absolute() else Path(out_dir) / name
        try:
            if p.stat().st_size != size:
                return False
        except OSError:
            return False
    return True


def is_done(record: Mapping[str, Any] | None, out_dir: Path, fingerprint: str) -> bool:
    """True when ``record`` says done with ``fingerprint`` and its outputs are all there, intact."""
    return (record is not None and record.get("status") == "done" and record.get("fingerprint") == fingerprint
            and outputs_complete(record, out_dir))


def skip_reason(record: Mapping[str, Any] | None, out_dir: Path, fingerprint: str,
                retry_failed: bool) -> str | None:
    """Why an input needs no work now: ``"done"``, ``"failed"`` (failed with this configuration
    and ``retry_failed`` off), or None (run it: never seen, another configuration, an output
    missing or changed, or a failure being retried)."""
    if is_done(record, out_dir, fingerprint):
        return "done"
    if (record is not None and record.get("status") == "failed" and record.get("fingerprint") == fingerprint
            and not retry_failed):
        return "failed"
    return None


def _mean(values: Sequence[float]) -> float | None:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return sum(vals) / len(vals) if vals else None


def summarize(records: Sequence[Mapping[str, Any]]) -> dict:
    """Counts and rates over records (one per input)."""
    done = [r for r in records if r.get("status") == "done"]
    failed = [r for r in records if r.get("status") != "done"]
    frames = sum(int(r.get("frames") or 0) for r in done)
    seconds = sum(float(r.get("seconds") or 0.0) for r in done)
    return {
        "inputs": len(records),
        "done": len(done),
        "failed": len(failed),
        "frames": frames,
        "seconds": round(seconds, 3),
        "frames_per_second": round(frames / seconds, 3) if seconds > 0 else None,
        "identity_consistency_mean": _mean([r.get("identity_consistency") for r in done]),
        **{f"{k}_mean": _mean([r.get(k) for r in done]) for k in ("tl_id", "tg_id", "warping_error")},
        "fingerprints": sorted({str(r.get("fingerprint")) for r in records}),
        "failed_inputs": [{"input": r["input"], "error": r.get("error")} for r in failed],
    }


def merge_manifests(out_dir: Path) -> dict:
    """Write ``manifest.jsonl`` (latest record per input, sorted by input) and
    ``manifest.summary.json`` from every rank file in ``out_dir``; returns the summary.

    Safe at any time (while ranks still work it merges what they have finished) and idempotent.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise VidinvertError(f"{out_dir} is not a folder")
    files = rank_files(out_dir)
    if not files:
        raise VidinvertError(f"no {RANK_PREFIX}*.jsonl files in {out_dir}: nothing to merge")
    latest = latest_records(out_dir)
    records = [latest[k] for k in sorted(latest)]
    with atomic_path(out_dir / MANIFEST, overwrite=True) as tmp:
        tmp.write_text("".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in records),
                       encoding="utf-8")
    summary = summarize(records)
    summary.update(rank_files=[p.name for p in files], merged_at=now_iso(), manifest=MANIFEST)
    write_json(out_dir / SUMMARY, summary)
    return summary
