"""``run_edit``: the one library call behind ``vidinvert invert`` and ``vidinvert edit``.

Order of work: the request is checked and resolved once (:class:`~vidinvert.pipeline.settings.JobSettings`),
every input is probed and every output checked (:mod:`vidinvert.pipeline.plan`, no torch), the bad
inputs are reported, the files the run needs are checked (:mod:`vidinvert.pipeline.needs`), and only
then do the models load (:func:`~vidinvert.pipeline.context.load_context`); each input then runs through
the one dispatch by kind (:func:`~vidinvert.pipeline.runners.run_planned`; a failing input does not
stop the others) and its outputs get a ``run.json`` (and the report, with ``report``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from vidinvert.errors import VidinvertError
from vidinvert.pipeline.corpus_job import corpus_mode, run_corpus_edit
from vidinvert.pipeline.needs import check_needed_files
from vidinvert.pipeline.plan import plan_inputs
from vidinvert.pipeline.request import InvertRequest
from vidinvert.pipeline.results import EditResult, InputResult, ProgressFactory, no_progress
from vidinvert.pipeline.settings import JobSettings

__all__ = ["EditResult", "InputResult", "run_edit", "run_invert"]


def run_edit(request: InvertRequest, *, progress: ProgressFactory | None = None,
             on_result: Callable[[InputResult], None] | None = None) -> EditResult:
    """Run an :class:`~vidinvert.pipeline.request.EditRequest` (or ``InvertRequest``).

    ``on_result`` is called once per input as soon as it is done or known to fail (bad inputs
    first, before any model loads). Request-wide problems raise :class:`VidinvertError`; a
    single input's problem is its result's ``error``, and with one input it raises. A corpus
    (``out_dir`` with a folder, glob or list input, ``shard``, or torchrun) runs through
    :func:`~vidinvert.pipeline.corpus_job.run_corpus_edit`.
    """
    if corpus_mode(request):  # folders, globs, list files, --shard or torchrun: see corpus_job
        return run_corpus_edit(request, progress=progress, on_result=on_result)
    t0 = time.perf_counter()
    settings = JobSettings.resolve(request)
    planned = plan_inputs(request)
    notify = on_result or (lambda r: None)
    results: dict[Path, InputResult] = {}
    for p in planned:
        if p.error is not None:
            if len(planned) == 1:
                raise VidinvertError(f"{p.source}: {p.error}")
            results[p.source] = InputResult(p.source, p.kind, error=p.error)
            notify(results[p.source])
    good = [p for p in planned if p.error is None]
    seconds = {"check_inputs": round(time.perf_counter() - t0, 4)}
    if not good:
        return EditResult([results[p.source] for p in planned], seconds=seconds)
    kinds = {p.kind for p in good}
    check_needed_files(request, kinds)
    from vidinvert.pipeline.context import load_context  # the first import of torch and the networks
    from vidinvert.pipeline.runners import run_planned

    t1 = time.perf_counter()
    ctx = load_context(settings, kinds)
    seconds["load_models"] = round(time.perf_counter() - t1, 4)
    t2 = time.perf_counter()
    results.update(run_planned(settings, ctx, good, progress or no_progress, many=len(planned) > 1, notify=notify))
    seconds["run"] = round(time.perf_counter() - t2, 4)
    inv = ctx.inverter
    return EditResult([results[p.source] for p in planned], device=inv.compute.describe(),
                      models={k: str(v) for k, v in inv.files.items()}, seconds=seconds)


run_invert = run_edit
