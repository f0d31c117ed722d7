"""The image job: invert or edit aligned face images (``--no-align``), in batches.

Aligned means FFHQ-aligned square crops (e.g. CelebA-HQ). A square image of another size is
resized to the generator's resolution (antialiased) with a notice. Every image is read before
anything is written, so a bad image stops the job with no output written.
"""

from __future__ import annotations

import logging
import time
from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from vidinvert.convert import to_tensor, to_uint8
from vidinvert.edit.directions import EditSpec
from vidinvert.engine import Inverter, Latents
from vidinvert.errors import VidinvertError
from vidinvert.fileio import atomic_path
from vidinvert.imagefile import read_image, write_image
from vidinvert.memory import BatchSize, batch_report
from vidinvert.metrics.identity import paired_identity
from vidinvert.pipeline.edits import EditPlan, style_offsets
from vidinvert.pipeline.records import write_records
from vidinvert.pipeline.request import ALIGNED, EditRequest
from vidinvert.pipeline.results import InputResult
from vidinvert.pipeline.settings import JobSettings

log = logging.getLogger(__name__)
_D = EditRequest.defaults()


@dataclass(frozen=True)
class ImageJob:
    """Aligned images in batches: per input one output per edit (or the reconstruction).

    ``edits`` empty: invert. ``plan``: the job's :class:`~vidinvert.pipeline.edits.EditPlan` (style,
    feature keep); its strength replaces ``strength``. ``tags``: the output tags when they differ from
    the edits' names (a style alone). ``batch_size`` has no default (the rule is
    :meth:`~vidinvert.pipeline.settings.JobSettings.batch_size`)."""

    inputs: tuple[Path, ...]
    outputs: tuple[tuple[Path, ...], ...]
    _: KW_ONLY
    batch_size: int
    edits: tuple[EditSpec, ...] = ()
    strength: float = float(_D["strength"])
    save_latents: Path | None = _D["save_latents"]
    overwrite: bool = _D["overwrite"]
    plan: EditPlan | None = None
    tags: tuple[str, ...] = ()


def load_aligned(path: Path, size: int) -> np.ndarray:
    """Read an aligned face image as uint8 RGB ``[size,size,3]``."""
    rgb = read_image(path)
    h, w = rgb.shape[:2]
    if h != w:
        raise VidinvertError(
            f"{path}: {w}x{h} is not a square aligned face; --no-align expects FFHQ-aligned square crops"
        )
    if h != size:
        log.warning(f"{path.name}: {w}x{h} resized to the generator's {size}x{size}")
        t = to_tensor(rgb)
        t = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", antialias=h > size,
                                            align_corners=False)
        rgb = to_uint8(t)[0]
    return rgb


def run_image_job(inverter: Inverter, job: ImageJob,
                  progress: Callable[[int], None] | None = None, embedder=None) -> dict:
    """Run the job; returns a summary dict (outputs, timings). Calls ``progress(n)`` per batch.

    ``embedder`` (an identity embedder): the summary's ``identity_to_source`` gives, per image,
    ``{output tag: identity of the output to the source}``.
    """
    t0 = time.perf_counter()
    all_w, all_f, all_we, all_fe, all_se = [], [], [], [], []
    written: list[str] = []
    identity: list[dict[str, float]] = []
    timings = {"read": 0.0, "invert": 0.0, "edit": 0.0, "synthesize": 0.0, "write": 0.0}
    tags = list(job.tags) or [e.name for e in job.edits] or ["inverted"]
    # at most job.batch_size images per batch, halved when memory runs out (vidinvert.memory)
    batch_size = BatchSize(job.batch_size, "images", device=inverter.compute.device)
    for rows, (lat, edited, images, batch_identity) in batch_size.batches(
            range(len(job.inputs)), lambda rows: _image_batch(inverter, job, rows, tags, embedder, timings)):
        outs = job.outputs[rows[0] : rows[-1] + 1]
        all_w.append(lat.w)
        all_f.append(lat.f)
        if edited is not None:
            all_we.append(torch.stack([r.w for r in edited], 1))
            all_fe.append(torch.stack([r.f for r in edited], 1))
            all_se.append(style_offsets(edited))
        t = time.perf_counter()
        for k, imgs in enumerate(images):
            for i, img in enumerate(imgs):
                write_image(outs[i][k], img, overwrite=job.overwrite)
                written.append(str(outs[i][k]))
        timings["write"] += time.perf_counter() - t
        identity += batch_identity
        if progress:
            progress(len(rows))
    if job.save_latents is not None:
        arrays = {"w": torch.cat(all_w).numpy(), "f": torch.cat(all_f).numpy(),
                  "names": np.array([str(p) for p in job.inputs])}
        if all_we:
            arrays["w_edit"] = torch.cat(all_we).numpy()  # [N, n_edits, L, D]
            arrays["f_edit"] = torch.cat(all_fe).numpy()
            arrays["edits"] = np.array(list(job.tags) or [e.name for e in job.edits])
            if all_se[0] is not None:
                arrays["s_edit"] = np.concatenate(all_se)  # [N, n_edits, N_s] StyleSpace offsets
        with atomic_path(job.save_latents, overwrite=job.overwrite) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        written.append(str(job.save_latents))
    timings["total"] = time.perf_counter() - t0
    n = len(job.inputs)
    return {"images": n, "outputs": written, "timings_s": timings, "identity_to_source": identity,
            "seconds_per_image": timings["total"] / max(n, 1), "batch_size": batch_report([batch_size])}


