"""The video report: identity consistency (eq. 9), per-frame identity, flicker, TL-ID / TG-ID,
warping error, counts, speed (the temporal keys: :mod:`vidinvert.pipeline.temporal_report`).

Identity keys (``identity_measure`` names the measure, ``identity_embedder`` the network):

* ArcFace (``"cosine (ArcFace, eq. 9)"``): ``identity_consistency[stream]`` is eq. 9's mean
  cosine to the first frame, ``identity_to_source[stream]`` the mean per-frame cosine to the
  source crop (``per_frame["id_<stream>"]``); the ``*distance*`` keys are None.
* dlib (``"share within 0.6 (dlib)"``): raw descriptors, the same person within 0.6.
  ``identity_consistency[stream]`` is the share of frames within 0.6 of the first frame's
  descriptor, ``identity_distance[stream]`` their mean distance to it; ``identity_to_source``
  the share of frames within 0.6 of the source frame's descriptor,
  ``identity_distance_to_source`` the mean distance (``per_frame["id_distance_<stream>"]``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from vidinvert.metrics.flicker import FlickerMeter
from vidinvert.metrics.identity import (
    identity_consistency,
    identity_distance,
    measure_label,
    measure_of,
    paired_distance,
    paired_identity,
)
from vidinvert.metrics.warping import WarpingErrorMeter
from vidinvert.pipeline.temporal_report import (
    TEMPORAL_KEYS,
    Timeline,
    combine_temporal,
    per_frame_section,
    temporal_identity_section,
    warping_section,
)


@dataclass
class StreamMetrics:
    """Embeddings and flicker of one stream of aligned crops (source, inversion or an edit)."""

    embeddings: list[torch.Tensor] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)
    flicker: FlickerMeter = field(default_factory=FlickerMeter)

    def add(self, crops: torch.Tensor, emb: torch.Tensor | None, indices: list[int]) -> None:
        if emb is not None:
            self.embeddings.append(emb.cpu())
            self.indices += list(indices)
        self.flicker.update(crops)

    def gap(self) -> None:
        self.flicker.reset()

    def matrix(self) -> torch.Tensor | None:
        return torch.cat(self.embeddings) if self.embeddings else None

    # state for --resume (a chunk's metrics are carried over without recomputing them)
    def state(self) -> dict:
        return {"emb": self.matrix() if self.embeddings else torch.zeros(0), "idx": torch.tensor(self.indices),
                "flicker": self.flicker.state()}

    def load(self, st: dict) -> None:
        self.embeddings = [st["emb"]] if st["emb"].numel() else []
        self.indices = [int(i) for i in st["idx"].tolist()]
        self.flicker.load(st["flicker"])


class StageClock:
    """Accumulated seconds and frames per stage (frames/s in the report)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.frames: dict[str, int] = {}

    def add(self, stage: str, seconds: float, frames: int) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds
        self.frames[stage] = self.frames.get(stage, 0) + frames

    def timer(self, stage: str, frames: int):
        clock = self

        class _T:
            def __enter__(self):
                self.t = time.perf_counter()

            def __exit__(self, *exc):
                clock.add(stage, time.perf_counter() - self.t, frames)

        return _T()

    def state(self) -> dict:
        return {"seconds": dict(self.seconds), "frames": dict(self.frames)}

    def load(self, st: dict) -> None:
        self.seconds.update(st["seconds"])
        self.frames.update(st["frames"])

    def summary(self) -> dict[str, dict[str, float]]:
        return {k: {"seconds": round(v, 4), "frames": self.frames[k],
                    "fps": round(self.frames[k] / v, 3) if v > 0 else None} for k, v in self.seconds.items()}


