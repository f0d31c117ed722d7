"""The temporal part of a video report: TL-ID / TG-ID, warping error and the per-frame timeline.

Per track (keys of :func:`temporal_section`, merged into the track's report):

* ``tl_id`` / ``tg_id``: stream -> STIT's TL-ID / TG-ID relative to the source (inversion and each
  edit; :mod:`vidinvert.metrics.temporal_identity`), None with ``temporal_identity["reason"]``
  ``"needs ArcFace weights"`` (dlib) or ``"identity metrics off"`` (``--no-identity``).
* ``temporal_identity``: how they were computed: ``tl_pairs`` / ``tg_pairs`` (``total``, ``used``,
  ``skipped`` with a source cosine at most ``min_source_cosine``, ``sampled``: pairs drawn when TG-ID
  is a seeded sample, above ``tg_exact_max_frames`` frames; null when exact), ``method``, ``reason``.
* ``warping_error``: stream -> the mean warping error (source, inversion, each edit;
  :mod:`vidinvert.metrics.warping`), ``warping_error_pairs`` (``used``, ``empty``: pairs without
  a valid pixel), ``warping_error_method`` (the label).
* ``per_frame`` additions, one value per measured frame of the track: ``time`` (s), ``interpolated``
  (the face was missing there and filled in), ``strength`` (the edit strength S_t times the fade),
  ``flicker_<stream>`` / ``warp_<stream>`` (the pair ending at that frame; null at a run's first
  frame), ``id_first_<stream>`` (cosine to the track's first frame, the terms of eq. 9) or with dlib
  ``id_first_distance_<stream>`` (descriptor distance to it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from vidinvert.metrics.identity import cosine_to_reference, distance_to_reference
from vidinvert.metrics.temporal_identity import EXACT_MAX_FRAMES, MIN_SOURCE_COSINE, PairCounts, temporal_identity
from vidinvert.metrics.warping import LABEL as WARP_LABEL
from vidinvert.metrics.warping import WarpingErrorMeter

REASON_DLIB = "needs ArcFace weights"
REASON_OFF = "identity metrics off"
METHOD = "STIT TL-ID / TG-ID relative to the source (ArcFace cosines, pairs within runs of consecutive frames)"


@dataclass(frozen=True)
class FrameMark:
    """What the timeline keeps of one measured frame of a track."""

    index: int
    time: float
    interpolated: bool = False
    strength: float = 0.0


@dataclass
class Timeline:
    """The measured frames of one track, in order: index, time (s), run id (a run is a stretch of
    consecutive frames; :meth:`new_run` starts the next), interpolated flag and edit strength."""

    index: list[int] = field(default_factory=list)
    time: list[float] = field(default_factory=list)
    run: list[int] = field(default_factory=list)
    interpolated: list[bool] = field(default_factory=list)
    strength: list[float] = field(default_factory=list)
    current: int = -1

    def new_run(self) -> None:
        self.current += 1

    def add(self, frames: Sequence[FrameMark]) -> None:
        run = max(self.current, 0)
        for f in frames:
            self.index.append(int(f.index))
            self.time.append(float(f.time))
            self.run.append(run)
            self.interpolated.append(bool(f.interpolated))
            self.strength.append(float(f.strength))

    def state(self) -> dict:
        return {"index": torch.tensor(self.index, dtype=torch.int64), "run": torch.tensor(self.run, dtype=torch.int64),
                "time": torch.tensor(self.time, dtype=torch.float64),
                "interpolated": torch.tensor(self.interpolated, dtype=torch.bool),
                "strength": torch.tensor(self.strength, dtype=torch.float64), "current": torch.tensor(self.current)}

    def load(self, st: dict) -> None:
        self.index = [int(v) for v in st["index"].tolist()]
        self.run = [int(v) for v in st["run"].tolist()]
        self.time = [float(v) for v in st["time"].tolist()]
        self.interpolated = [bool(v) for v in st["interpolated"].tolist()]
        self.strength = [float(v) for v in st["strength"].tolist()]
        self.current = int(st["current"])


def _rounded(values: Sequence[float | None], nd: int = 6) -> list[float | None]:
    return [None if v is None else round(float(v), nd) for v in values]


def _runs_of(indices: Sequence[int], timeline: Timeline) -> list[int]:
    """The run id of each embedding row (rows are named by their frame index)."""
    run_of = dict(zip(timeline.index, timeline.run))
    return [run_of.get(int(i), -1 - k) for k, i in enumerate(indices)]


def temporal_identity_section(source, streams: Mapping, timeline: Timeline, measure: str | None) -> dict:
    """``tl_id``, ``tg_id``, ``temporal_identity`` of one track. ``source`` / ``streams`` (name ->
    output stream) are :class:`~vidinvert.pipeline.report.StreamMetrics`."""
    info = {"method": METHOD, "reason": None, "min_source_cosine": MIN_SOURCE_COSINE,
            "tg_exact_max_frames": EXACT_MAX_FRAMES, "tl_pairs": None, "tg_pairs": None}
    none = {name: None for name in streams}
    if measure is None or measure == "distance":
        info["reason"] = REASON_OFF if measure is None else REASON_DLIB
        return {"tl_id": none, "tg_id": dict(none), "temporal_identity": info}
    src = source.matrix()
    outs = {name: sm.matrix() for name, sm in streams.items()}
    if src is None or any(m is None or len(m) != len(src) for m in outs.values()):
        info["reason"] = "no embeddings"
        return {"tl_id": none, "tg_id": dict(none), "temporal_identity": info}
    ti = temporal_identity(src, outs, _runs_of(source.indices, timeline))
    info["tl_pairs"], info["tg_pairs"] = ti.tl_pairs.as_dict(), ti.tg_pairs.as_dict()
    return {"tl_id": ti.tl_id, "tg_id": ti.tg_id, "temporal_identity": info}


def per_frame_section(source, streams: Mapping, timeline: Timeline, warp: WarpingErrorMeter | None,
                      measure: str | None) -> dict:
    """The per-frame additions of one track (module docstring)."""
    out: dict = {"time": _rounded(timeline.time, 4), "interpolated": list(timeline.interpolated),
                 "strength": _rounded(timeline.strength, 4)}
    every = {"source": source, **streams}
    for name, sm in every.items():
        out[f"flicker_{name}"] = _rounded(sm.flicker.per_frame)
        if warp is not None and name in warp.per_frame:
            out[f"warp_{name}"] = _rounded(warp.per_frame[name], 8)
        m = sm.matrix()
        if measure is not None and m is not None and len(m):
            if measure == "distance":
                out[f"id_first_distance_{name}"] = _rounded(distance_to_reference(m, m[0]).tolist(), 5)
            else:
                out[f"id_first_{name}"] = _rounded(cosine_to_reference(m, m[0]).tolist(), 5)
    return out


def warping_section(warp: WarpingErrorMeter | None, names: Sequence[str]) -> dict:
    """``warping_error``, ``warping_error_pairs``, ``warping_error_method`` of one track."""
    return {"warping_error": {n: (warp.value(n) if warp is not None and n in warp.names else None) for n in names},
            "warping_error_pairs": {"used": warp.pairs if warp is not None else 0,
                                    "empty": warp.empty if warp is not None else 0},
            "warping_error_method": WARP_LABEL}


def combine_temporal(reports: list[dict], out: dict) -> None:
    """Over several tracks: each stream's TL-ID / TG-ID is the mean over every track's pairs (tracks
    weighted by their pairs used), the warping error the mean over every track's pairs; pair counts
    are summed (``sampled``: the sum of the tracks' samples, or null when all were exact)."""
    def weighted(key: str, weight) -> dict:
        names = list(dict.fromkeys(n for r in reports for n in r[key]))
        res = {}
        for n in names:
            pairs = [(r[key].get(n), weight(r)) for r in reports]
            pairs = [(v, w) for v, w in pairs if v is not None and w > 0]
            total = sum(w for _, w in pairs)
            res[n] = sum(v * w for v, w in pairs) / total if total else None
        return res

    def pair_weight(key: str):
        return lambda r: PairCounts(**r["temporal_identity"][key]).weight if r["temporal_identity"][key] else 0

    ti = [r["temporal_identity"] for r in reports]
    out["tl_id"] = weighted("tl_id", pair_weight("tl_pairs"))
    out["tg_id"] = weighted("tg_id", pair_weight("tg_pairs"))
    out["warping_error"] = weighted("warping_error", lambda r: r["warping_error_pairs"]["used"])
    out["warping_error_pairs"] = {k: sum(r["warping_error_pairs"][k] for r in reports) for k in ("used", "empty")}
    info = dict(ti[0])
    for key in ("tl_pairs", "tg_pairs"):
        parts = [t[key] for t in ti if t.get(key) is not None]
        if parts:
            sampled = [p["sampled"] for p in parts if p["sampled"] is not None]
            info[key] = {k: sum(p[k] for p in parts) for k in ("total", "used", "skipped")}
            info[key]["sampled"] = sum(sampled) if sampled else None
    out["temporal_identity"] = info


#: per-track keys a track summary carries (beside :data:`~vidinvert.pipeline.report.TRACK_KEYS`)
TEMPORAL_KEYS = ("tl_id", "tg_id", "temporal_identity", "warping_error", "warping_error_pairs")
