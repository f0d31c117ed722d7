"""Run one share of a corpus: skip what is done, process the rest, record every input.

:func:`run_corpus` is independent of what is done to an input: the edit / invert job passes a
``process_one(item) -> dict`` callback. Per input it appends one record to
``manifest.rank-R.jsonl``; an input that fails (any exception but an interrupt) is recorded as
failed with its error line and the share goes on. At the end each process writes
``finished.rank-R.json``; under torchrun rank 0 then polls for every rank's marker of this run
(no collective, so ranks may finish hours apart) and merges the manifests.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidinvert import distributed
from vidinvert.errors import VidinvertError
from vidinvert.fileio import write_json
from vidinvert.pipeline import manifest as mf
from vidinvert.pipeline.corpus import CorpusInput, Shard, share_of

log = logging.getLogger(__name__)
MARKER_PREFIX = "finished.rank-"
ProcessOne = Callable[[CorpusInput], Mapping[str, Any]]


def marker_path(out_dir: Path, rank: int) -> Path:
    """``out_dir/finished.rank-R.json``: written by rank ``R`` when its share is through."""
    return Path(out_dir) / f"{MARKER_PREFIX}{rank}.json"


@dataclass(frozen=True)
class CorpusResult:
    """What one process did. ``failed``: inputs of its share whose latest record is failed (this
    run's failures and earlier ones not retried); ``summary``: the merged manifest's summary
    (None where this process did not merge); ``exit_code``: 1 when inputs failed (see run_corpus)."""

    shard: Shard
    run_id: str
    processed: int
    skipped: int
    failed: int
    frames: int
    seconds: float
    summary: dict | None
    exit_code: int


def _error_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, VidinvertError):
        return text or "failed"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _done_record(item: CorpusInput, result: Mapping[str, Any], out_dir: Path) -> dict:
    outputs = [Path(p) for p in result.get("outputs") or ()]
    if not outputs:
        raise VidinvertError(f"{item.path}: produced no outputs")
    missing = [str(p) for p in outputs if not p.is_file()]
    if missing:
        raise VidinvertError(f"{item.path}: output {missing[0]} was not written")
    frames = int(result.get("frames", item.frames))
    ic = result.get("identity_consistency")
    rec = {
        "status": "done",
        "outputs": [mf.output_entry(p, out_dir) for p in outputs],
        "output_bytes": [p.stat().st_size for p in outputs],
        "frames": frames,
        "identity_consistency": None if ic is None else float(ic),
        "error": None,
    }
    for key in ("tl_id", "tg_id", "warping_error"):  # clips: each a number or null
        if key in result:
            rec[key] = None if result[key] is None else float(result[key])
    if result.get("temporal"):
        rec["temporal"] = dict(result["temporal"])
    if result.get("details"):
        rec["details"] = dict(result["details"])
    return rec


def _record(item: CorpusInput, body: dict, *, shard: Shard, fingerprint: str, seconds: float) -> dict:
    t = time.time()
    frames = body.get("frames")
    rec = {"input": item.key, "path": str(item.path), "outputs": [], "output_bytes": [], "frames": None,
           "identity_consistency": None, **body, "seconds": round(seconds, 4),
           "fps": round(frames / seconds, 4) if frames and seconds > 0 else None,
           "fingerprint": fingerprint, "rank": shard.index, "world": shard.count,
           "finished_at": mf.now_iso(t), "time": t}
    return rec


def _process(item: CorpusInput, process_one: ProcessOne, out_dir: Path) -> dict:
    """Run one input; the record body (done, or failed with the error line)."""
    if item.error is not None:
        return {"status": "failed", "error": item.error}
    try:
        item.output_dir(out_dir).mkdir(parents=True, exist_ok=True)
        return _done_record(item, process_one(item), out_dir)
    except Exception as exc:  # one input's failure never stops the share (interrupts do)
        log.debug(f"{item.path} failed", exc_info=True)
        return {"status": "failed", "error": _error_line(exc)}


@dataclass(frozen=True)
class CorpusProgress:
    """The whole corpus as the manifests show it: ``finished`` of ``total`` inputs (done or failed
    with this configuration), frames done of ``total_frames``, this run's frames/s, ETA seconds."""

    finished: int
    total: int
    frames: int
    total_frames: int
    fps: float | None
    eta_s: float | None

    def line(self) -> str:
        rate = f"{self.fps:.1f} frames/s" if self.fps else "- frames/s"
        eta = time.strftime("%H:%M:%S", time.gmtime(self.eta_s)) if self.eta_s is not None else "-"
        if self.eta_s is not None and self.eta_s >= 86400:
            eta = f"{int(self.eta_s // 86400)}d {eta}"
        return (f"corpus: {self.finished}/{self.total} inputs, {self.frames}/{self.total_frames} frames, "
                f"{rate}, ETA {eta}")


def corpus_progress(out_dir: Path, items: Sequence[CorpusInput], fingerprint: str, since: float) -> CorpusProgress:
    """Progress of ``items`` from every rank manifest; the rate counts frames finished after ``since``."""
    latest = mf.latest_records(out_dir)
    finished = frames = recent = 0
    for it in items:
        rec = latest.get(it.key)
        if rec is None or rec.get("fingerprint") != fingerprint:
            continue
        finished += 1
        frames += it.frames
        if float(rec.get("time") or 0) >= since and rec.get("status") == "done":
            recent += it.frames
    total_frames = sum(it.frames for it in items)
    elapsed = time.time() - since
    fps = recent / elapsed if recent and elapsed > 0 else None
    eta = (total_frames - frames) / fps if fps else (0.0 if finished == len(items) else None)
    return CorpusProgress(finished, len(items), frames, total_frames, fps, eta)


def _wait_for_ranks(out_dir: Path, shard: Shard, run_id: str, poll_s: float, report_every_s: float,
                    report: Callable[[], None]) -> list[dict]:
    """Poll until every rank's marker of ``run_id`` is there; their contents in rank order."""
    last = time.monotonic()
    while True:
        markers = []
        for r in range(shard.count):
            rec = _read_marker(marker_path(out_dir, r))
            if rec is None or rec.get("run_id") != run_id:
                break
            markers.append(rec)
        else:
            return markers
        if time.monotonic() - last >= report_every_s:
            report()
            last = time.monotonic()
        time.sleep(poll_s)


def _read_marker(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _still_to_do(mine: Sequence[CorpusInput], previous: dict, out_dir: Path, fingerprint: str,
                 retry_failed: bool) -> tuple[list[CorpusInput], int, int]:
    """The inputs of ``mine`` to process, how many are skipped and how many of those had failed."""
    todo, skipped, failed = [], 0, 0
    for item in mine:
        reason = mf.skip_reason(previous.get(item.key), out_dir, fingerprint, retry_failed)
        if reason is None:
            todo.append(item)
        else:
            skipped += 1
            failed += reason == "failed"
    return todo, skipped, failed


def run_corpus(items: Sequence[CorpusInput], process_one: ProcessOne, *, shard: Shard, out_dir: Path,
               fingerprint: str, retry_failed: bool = False, progress: Callable[[str], None] | None = None,
               poll_s: float = 10.0, report_every_s: float = 60.0, run_id: str | None = None) -> CorpusResult:
    """Process this process's share of ``items`` (the whole corpus, the same list on every rank).

    ``process_one(item)`` writes the input's outputs under ``item.output_dir(out_dir)`` and returns
    ``{"outputs": [paths written], "frames": n, "identity_consistency": float | None,
    "details": {...} optional}``; any exception marks the input failed with its first line.
    Skipped: inputs recorded done with ``fingerprint`` whose outputs are intact, and inputs that
    failed with it unless ``retry_failed``. ``progress`` gets one plain line per finished input
    (rank 0 of torchrun also a corpus line from the manifests, at most every ``report_every_s``).

    At the end: torchrun's rank 0 polls every ``poll_s`` for every rank's marker of this run, then
    merges; a single process merges; a ``--shard`` process merges what is there (run
    ``vidinvert manifest merge`` after the whole array for the final one). ``exit_code``: torchrun
    rank 0: 1 when any rank's share has failed inputs; other torchrun ranks: 0 (a non-zero exit
    would make torchrun stop the ranks still working); otherwise 1 when this share has.
    """
    say = progress or (lambda line: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not fingerprint:
        raise VidinvertError("a corpus run needs a configuration fingerprint")
    if shard.kind == "torchrun":
        ctx = distributed.DistContext(shard.index, shard.count, shard.local_rank)
        run_id = distributed.agree_on_token(ctx, run_id or uuid.uuid4().hex)
    run_id = run_id or uuid.uuid4().hex
    started = time.time()
    mine = share_of(items, shard)
    marker_path(out_dir, shard.index).unlink(missing_ok=True)
    previous = mf.latest_records(out_dir)
    writer = mf.ManifestWriter(out_dir, shard.index)
    tag = "" if shard.kind == "single" else f"rank {shard.index}: "
    watch = shard.kind == "torchrun" and shard.is_main
    last_report = time.monotonic()
    processed = frames = 0
    busy = 0.0
    todo, skipped, failed = _still_to_do(mine, previous, out_dir, fingerprint, retry_failed)
    if skipped:
        say(f"{tag}{skipped} of {len(mine)} inputs already recorded with this configuration, skipped"
            + (f" ({failed} failed: --retry-failed retries them)" if failed else ""))
    for k, item in enumerate(todo, 1):
        t0 = time.perf_counter()
        body = _process(item, process_one, out_dir)
        seconds = time.perf_counter() - t0
        rec = _record(item, body, shard=shard, fingerprint=fingerprint, seconds=seconds)
        writer.append(rec)
        processed += 1
        busy += seconds
        if rec["status"] == "done":
            frames += int(rec["frames"] or 0)
            rate = f", {rec['fps']:.1f} frames/s" if rec["fps"] else ""
            say(f"{tag}[{k}/{len(todo)}] {item.key}: done, {rec['frames']} frames{rate}")
        else:
            failed += 1
            say(f"{tag}[{k}/{len(todo)}] {item.key}: FAILED: {rec['error']}")
        if watch and time.monotonic() - last_report >= report_every_s:
            say(corpus_progress(out_dir, items, fingerprint, started).line())
            last_report = time.monotonic()
    write_json(marker_path(out_dir, shard.index), {
        "run_id": run_id, "rank": shard.index, "world": shard.count, "kind": shard.kind,
        "inputs": len(mine), "processed": processed, "skipped": skipped, "failed": failed,
        "frames": frames, "seconds": round(busy, 3), "finished_at": mf.now_iso()})
    summary, exit_code = None, int(failed > 0)
    if shard.kind == "torchrun":
        exit_code = 0
        if shard.is_main:
            markers = _wait_for_ranks(out_dir, shard, run_id, poll_s, report_every_s,
                                      lambda: say(corpus_progress(out_dir, items, fingerprint, started).line()))
            exit_code = int(any(m.get("failed") for m in markers))
            summary = mf.merge_manifests(out_dir)
            say(corpus_progress(out_dir, items, fingerprint, started).line())
    else:
        summary = mf.merge_manifests(out_dir)
    return CorpusResult(shard, run_id, processed, skipped, failed, frames, round(busy, 3), summary, exit_code)
