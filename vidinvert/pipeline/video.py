"""The video job: decode -> face stage -> batched inversion -> edits -> synthesis -> paste -> encode.

Everything streams in chunks of ``chunk_frames`` frames; memory is bounded by a few chunks
whatever the clip's length. Three threads overlap the work: decoding and the face stage run
ahead in a background thread, the networks run in the calling thread (on the GPU when there
is one), and encoding runs in a writer thread.

Temporal consistency: one fixed noise set for the whole clip (the generator's stored noise),
the same edit vector on every frame, ``F~ = F + G_K(w~) - G_K(w)`` with the early-exit G_K,
and optional smoothing of w+ and F (centred Gaussian, one chunk of look-ahead) and fine-layer
averaging. Filters never mix frames across a gap without the face.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from vidinvert.engine import Inverter, Latents
from vidinvert.errors import VidinvertError
from vidinvert.face.align import warp_faces
from vidinvert.face.regions import feature_grid_mask
from vidinvert.face.smooth import INTERPOLATED
from vidinvert.face.stream import FaceFrame, MultiFaceAligner
from vidinvert.face.types import parse_face_select
from vidinvert.memory import BatchSize, batch_report, concat_rows
from vidinvert.pipeline import side_outputs
from vidinvert.pipeline.chunks import Chunk, Key, batches, filter_latents
from vidinvert.pipeline.composite import Compositor, Outputs, paste_batch, rows_of
from vidinvert.pipeline.edits import EditPlan
from vidinvert.pipeline.report import build_report, combine_track_reports, total_counts
from vidinvert.pipeline.sinks import DirectSink, EncodeSettings, output_metadata
from vidinvert.pipeline.state import RunState
from vidinvert.pipeline.temporal_report import FrameMark
from vidinvert.pipeline.video_config import (
    SIDE_BY_SIDE,
    OutputSpec,
    VideoConfig,
    VideoJob,
)
from vidinvert.threads import WriterThread, prefetch
from vidinvert.video import open_video
from vidinvert.video.damage import damage_report
from vidinvert.video.rendering_hdr import hdr_record, rendering_for

log = logging.getLogger(__name__)

__all__ = ["Chunk", "OutputSpec", "VideoConfig", "VideoJob", "VideoRun"]

ProgressFn = Callable[[str, int], None]


class VideoRun:
    """One video through the pipeline. Construct, then :meth:`run` -> report dict.

    Every selected face gets its own track (``job.face.track.select``: one face, ``all`` or ``N,M``);
    latents, temporal filters and metrics are kept per track, batches mix the faces of the same
    frames, and faces are pasted back in depth order. One face is the one-track case.

    ``workdir`` (a :class:`~vidinvert.pipeline.workdir.WorkDir`) makes the run resumable: each
    finished chunk's segments, raw latents, side outputs and :class:`RunState` are kept there.
    """

    def __init__(self, inverter: Inverter, job: VideoJob, *, embedder=None, masker=None,
                 progress: ProgressFn | None = None, workdir=None, plan: EditPlan | None = None,
                 detector=None) -> None:
        self.inv = inverter
        self.detector = detector  # a FaceDetector to use instead of the one job.face names
        self.job = job
        self.cfg = job.config
        self.embedder = embedder
        self.masker = masker
        self.progress = progress or (lambda stage, n: None)
        self.workdir = workdir
        self.state = RunState(edit_names=tuple(o.name for o in job.outputs if o.edit is not None
                                               or (plan is not None and plan.style is not None)))
        self.plan = plan if plan is not None else EditPlan(strength=job.config.strength)
        self.compositor = Compositor()  # faces into the source's own samples (vidinvert.pipeline.composite)
        self._chunk_latents: dict[int, list[dict]] = {}
        self._bare_frames = 0  # frames without any edited face
        self._clip: dict = {}  # the first and last frame's index and time (the report picture's axis)
        self.last_batch: tuple[torch.Tensor, dict[str, torch.Tensor]] | None = None  # crops of the last batch
        # each network stage's batch: --batch-size (or the size from free memory) as a ceiling,
        # halved when memory runs out (vidinvert.memory) and kept for the rest of the clip
        name, dev = Path(job.source).name, inverter.compute.device
        self.encoder_size = BatchSize(job.config.batch_size, "encoder", source=name, device=dev)
        self.render_size = BatchSize(job.config.batch_size, "generator passes", source=name, device=dev)

    @property
    def clock(self):
        return self.state.clock

    # -------------------------------------------------------------------------------- frames
    def _chunks(self, reader) -> Iterator[Chunk]:
        aligner = MultiFaceAligner(self.job.face, detector=self.detector, pixel_aspect=reader.info.pixel_aspect)
        self.aligner = aligner
        frames: list[FaceFrame] = []
        number = 0
        t0 = time.perf_counter()
        planes_at: dict = {}  # the decoded samples of the frames inside the face stage, by index

        def decoded():
            for f in reader.frames(prefetch=4):
                planes_at[f.index] = f.planes
                yield f

        for ff in aligner.run(decoded()):
            ff.planes = planes_at.pop(ff.index, None)
            frames.append(ff)
            self._clip.setdefault("first_frame", ff.index)
            self._clip.setdefault("start", round(ff.time, 6))
            self._clip.update(last_frame=ff.index, end=round(ff.time, 6))
            self._bare_frames += not ff.edited_faces
            if len(frames) == self.cfg.chunk_frames:
                self.clock.add("decode+face", time.perf_counter() - t0, len(frames))
                yield Chunk(number, frames)
                number += 1
                frames = []
                t0 = time.perf_counter()
        if frames:
            self.clock.add("decode+face", time.perf_counter() - t0, len(frames))
            yield Chunk(number, frames)

    # ------------------------------------------------------------------------------ networks
    def _crops(self, chunk: Chunk, keys: list[Key]) -> torch.Tensor:
        """Aligned source crops ``[n,3,S,S]`` in [-1,1] of the faces ``keys``."""
        quads = np.stack([chunk.face(k).quad for k in keys])
        with self.clock.timer("align", len(keys)):
            return warp_faces([chunk.frames[p].frame for p, _ in keys], quads, self.inv.size,
                              device=self.inv.compute.device)

    def invert_chunk(self, chunk: Chunk) -> None:
        """Raw latents for every face with a crop, in batches of at most ``batch_size`` faces."""
        chunk.latents = {}

        def invert(sel: list[Key]) -> Latents:
            crops = self._crops(chunk, sel)
            with self.clock.timer("encoder", len(sel)):
                return self.inv.invert(crops).cpu()

        for sel, lat in self.encoder_size.batches(chunk.keys, invert):
            for j, k in enumerate(sel):
                chunk.latents[k] = Latents(lat.w[j : j + 1], lat.f[j : j + 1])
        self.progress("invert", len(chunk.frames))

    def filtered_latents(self, before: Chunk | None, chunk: Chunk, after: Chunk | None) -> dict[Key, Latents]:
        """Temporal filters of ``chunk``'s latents, per track, using the neighbouring chunks as context."""
        cfg = self.cfg
        return filter_latents(before, chunk, after, sigma=cfg.latent_sigma, fine_mean=cfg.fine_mean,
                              fine_start=min(cfg.fine_start, self.inv.n_latent), state=self.state)

    def _is_edit(self, o: OutputSpec) -> bool:
        return o.edit is not None or self.plan.style is not None

    def render_chunk(self, chunk: Chunk, latents: dict[Key, Latents]) -> Outputs:
        """Edited full frames of every output for this chunk (uint8 RGB), and metrics. Batches hold
        whole frames (the faces of the same frames, mixed)."""
        outputs = self.chunk_outputs(chunk)
        for sel in batches(sorted(latents), self.cfg.batch_size):
            self.render_batch(outputs, chunk, sel, latents)
        return outputs

    def chunk_outputs(self, chunk: Chunk) -> Outputs:
        """Each output's frames of ``chunk`` before any face is pasted (the source frames and planes);
        the side-by-side inversion is pasted in full."""
        return Outputs.of_chunk(chunk, [o.name for o in self.job.outputs] + [SIDE_BY_SIDE] * self.cfg.side_by_side)

    def render_batch(self, outputs: dict[str, list[np.ndarray]], chunk: Chunk, sel: list[Key],
                     latents: dict[Key, Latents], *, recon: torch.Tensor | None = None,
                     metrics: bool = True) -> torch.Tensor:
        """One network batch ``sel`` (whole frames): reconstruction (``recon`` when already known,
        ``[n,3,S,S]``), region masks, every output's edit and synthesis, the paste into ``outputs``
        and (``metrics``) the report's meters. Returns the reconstruction.

        When memory runs out, the frames are rendered again in smaller batches of whole frames
        (:mod:`vidinvert.memory`); a part's meters and saved latents are kept once its networks have
        all returned, so every frame is pasted and counted once."""
        parts: list[tuple] = []
        done = 0

        def networks(piece: list[Key]):
            rows = slice(done, done + len(piece))
            return self._batch_networks(outputs, chunk, piece, latents, None if recon is None else recon[rows],
                                        embed=metrics)

        for piece, (lat, src, rec, edited, mask, embs) in self.render_size.batches(
                sel, networks, take=lambda rest, n: batches(rest, n)[0]):
            done += len(piece)
            parts.append((src, rec, edited))
            if metrics:
                with self.clock.timer("metrics", len(piece)):
                    self._metrics(chunk, piece, src, rec, edited, mask, embs)
                if self.job.save_latents is not None:
                    self._collect_latents(chunk, piece, lat)
        src, recon, edited = concat_rows(parts)
        self.last_batch = (src, edited)
        return recon

    def _batch_networks(self, outputs, chunk: Chunk, sel: list[Key], latents: dict[Key, Latents],
                        recon: torch.Tensor | None, *, embed: bool) -> tuple:
        """A batch's networks and paste into ``outputs`` (its frames replaced, so a batch taken again
        pastes them again): ``(latents, crops, recon, {name: edited}, paste masks, embeddings or None)``."""
        inv = self.inv
        items = [chunk.face(k) for k in sel]
        lat = Latents(torch.cat([latents[k].w for k in sel]), torch.cat([latents[k].f for k in sel]))
        src = self._crops(chunk, sel)
        if recon is None:
            with self.clock.timer("synthesize", len(sel)):
                recon = inv.synthesize(lat)
        region = None
        if self.plan.regions is not None:
            with self.clock.timer("regions", len(sel)):
                region = self.plan.regions.masks([it.landmarks_crop for it in items], src, device=inv.compute.device)
        edited: dict[str, torch.Tensor] = {}
        edit_outputs = [(o.name, o.edit) for o in self.job.outputs if self._is_edit(o)]
        if edit_outputs:
            with self.clock.timer("edit", len(sel)):
                lats = self.plan.edit_batch(inv, lat, edit_outputs, [(it.index, it.time) for it in items],
                                            [it.edit_weight for it in items],
                                            None if region is None else feature_grid_mask(region))
            with self.clock.timer("synthesize", len(sel)):
                edited = {name: inv.synthesize(le) for name, le in lats.items()}
        with self.clock.timer("paste", len(sel)):
            mask = paste_batch(self, outputs, chunk, sel, src, recon, edited, region)
        embs = None
        if embed:
            with self.clock.timer("metrics", 0):  # the frames are counted once, with the meters
                embs = self._embeddings(src, recon, edited)
        return lat, src, recon, edited, mask, embs

    def _embed(self, crops: torch.Tensor):
        if self.embedder is None or not self.cfg.report_identity:
            return None
        return self.embedder.embed(crops)

    def _embeddings(self, src, recon, edited) -> dict:
        """Identity embeddings of a batch's crops per stream (``source``, ``inversion``, each edit;
        None without an embedder)."""
        return {name: self._embed(x) for name, x in {"source": src, "inversion": recon, **edited}.items()}

    def _metrics(self, chunk: Chunk, sel: list[Key], src, recon, edited, mask, embs: dict | None = None) -> None:
        """Identity embeddings, flicker and warping error of a batch, per track (``mask``: the paste
        masks, the warping error's valid set; ``embs``: :meth:`_embeddings` when already computed);
        no temporal metric pairs frames across a gap in a track, nor two tracks.

        A gap is any break in the stream positions of a track's frames fed to its meters, whether
        it falls inside this batch or between batches or chunks (the track's ``last_pos``)."""
        crops = {"source": src, "inversion": recon, **edited}
        embs = embs if embs is not None else self._embeddings(src, recon, edited)
        if not sel:
            return
        items = [chunk.face(k) for k in sel]
        strengths = [0.0] * len(sel)
        if self.state.edit_names:
            strengths = self.plan.strengths([(it.index, it.time) for it in items],
                                            [it.edit_weight for it in items])[0].tolist()
        marks = [FrameMark(it.index, it.time, it.status == INTERPOLATED, s) for it, s in zip(items, strengths)]

        def take(x, js):
            return rows_of(x, js, len(sel))

        for tid in sorted({t for _, t in sel}):
            js = [j for j, (_, t) in enumerate(sel) if t == tid]
            pos = [chunk.number * self.cfg.chunk_frames + sel[j][0] for j in js]
            t_crops = {name: take(x, js) for name, x in crops.items()}
            t_embs = {name: take(e, js) for name, e in embs.items()}
            t_mask = take(mask, js)
            runs, start = [], 0
            for k in range(1, len(js)):
                if pos[k] != pos[k - 1] + 1:
                    runs.append(slice(start, k))
                    start = k
            runs.append(slice(start, len(js)))
            st = self.state.track(tid)
            for r, sl in enumerate(runs):
                st.feed({n: x[sl] for n, x in t_crops.items()},
                        {n: None if e is None else e[sl] for n, e in t_embs.items()},
                        [marks[j] for j in js[sl]], None if t_mask is None else t_mask[sl],
                        new_run=r > 0 or pos[0] != st.last_pos + 1)
            st.last_pos = pos[-1]

    def _collect_latents(self, chunk: Chunk, sel: list[Key], lat: Latents) -> None:
        items = [chunk.face(k) for k in sel]
        self._chunk_latents.setdefault(chunk.number, []).append(
            side_outputs.chunk_latent_arrays(items, lat.w, lat.f))

    # --------------------------------------------------------------------------------- run
    def run(self) -> dict:
        job, cfg = self.job, self.cfg
        t_start = time.perf_counter()
        reader = open_video(job.source, time_range=job.time_range, on_damage=cfg.on_damage, planes=True)
        self.compositor = Compositor(rendering_for(reader.info))  # HDR: the networks see R(x)
        self._prepare_side_outputs()
        sinks = self._open_sinks(reader.info)
        writer = WriterThread()
        chunks = prefetch(lambda: self._chunks(reader), 2, name="vidinvert-faces")
        prev: Chunk | None = None
        before: Chunk | None = None
        frames_done = 0
        try:
            for chunk in chunks:
                if self.workdir is not None and self.workdir.is_done(chunk.number):
                    self.workdir.load_raw(chunk)
                else:
                    self.invert_chunk(chunk)
                    if self.workdir is not None:
                        self.workdir.save_raw(chunk)
                if prev is not None:
                    frames_done += self._finish_chunk(before, prev, chunk, sinks, writer)
                before, prev = prev, chunk
                if before is not None:
                    before.drop_pixels()  # keep latents only
            if prev is not None:
                frames_done += self._finish_chunk(before, prev, None, sinks, writer)
            writer.join()
            if frames_done == 0:
                raise VidinvertError(f"{job.source}: no frames in the selected range")
            written = {name: sink.close() for name, sink in sinks.items()}
        except BaseException:
            chunks.close()
            for sink in sinks.values():
                sink.abort()
            raise
        per_track = [c.as_dict() for c in self.aligner.counts]
        counts = total_counts(per_track, frames_done, self._bare_frames)
        if counts["edited"] == 0:
            select = parse_face_select(self.job.face.track.select)
            which = f"face {select} (counted from the left)" if select.mode == "numbers" else "face"
            log.warning(f"{Path(job.source).name}: no {which} was found in any frame: the output is the source"
                        " re-encoded, unedited")
        wall = time.perf_counter() - t_start
        st, embedder = self.state, getattr(self.embedder, "name", None) if cfg.report_identity else None
        reports = []
        for tid, c in enumerate(per_track or [counts]):
            ts = st.track(tid)
            reports.append(build_report(source=ts.source, inversion=ts.inversion, edits=ts.edits, embedder=embedder,
                                        counts=c, clock=self.clock, extra={}, timeline=ts.timeline, warp=ts.warp))
        return combine_track_reports(
            reports, [(st.track(t).frames, st.track(t).first, st.track(t).last) for t in range(len(reports))],
            counts=counts,
            extra={"input": str(job.source), "outputs": {k: str(v) for k, v in written.items()},
                   "wall_seconds": round(wall, 3), "fps_end_to_end": round(frames_done / wall, 3) if wall else None,
                   "device": self.inv.compute.describe(), "dtype_reason": self.inv.compute.reason,
                   "paste_mode": cfg.paste_mode,
                   "strength": str(cfg.strength), "face": str(self.aligner.tracker.select), "clip": dict(self._clip),
                   "decode_damage": damage_report(reader.damaged), "hdr": hdr_record(reader.info),
                   "batch_size": self.batch_sizes()},
        )

    def batch_sizes(self) -> dict:
        """The network stages' batch sizes (start, final, reductions: :func:`vidinvert.memory.batch_report`),
        the face detector's too when it batches."""
        detector = getattr(getattr(self, "aligner", None), "detector", None)
        return batch_report([self.encoder_size, self.render_size, getattr(detector, "batch", None)])

    def _finish_chunk(self, before, chunk, after, sinks, writer) -> int:
        """Render, write and (resumable runs) mark done one chunk; a chunk finished in an earlier
        run only restores the running state saved with it."""
        n = len(chunk.frames)
        if self.workdir is not None and self.workdir.is_done(chunk.number):
            if chunk.number == self.workdir.last_done:
                self.state.load(self.workdir.load_state())
            self.progress("render", n)
            return n
        latents = self.filtered_latents(before, chunk, after)
        outputs = self.render_chunk(chunk, latents)
        pts, durs = chunk.pts, chunk.durations
        if self.cfg.side_by_side:
            last = self.job.outputs[-1].name
            outputs[SIDE_BY_SIDE] = [np.concatenate([it.frame, inv, out], axis=1) for it, inv, out in
                                     zip(chunk.frames, outputs[SIDE_BY_SIDE], outputs[last])]
            outputs.planes.pop(SIDE_BY_SIDE, None)  # an RGB picture
        if self.cfg.frames_dir is not None:
            idx, deep = [ff.index for ff in chunk.frames], {k: outputs.planes_of(k) for k in outputs}
            writer.put(lambda o=dict(outputs), ix=idx, d=deep: side_outputs.write_frames(self.cfg.frames_dir, o, ix, d))
        for name, frames in outputs.items():
            sink, deep = sinks[name], outputs.planes_of(name)
            writer.put(lambda s=sink, fr=frames, d=deep, c=chunk.number: s.write_chunk(c, fr, pts, durs, d))
        if self.job.save_latents is not None:
            batches = self._chunk_latents.pop(chunk.number, [])
            writer.put(lambda c=chunk.number, b=batches: side_outputs.write_chunk_latents(self.job.save_latents, c, b))
        if self.workdir is not None:
            snap = self.state.snapshot()
            writer.put(lambda c=chunk.number, st=snap: self.workdir.mark_done(c, st))
        self.progress("render", n)
        return n

    def _prepare_side_outputs(self) -> None:
        cfg, done = self.cfg, (sorted(self.workdir.done) if self.workdir is not None else [])
        if cfg.frames_dir is not None:
            names = [o.name for o in self.job.outputs] + ([SIDE_BY_SIDE] if cfg.side_by_side else [])
            side_outputs.prepare_frames_dir(cfg.frames_dir, names, overwrite=cfg.overwrite, resume=cfg.resume)
        if self.job.save_latents is not None:
            side_outputs.prepare_latents_dir(self.job.save_latents, overwrite=cfg.overwrite or bool(done),
                                             keep_chunks=done)

    def encode_settings(self) -> EncodeSettings:
        cfg, job = self.cfg, self.job
        return EncodeSettings(codec=cfg.codec, crf=cfg.crf, preset=cfg.preset, overwrite=cfg.overwrite,
                              carry_from=job.source, time_range=job.time_range,
                              metadata=output_metadata([o.name for o in job.outputs], job.metadata), planes=True)

    def _open_sinks(self, info) -> dict:
        enc = self.encode_settings()
        specs = [(o, info, enc) for o in self.job.outputs]
        if self.cfg.side_by_side:  # RGB panels
            first = self.job.outputs[0].path
            sbs = OutputSpec(SIDE_BY_SIDE, first.with_name(first.stem + ".side-by-side" + first.suffix))
            specs.append((sbs, dataclasses.replace(info, width=3 * info.width, coded_width=3 * info.width,
                                                   coded_height=info.height), dataclasses.replace(enc, planes=False)))
        sinks: dict = {}
        try:
            for o, like, settings in specs:
                if self.workdir is not None:
                    sinks[o.name] = self.workdir.sink(o, like, settings)
                else:
                    sinks[o.name] = DirectSink(o.path, like, settings)
        except BaseException:
            for s in sinks.values():
                s.abort()
            raise
        return sinks