def build_report(*, source: StreamMetrics, inversion: StreamMetrics, edits: dict[str, StreamMetrics],
                 embedder: str | None, counts: dict, clock: StageClock, extra: dict,
                 timeline: Timeline | None = None, warp: WarpingErrorMeter | None = None) -> dict:
    """Everything the user is told about a video run (JSON-able). ``embedder``: the identity
    network's name (None: identity metrics off); its measure follows from it (module docstring).
    ``timeline`` / ``warp``: the track's measured frames and warping-error meter."""
    measure = measure_of(embedder)
    dlib = measure == "distance"

    def ic(sm: StreamMetrics):
        m = sm.matrix()
        return None if m is None or len(m) == 0 else identity_consistency(m, measure or "cosine")

    def ic_dist(sm: StreamMetrics):
        m = sm.matrix()
        return None if not dlib or m is None or len(m) == 0 else identity_distance(m)

    src = source.matrix()
    rep: dict = {
        "identity_embedder": embedder,
        "identity_measure": measure_label(measure),
        "frames": counts,
        "identity_consistency": {"source": ic(source), "inversion": ic(inversion)},
        "identity_distance": {"source": ic_dist(source), "inversion": ic_dist(inversion)},
        "identity_to_source": {},
        "identity_distance_to_source": {},
        "flicker": {"source": source.flicker.value, "inversion": inversion.flicker.value},
        "flicker_minus_source": {},
        "flicker_pairs": source.flicker.pairs,
        "per_frame": {"index": list(timeline.index) if timeline is not None else source.indices},
        "stages": clock.summary(),
    }
    streams = {"inversion": inversion, **edits}
    for name, sm in streams.items():
        if name != "inversion":
            rep["identity_consistency"][name] = ic(sm)
            rep["identity_distance"][name] = ic_dist(sm)
            rep["flicker"][name] = sm.flicker.value
        m = sm.matrix()
        if m is not None and src is not None and len(m) == len(src):
            rep["identity_to_source"][name] = float(paired_identity(m, src, measure or "cosine").mean())
            if dlib:
                dist = paired_distance(m, src)
                rep["identity_distance_to_source"][name] = float(dist.mean())
                rep["per_frame"][f"id_distance_{name}"] = [round(float(v), 5) for v in dist]
            else:
                rep["identity_distance_to_source"][name] = None
                rep["per_frame"][f"id_{name}"] = [round(float(v), 5) for v in paired_identity(m, src)]
        fv, fs = sm.flicker.value, source.flicker.value
        rep["flicker_minus_source"][name] = None if fv is None or fs is None else fv - fs
    tl = timeline if timeline is not None else Timeline()
    rep.update(temporal_identity_section(source, streams, tl, measure))
    rep.update(warping_section(warp, ["source", *streams]))
    rep["per_frame"].update(per_frame_section(source, streams, tl, warp, measure))
    rep.update(extra)
    return rep


#: the per-stream report keys a track has of its own (summarised per track and combined over tracks)
TRACK_KEYS = ("identity_consistency", "identity_distance", "identity_to_source", "identity_distance_to_source",
              "flicker", "flicker_minus_source")


def _weighted(values: list, weights: list[int]):
    """Mean of the non-None ``values`` weighted by ``weights`` (None when there is none)."""
    pairs = [(v, w) for v, w in zip(values, weights) if v is not None and w > 0]
    total = sum(w for _, w in pairs)
    return None if not pairs or total == 0 else sum(v * w for v, w in pairs) / total


def combine_track_reports(reports: list[dict], tracks: list[tuple[int, int, int]], *, counts: dict,
                          extra: dict) -> dict:
    """One report from the per-track :func:`build_report` results.

    tracks: per track ``(frames measured, first frame index, last frame index)``. The report keeps
    the one-track keys: with one track they are that track's, unchanged; with several, every
    per-stream figure of :data:`TRACK_KEYS` is the frame-weighted mean over the tracks, TL-ID,
    TG-ID and the warping error the pair-weighted ones (:func:`~vidinvert.pipeline.temporal_report.combine_temporal`),
    ``flicker_pairs`` their sum and ``per_frame`` the tracks' lists one after the other with a
    ``track`` list. ``tracks`` lists each track: ``track`` (id), ``frames`` (its counts),
    ``measured_frames``, ``first_frame``, ``last_frame`` and its own :data:`TRACK_KEYS` and
    :data:`~vidinvert.pipeline.temporal_report.TEMPORAL_KEYS`."""
    summary = []
    for tid, (rep, (n, first, last)) in enumerate(zip(reports, tracks)):
        summary.append({"track": tid, "frames": rep["frames"], "measured_frames": n,
                        "first_frame": None if first < 0 else first, "last_frame": None if last < 0 else last,
                        **{k: rep[k] for k in TRACK_KEYS + TEMPORAL_KEYS}, "flicker_pairs": rep["flicker_pairs"]})
    if len(reports) == 1:
        out = dict(reports[0])
    else:
        weights = [n for n, _, _ in tracks]
        out = dict(reports[0])
        for key in TRACK_KEYS:
            names = list(dict.fromkeys(name for r in reports for name in r[key]))
            out[key] = {name: _weighted([r[key].get(name) for r in reports], weights) for name in names}
        combine_temporal(reports, out)
        out["flicker_pairs"] = sum(r["flicker_pairs"] for r in reports)
        per_frame: dict[str, list] = {"track": []}
        for tid, r in enumerate(reports):
            per_frame["track"] += [tid] * len(r["per_frame"]["index"])
            for k, v in r["per_frame"].items():
                per_frame.setdefault(k, []).extend(v)
        out["per_frame"] = per_frame
    out["frames"] = counts
    out["tracks"] = summary
    out.update(extra)
    return out


def total_counts(per_track: list[dict], frames: int, bare: int) -> dict:
    """The clip's frame counts from each track's (``AlignCounts.as_dict``): one track's as they are;
    with several, face-frames summed over the tracks (``edited``/``detected``/``interpolated``),
    ``passthrough``: the ``bare`` frames without any edited face, ``total`` the clip's ``frames``."""
    if len(per_track) == 1:
        return dict(per_track[0])
    if not per_track:
        return {"edited": 0, "detected": 0, "interpolated": 0, "passthrough": frames, "total": frames}
    tot = {k: sum(c[k] for c in per_track) for k in ("edited", "detected", "interpolated")}
    return {**tot, "passthrough": bare, "total": frames, "tracks": len(per_track)}
