"""``vidinvert edit`` / ``invert`` over a corpus: folders, globs, list files, shards and torchrun ranks.

:func:`run_edit` hands a request here when :func:`corpus_mode` says so (``--out-dir`` and a folder,
glob or list file among the inputs, or ``--shard``, or torchrun's ``WORLD_SIZE`` > 1). Then:

* the inputs are expanded (:func:`~vidinvert.pipeline.corpus.plan_corpus`, the output folder left
  out) and probed for their frame counts; this process takes its share (balanced by frames);
* on the CPU each process uses ``cores / local processes`` threads (``VIDINVERT_CPU_THREADS``
  overrides; without torchrun an explicit ``OMP_NUM_THREADS`` is kept); a torchrun rank on CUDA
  binds ``cuda:LOCAL_RANK``;
* the models load once (only when some input of the share needs work), and each input runs
  through the one dispatch by kind (:func:`vidinvert.pipeline.runners.run_planned`) with its own output folder
  (its path relative to its root, mirrored under ``--out-dir``);
* :func:`~vidinvert.pipeline.corpus_run.run_corpus` skips inputs recorded done with the same
  configuration fingerprint (outputs intact), records every input in ``manifest.rank-R.jsonl``
  and merges.

Outputs that exist without a matching done record (another configuration, a run that died, a
deleted sibling output) are replaced: the corpus owns its output folder (``--overwrite`` is not
needed there).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vidinvert.errors import VidinvertError
from vidinvert.inputs import LIST_SUFFIXES, is_glob
from vidinvert.pipeline.needs import check_needed_files
from vidinvert.pipeline.plan import input_kind, plan_inputs
from vidinvert.pipeline.request import InvertRequest
from vidinvert.pipeline.results import EditResult, InputResult, ProgressFactory, no_progress
from vidinvert.pipeline.settings import JobSettings

log = logging.getLogger("vidinvert.corpus")

# Request fields that do not change an input's outputs (left out of the configuration fingerprint);
# --batch-size is a ceiling the memory backoff lowers anyway (outputs equal within the batch-composition
# tolerance), so a failed input can be retried with a smaller one.
NOT_FINGERPRINTED = ("inputs", "out_dir", "shard", "retry_failed", "overwrite", "resume", "explicit", "batch_size")


def _is_collection(path: Path) -> bool:
    """A folder, a list file or a glob (not an existing file)."""
    if path.is_dir():
        return True
    if path.is_file():
        return path.suffix.lower() in LIST_SUFFIXES
    return is_glob(str(path))


def _world_size() -> int:
    raw = os.environ.get("WORLD_SIZE", "").strip()
    return int(raw) if raw.isdigit() else 1


def corpus_mode(request: InvertRequest) -> bool:
    """Whether ``request`` is a corpus run: ``out_dir`` with a folder / glob / list input, ``shard``,
    or torchrun (``WORLD_SIZE`` > 1). A folder, glob or list file, or torchrun, without ``out_dir``
    is refused (one line)."""
    collections = [p for p in request.inputs if _is_collection(p)]
    collection = bool(collections)
    torchrun = _world_size() > 1
    if request.out_dir is None:
        if collection:
            first = collections[0]
            what = "a folder" if first.is_dir() else ("a list file" if first.is_file() else "a glob")
            raise VidinvertError(f"{first} is {what}: a folder, glob or list file of inputs needs --out-dir "
                                 "(outputs mirror its tree there)")
        if torchrun:
            raise VidinvertError("under torchrun give --out-dir: the ranks share the corpus through it")
        return False
    return collection or request.shard is not None or torchrun


@dataclass
class CorpusEditResult(EditResult):
    """:class:`EditResult` of a corpus process: ``items`` are the inputs this process ran now;
    ``corpus``: counts of its share and the merged summary; ``code``: the exit code of
    :func:`~vidinvert.pipeline.corpus_run.run_corpus` (torchrun: only rank 0 reports failures)."""

    corpus: dict = dataclasses.field(default_factory=dict)
    code: int = 0

    @property
    def exit_code(self) -> int:
        return self.code

    def as_dict(self) -> dict:
        return {**super().as_dict(), "corpus": self.corpus}


def cpu_threads(env=None) -> int:
    """Intra-op threads of one corpus process on the CPU: ``VIDINVERT_CPU_THREADS``; else (without
    torchrun) ``OMP_NUM_THREADS`` when set; else cores / torchrun's local processes."""
    from vidinvert.distributed import default_cpu_threads

    env = os.environ if env is None else env
    for name in ("VIDINVERT_CPU_THREADS",) + (("OMP_NUM_THREADS",) if "LOCAL_WORLD_SIZE" not in env else ()):
        raw = env.get(name, "").strip()
        if raw:
            if not raw.isdigit() or int(raw) < 1:
                raise VidinvertError(f"{name}={raw!r}: give a whole number of threads, at least 1")
            return int(raw)
    return default_cpu_threads(env)