def _image_batch(inverter: Inverter, job: ImageJob, rows: range, tags: list[str], embedder, timings: dict):
    """One batch's networks (nothing written): ``(latents, edited latents per tag or None, uint8
    RGB images [n,S,S,3] per tag, identity per image)``, latents on the CPU."""
    paths = job.inputs[rows[0] : rows[-1] + 1]
    t = time.perf_counter()
    faces = to_tensor(np.stack([load_aligned(p, inverter.size) for p in paths]), device=inverter.compute.device)
    timings["read"] += time.perf_counter() - t
    t = time.perf_counter()
    lat = inverter.invert(faces)
    timings["invert"] += time.perf_counter() - t
    results: list[Latents] = [lat]
    edited = None
    if job.edits or job.tags:
        t = time.perf_counter()
        plan = job.plan if job.plan is not None else EditPlan(strength=job.strength)
        by_name = {e.name: e for e in job.edits}
        n = len(paths)
        out = plan.edit_batch(inverter, lat, [(tag, by_name.get(tag)) for tag in tags], [(0, 0.0)] * n, [1.0] * n)
        results = [out[tag] for tag in tags]
        edited = [r.cpu() for r in results]
        timings["edit"] += time.perf_counter() - t
    emb_src = embedder.embed(faces) if embedder is not None else None
    batch_identity: list[dict[str, float]] = [{} for _ in paths]
    images = []
    for k, res in enumerate(results):
        t = time.perf_counter()
        synth = inverter.synthesize(res)
        if emb_src is not None:
            per = paired_identity(embedder.embed(synth), emb_src, getattr(embedder, "measure", "cosine"))
            for i in range(len(paths)):
                batch_identity[i][tags[k]] = round(float(per[i]), 5)
        images.append(to_uint8(synth))
        timings["synthesize"] += time.perf_counter() - t
    return lat.cpu(), edited, images, batch_identity


def run_aligned_images(s: JobSettings, ctx, planned: Sequence, progress) -> list[InputResult]:
    """The aligned images of a request (``planned``: :class:`~vidinvert.pipeline.plan.PlannedInput`)
    as one batched job -> one :class:`~vidinvert.pipeline.results.InputResult` per image.

    With ``report``: identity of each output to its source (the identity embedder's measure).
    """
    req, inverter = s.request, ctx.inverter
    specs = tuple(spec for _, spec in ctx.edits if spec is not None)
    tags = tuple(tag for tag, _ in ctx.edits)
    for p in planned:  # every image decoded before anything is written
        load_aligned(p.source, inverter.size)
    bs = s.batch_size(ALIGNED, inverter.compute, inverter.size)
    job = ImageJob(tuple(p.source for p in planned), tuple(tuple(p.outputs.values()) for p in planned),
                   edits=specs, strength=float(s.strength), save_latents=req.save_latents, batch_size=bs,
                   overwrite=req.overwrite, plan=ctx.plan, tags=tags)
    with progress("images", {"images": len(planned)}, "images") as advance:
        summary = run_image_job(inverter, job, progress=lambda n: advance("images", n),
                                embedder=ctx.embedder if req.report is not None else None)
    results = []
    for k, p in enumerate(planned):
        rep = None
        if req.report is not None:
            rep = {"input": str(p.source), "outputs": {t: str(o) for t, o in p.outputs.items()},
                   "identity_embedder": getattr(ctx.embedder, "name", None),
                   "identity_to_source": summary["identity_to_source"][k] if ctx.embedder is not None else None,
                   "batch_size": summary["batch_size"]}
            write_records(s, ctx, p, {}, rep, config={"images": {"batch_size": bs}})
        results.append(InputResult(p.source, p.kind, outputs=dict(p.outputs), report=rep))
    return results
