"""What a job writes beside its outputs: ``run.json`` next to each output and the report where
``--report`` says (for a clip also its picture, ``r.json`` -> ``r.png``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from vidinvert.device import compute_record
from vidinvert.fileio import write_json
from vidinvert.pipeline.report_figure import figure_path, write_report_figure
from vidinvert.pipeline.request import VIDEO
from vidinvert.pipeline.settings import JobSettings
from vidinvert.pipeline.style_edits import describe_style_edits
from vidinvert.runinfo import run_json_path, run_record


def write_records(s: JobSettings, ctx, p, outputs: dict[str, Path], rep: dict | None, config: dict) -> None:
    """``run.json`` beside each of ``outputs`` (the request, ``config``, the edits, the model files,
    timings, the compute (device, dtype and why) and the report but its per-frame arrays) and the report where ``report`` says, a clip's
    with its picture beside it (:mod:`~vidinvert.pipeline.report_figure`; ``p``: the
    :class:`~vidinvert.pipeline.plan.PlannedInput`; ``ctx``: the :class:`~vidinvert.pipeline.context.JobContext`)."""
    req, inv = s.request, ctx.inverter
    dest = None
    if req.report is not None and rep is not None:
        dest = req.report / f"{p.source.stem}.report.json" if req.report.is_dir() else req.report
        if p.kind == VIDEO:  # the report as a picture beside it; photos have no time axis, so none
            picture = write_report_figure(rep, figure_path(dest))
            rep["report_figure"] = None if picture is None else str(picture)
    extra = {"report": {k: v for k, v in rep.items() if k != "per_frame"}} if rep else {}
    extra["compute"] = compute_record(inv.compute)
    fields = {f.name: getattr(req, f.name) for f in dataclasses.fields(req) if f.name != "explicit"}
    styles = describe_style_edits(ctx.edits, inv)
    config = {**config, "stylespace": styles} if styles else config
    record = run_record(command=req.kind, config={"request": fields, **config, "edits": [t for t, _ in ctx.edits]},
                        weights={"encoder": inv.files.get("encoder"), "generator": inv.files.get("generator")},
                        timings=(rep or {}).get("stages", {}), extra=extra)
    for out_path in outputs.values():
        write_json(run_json_path(Path(out_path)), record)
    if dest is not None:
        write_json(dest, rep)