def _file_stamp(path: Path | None) -> list | None:
    if path is None:
        return None
    try:
        st = Path(path).stat()
    except OSError:
        return [str(path), None, None]
    return [Path(path).name, st.st_size, st.st_mtime_ns]


def config_fingerprint(request: InvertRequest, model_files: tuple[Path, Path]) -> str:
    """The configuration fingerprint of a corpus run: the request's fields but those in
    :data:`NOT_FINGERPRINTED`, plus name, size and mtime of the model, direction and style files."""
    from vidinvert.pipeline.corpus import fingerprint_of

    data = {f.name: getattr(request, f.name) for f in dataclasses.fields(request) if f.name not in NOT_FINGERPRINTED}
    data["command"] = request.kind
    data["model_files"] = [_file_stamp(p) for p in model_files]
    data["direction_files"] = [_file_stamp(p) for p in getattr(request, "direction", ())]
    data["style_file"] = _file_stamp(getattr(request, "style", None))
    return fingerprint_of(data)


def _check_layout(request: InvertRequest) -> None:
    if request.output is not None:
        raise VidinvertError("--output names one file: a corpus run writes into --out-dir")
    out = request.out_dir.resolve()
    for p in request.inputs:
        if p.is_dir() and (p.resolve() == out or p.resolve().is_relative_to(out)):
            raise VidinvertError(f"--out-dir {request.out_dir} contains the input folder {p} (its files would be "
                                 "left out as outputs): choose an output folder that does not contain the inputs")


def requests_by_kind(request: InvertRequest, examples: dict[str, Path]) -> dict[str, InvertRequest]:
    """The request each input kind of a mixed corpus runs with (``examples``: kind -> one input).

    An option given for one kind of the corpus (``--codec`` for its clips) is reset to its default
    for the kinds it does not apply to (its photos); an option that applies to no kind of the
    corpus is refused, in one line, as for single inputs.
    """
    request.refuse_inapplicable(examples)
    return {kind: request.for_kind(kind) for kind in examples}


def _mirror(base: Path | None, item) -> Path | None:
    """``base`` plus the item's relative folder (created), for --report/--save-latents/--frames-dir."""
    if base is None:
        return None
    d = item.output_dir(base)
    d.mkdir(parents=True, exist_ok=True)
    return d


def _identity_of(req: InvertRequest, rep: dict | None, key: str = "identity_consistency") -> float | None:
    """The headline figure ``key`` of a report: the first edit's (by tag), else the inversion's."""
    ic = (rep or {}).get(key)
    if not isinstance(ic, dict):
        return None
    for name in [*req.tags, "inversion"]:
        if ic.get(name) is not None:
            return float(ic[name])
    return None


TEMPORAL = ("tl_id", "tg_id", "warping_error")


def _temporal_of(rep: dict | None) -> dict | None:
    """A clip report's TL-ID / TG-ID / warping error per stream, and per track with several faces."""
    if not rep or "warping_error" not in rep:
        return None
    out = {k: rep.get(k) for k in TEMPORAL}
    out["reason"] = (rep.get("temporal_identity") or {}).get("reason")
    if len(rep.get("tracks") or []) > 1:
        out["tracks"] = [{"track": tr["track"], **{k: tr.get(k) for k in TEMPORAL}} for tr in rep["tracks"]]
    return out


class _OneInput:
    """Runs one corpus input through the one dispatch by kind; the models load on first use."""

    def __init__(self, settings: JobSettings, kinds: set[str], progress: ProgressFactory) -> None:
        self.settings, self.kinds, self.progress = settings, kinds, progress
        self.ctx = None
        self.results: list[InputResult] = []

    def __call__(self, item) -> dict:
        from vidinvert.pipeline.context import load_context
        from vidinvert.pipeline.runners import run_planned

        request = self.settings.request
        kind = input_kind(item.path, request.no_align)
        s = self.settings.for_kind(kind).replace(inputs=(item.path,), out_dir=item.output_dir(request.out_dir), overwrite=True,
                                  report=_mirror(request.report, item), save_latents=_mirror(request.save_latents, item),
                                  frames_dir=_mirror(request.frames_dir, item))
        try:
            (p,) = plan_inputs(s.request)
            if p.error is not None:
                raise VidinvertError(p.error)
            if self.ctx is None:
                check_needed_files(request, self.kinds)
                self.ctx = load_context(self.settings, self.kinds)
            res = run_planned(s, self.ctx, [p], self.progress, many=True)[p.source]
        except VidinvertError as exc:
            self.results.append(InputResult(item.path, kind, error=exc.message))
            raise
        if res.error is not None:
            self.results.append(res)
            raise VidinvertError(res.error)
        self.results.append(res)
        rep = res.report or {}
        frames = rep.get("frames", {}).get("total") if isinstance(rep.get("frames"), dict) else None
        temporal = _temporal_of(rep)  # clips only
        headline = {k: _identity_of(s.request, rep, k) for k in TEMPORAL} if temporal else {}
        return {"outputs": list(res.outputs.values()), "frames": int(frames if frames is not None else item.frames),
                "identity_consistency": _identity_of(s.request, rep), **headline, "temporal": temporal,
                "details": {"kind": kind}}


def run_corpus_edit(request: InvertRequest, *, progress: ProgressFactory | None = None,
                    on_result: Callable[[InputResult], None] | None = None,
                    poll_s: float = 5.0, report_every_s: float = 60.0) -> CorpusEditResult:
    """Run ``request`` over a corpus (see the module docstring); this process's share only.

    ``on_result`` gets each input this process ran (done or failed) as it finishes. Plain lines
    (one per finished input; torchrun's rank 0 also the whole corpus from the manifests) go to the
    ``vidinvert.corpus`` logger. Request-wide problems raise :class:`VidinvertError` before work.
    """
    import time

    import torch

    from vidinvert import distributed
    from vidinvert.device import resolve_compute
    from vidinvert.pipeline.corpus import parse_shard, plan_corpus
    from vidinvert.pipeline.corpus_run import run_corpus
    from vidinvert.weights import model_files as resolve_model_files

    t0 = time.perf_counter()
    settings = JobSettings.resolve(request)
    _check_layout(request)
    shard = parse_shard(request.shard)
    out_dir = request.out_dir
    items = plan_corpus([str(p) for p in request.inputs], exclude=[out_dir])
    examples: dict[str, Path] = {}
    for it in items:
        if it.error is None:
            examples.setdefault(input_kind(it.path, request.no_align), it.path)
    check_needed_files(request, set(examples))
    model_files = resolve_model_files(request.encoder, request.generator, request.weights_dir)
    fingerprint = config_fingerprint(request, model_files)

    compute = resolve_compute(request.device, request.dtype)
    device = compute.device
    if shard.kind == "torchrun":
        device = distributed.device_for(distributed.DistContext(shard.index, shard.count, shard.local_rank), device)
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads())
    elif device.index is not None:
        torch.cuda.set_device(device)
    rank_req = dataclasses.replace(request, device=str(device)) if device.type == "cuda" else request
    threads = f", {torch.get_num_threads()} thread(s)" if device.type == "cpu" else ""
    log.info(f"corpus: {len(items)} inputs, {sum(it.frames for it in items)} frames; this process: "
             f"{shard.describe()} on {device}{threads}")

    requests_by_kind(rank_req, examples)  # refuses an option that applies to no kind of the corpus
    rank_settings = settings if rank_req is request else JobSettings.resolve(rank_req, check=False)
    runner = _OneInput(rank_settings, set(examples), progress or no_progress)

    def process_one(item):
        try:
            return runner(item)
        finally:
            if on_result is not None and runner.results and runner.results[-1].source == item.path:
                on_result(runner.results[-1])

    res = run_corpus(items, process_one, shard=shard, out_dir=out_dir, fingerprint=fingerprint,
                     retry_failed=request.retry_failed, progress=log.info, poll_s=poll_s,
                     report_every_s=report_every_s)
    inv = runner.ctx.inverter if runner.ctx is not None else None
    corpus = {"shard": shard.describe(), "run_id": res.run_id, "inputs": len(items), "processed": res.processed,
              "skipped": res.skipped, "failed": res.failed, "frames": res.frames, "fingerprint": fingerprint,
              "summary": res.summary, "out_dir": str(out_dir)}
    return CorpusEditResult(runner.results, device=inv.compute.describe() if inv else str(device),
                            models={k: str(v) for k, v in inv.files.items()} if inv else {},
                            seconds={"total": round(time.perf_counter() - t0, 4)}, corpus=corpus, code=res.exit_code)
