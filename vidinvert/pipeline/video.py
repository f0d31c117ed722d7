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

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from vidinvert.edit.temporal import smooth_window
from vidinvert.engine import Inverter, Latents
from vidinvert.errors import VidinvertError
from vidinvert.face.stage import AlignedFace, FaceAligner
from vidinvert.pipeline import side_outputs
from vidinvert.pipeline.edits import EditPlan
from vidinvert.pipeline.report import build_report
from vidinvert.pipeline.sinks import EncodeSettings, output_metadata
from vidinvert.pipeline.state import RunState
from vidinvert.pipeline.video_config import SIDE_BY_SIDE, OutputSpec, VideoConfig, VideoJob
from vidinvert.threads import WriterThread, prefetch

log = logging.getLogger(__name__)

__all__ = ["Chunk", "OutputSpec", "VideoConfig", "VideoJob", "VideoRun"]



@dataclass
class Chunk:
    """Frames of one chunk (their timestamps travel with them) and, once inverted, their raw latents."""

    number: int
    items: list[AlignedFace]
    latents: list[Latents | None] = field(default_factory=list)  # per item, raw (before filters)

    @property
    def valid(self) -> list[bool]:
        return [it.quad is not None for it in self.items]

    @property
    def pts(self) -> list[int | None]:
        return [it.pts for it in self.items]

    @property
    def durations(self) -> list[int | None]:
        return [it.duration for it in self.items]


ProgressFn = Callable[[str, int], None]


class VideoRun:
    """One video through the pipeline. Construct, then :meth:`run` -> report dict.

    ``workdir`` (a :class:`~vidinvert.pipeline.workdir.WorkDir`) makes the run resumable: each
    finished chunk's segments, raw latents, side outputs and :class:`RunState` are kept there.
    """

    def __init__(self, inverter: Inverter, job: VideoJob, *, embedder=None, masker=None,
                 progress: ProgressFn | None = None, workdir=None, plan: EditPlan | None = None) -> None:
        self.inv = inverter
        self.job = job
        self.cfg = job.config
        self.embedder = embedder
        self.masker = masker
        self.progress = progress or (lambda stage, n: None)
        self.workdir = workdir
        self.state = RunState(edit_names=tuple(o.name for o in job.outputs if o.edit is not None
                                               or (plan is not None and plan.style is not None)))
        self.plan = plan if plan is not None else EditPlan(strength=job.config.strength)
        self._chunk_latents: dict[int, list[dict]] = {}

    @property
    def clock(self):
        return self.state.clock

    # -------------------------------------------------------------------------------- frames
    def _chunks(self, reader) -> Iterator[Chunk]:
        aligner = FaceAligner(self.job.face)
        self.aligner = aligner
        items: list[AlignedFace] = []
        number = 0
        t0 = time.perf_counter()
        for it in aligner.run(reader.frames(prefetch=4)):
            items.append(it)
            if len(items) == self.cfg.chunk_frames:
                self.clock.add("decode+face", time.perf_counter() - t0, len(items))
                yield Chunk(number, items)
                number += 1
                items = []
                t0 = time.perf_counter()
        if items:
            self.clock.add("decode+face", time.perf_counter() - t0, len(items))
            yield Chunk(number, items)

    # ------------------------------------------------------------------------------ networks
    def _crops(self, chunk: Chunk, sel: list[int]) -> torch.Tensor:
        from vidinvert.face.align import warp_faces

        quads = np.stack([chunk.items[i].quad for i in sel])
        with self.clock.timer("align", len(sel)):
            return warp_faces([chunk.items[i].frame for i in sel], quads, self.inv.size,
                              device=self.inv.compute.device)

    def invert_chunk(self, chunk: Chunk) -> None:
        """Raw latents for every frame with a face (batched)."""
        chunk.latents = [None] * len(chunk.items)
        sel_all = [i for i, v in enumerate(chunk.valid) if v]
        b = self.cfg.batch_size
        for s in range(0, len(sel_all), b):
            sel = sel_all[s : s + b]
            crops = self._crops(chunk, sel)
            with self.clock.timer("encoder", len(sel)):
                lat = self.inv.invert(crops)
            for j, i in enumerate(sel):
                chunk.latents[i] = Latents(lat.w[j : j + 1].cpu(), lat.f[j : j + 1].cpu())
        self.progress("invert", len(chunk.items))

    def filtered_latents(self, before: Chunk | None, chunk: Chunk, after: Chunk | None) -> list[Latents | None]:
        """Temporal filters of ``chunk``'s latents using the neighbouring chunks as context."""
        cfg = self.cfg
        out: list[Latents | None] = list(chunk.latents)
        if cfg.latent_sigma > 0:
            r = int(np.ceil(3 * cfg.latent_sigma))
            seq: list[Latents | None] = []
            head = (before.latents[-r:] if before is not None else [])
            tail = (after.latents[:r] if after is not None else [])
            seq = list(head) + list(chunk.latents) + list(tail)
            valid = [x is not None for x in seq]
            if any(valid):
                proto = next(x for x in seq if x is not None)
                w = torch.cat([x.w if x is not None else torch.zeros_like(proto.w) for x in seq])
                f = torch.cat([x.f if x is not None else torch.zeros_like(proto.f) for x in seq])
                targets = range(len(head), len(head) + len(chunk.latents))
                ws = smooth_window(w, valid, targets, cfg.latent_sigma)
                fs = smooth_window(f, valid, targets, cfg.latent_sigma)
                out = [Latents(ws[k : k + 1], fs[k : k + 1]) if chunk.latents[k] is not None else None
                       for k in range(len(chunk.latents))]
        if cfg.fine_mean:
            start = min(cfg.fine_start, self.inv.n_latent)
            fine = self.state.fine
            res = []
            for lat in out:
                if lat is None:
                    fine.reset()
                    res.append(None)
                else:
                    res.append(Latents(fine.apply(lat.w[0], start)[None], lat.f))
            out = res
        return out

    def _is_edit(self, o: OutputSpec) -> bool:
        return o.edit is not None or self.plan.style is not None

    def render_chunk(self, chunk: Chunk, latents: list[Latents | None]) -> dict[str, list[np.ndarray]]:
        """Edited full frames of every output for this chunk (uint8 RGB), and metrics."""
        cfg, inv = self.cfg, self.inv
        outputs = {o.name: [it.frame for it in chunk.items] for o in self.job.outputs}
        if cfg.side_by_side:
            outputs[SIDE_BY_SIDE] = [it.frame for it in chunk.items]  # the inversion, pasted in full
        sel_all = [i for i, lat in enumerate(latents) if lat is not None]
        b = cfg.batch_size
        for s in range(0, len(sel_all), b):
            sel = sel_all[s : s + b]
            items = [chunk.items[i] for i in sel]
            lat = Latents(torch.cat([latents[i].w for i in sel]), torch.cat([latents[i].f for i in sel]))
            src = self._crops(chunk, sel)
            with self.clock.timer("synthesize", len(sel)):
                recon = inv.synthesize(lat)
            region = None
            if self.plan.regions is not None:
                with self.clock.timer("regions", len(sel)):
                    region = self.plan.regions.masks([it.landmarks_crop for it in items], src,
                                                     device=inv.compute.device)
            edited: dict[str, torch.Tensor] = {}
            edit_outputs = [(o.name, o.edit) for o in self.job.outputs if self._is_edit(o)]
            if edit_outputs:
                from vidinvert.face.regions import feature_grid_mask

                with self.clock.timer("edit", len(sel)):
                    lats = self.plan.edit_batch(inv, lat, edit_outputs, [(it.index, it.time) for it in items],
                                                [it.edit_weight for it in items],
                                                None if region is None else feature_grid_mask(region))
                with self.clock.timer("synthesize", len(sel)):
                    edited = {name: inv.synthesize(le) for name, le in lats.items()}
            with self.clock.timer("paste", len(sel)):
                self._paste_batch(outputs, chunk, sel, src, recon, edited, region)
            with self.clock.timer("metrics", len(sel)):
                self._metrics(chunk, sel, src, recon, edited)
            if self.job.save_latents is not None:
                self._collect_latents(chunk, sel, lat)
        return outputs

    def _paste_batch(self, outputs, chunk: Chunk, sel: list[int], src, recon, edited, region) -> None:
        """Paste a batch's syntheses into its frames: the inversion in full, edits by ``paste_mode``
        (a delta only inside the region with ``--region``), and the side-by-side inversion."""
        from vidinvert.face.masks import outline_masks
        from vidinvert.face.paste import combine_masks, paste_faces

        cfg, dev = self.cfg, self.inv.compute.device
        items = [chunk.items[i] for i in sel]
        quads = np.stack([it.quad for it in items])
        frames = [it.frame for it in items]
        weights = np.array([it.edit_weight for it in items])
        base_mask = None
        if self.masker is None:
            base_mask = outline_masks([it.landmarks_crop for it in items], cfg.mask_size, device=dev)
        for o in self.job.outputs:
            is_edit = self._is_edit(o)
            img = edited[o.name] if is_edit else recon
            mode = cfg.paste_mode if is_edit else "full"
            mask = self.masker.masks(src, img, size=cfg.mask_size) if self.masker is not None else base_mask
            if is_edit and region is not None:
                mask = combine_masks(mask, region)
            pasted = paste_faces(frames, quads, img, mask, mode=mode, recon=recon, weights=weights,
                                 color_reference=src if (cfg.color_match and mode == "full") else None)
            for j, i in enumerate(sel):
                outputs[o.name][i] = pasted[j]
        if cfg.side_by_side:
            first = self.job.outputs[0]
            if not self._is_edit(first):
                inv_frames = [outputs[first.name][i] for i in sel]
            else:
                mask = self.masker.masks(src, recon, size=cfg.mask_size) if self.masker else base_mask
                inv_frames = paste_faces(frames, quads, recon, mask, mode="full", weights=weights)
            for j, i in enumerate(sel):
                outputs[SIDE_BY_SIDE][i] = inv_frames[j]

    def _embed(self, crops: torch.Tensor):
        if self.embedder is None or not self.cfg.report_identity:
            return None
        return self.embedder.embed(crops)

    def _metrics(self, chunk: Chunk, sel: list[int], src, recon, edited) -> None:
        """Identity embeddings and flicker of a batch; flicker never pairs frames across a gap.

        A gap is any break in the stream positions of the frames fed to the meters, whether it
        falls inside this batch or between batches or chunks (``state.last_pos`` carries the last one).
        """
        idx = [chunk.items[i].index for i in sel]
        pos = [chunk.number * self.cfg.chunk_frames + i for i in sel]
        emb_src, emb_rec = self._embed(src), self._embed(recon)
        emb_ed = {n: self._embed(x) for n, x in edited.items()}
        if not sel:
            return
        runs, start = [], 0
        for k in range(1, len(sel)):
            if pos[k] != pos[k - 1] + 1:
                runs.append(slice(start, k))
                start = k
        runs.append(slice(start, len(sel)))
        for r, sl in enumerate(runs):
            st = self.state
            if r > 0 or pos[0] != st.last_pos + 1:
                for sm in (st.source, st.inversion, *st.edits.values()):
                    sm.gap()
            ids = idx[sl]
            st.source.add(src[sl], None if emb_src is None else emb_src[sl], ids)
            st.inversion.add(recon[sl], None if emb_rec is None else emb_rec[sl], ids)
            for n, x in edited.items():
                e = emb_ed[n]
                st.edits[n].add(x[sl], None if e is None else e[sl], ids)
        self.state.last_pos = pos[-1]

    def _collect_latents(self, chunk: Chunk, sel: list[int], lat: Latents) -> None:
        items = [chunk.items[i] for i in sel]
        self._chunk_latents.setdefault(chunk.number, []).append(side_outputs.chunk_latent_arrays(items, lat.w, lat.f))

    # --------------------------------------------------------------------------------- run
    def run(self) -> dict:
        from vidinvert.video import open_video

        job, cfg = self.job, self.cfg
        t_start = time.perf_counter()
        reader = open_video(job.source, time_range=job.time_range)
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
                    before.items = [_drop_frame(it) for it in before.items]  # keep latents only
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
        counts = self.aligner.counts.as_dict()
        if counts["edited"] == 0:
            from vidinvert.face.types import parse_face_select

            select = parse_face_select(self.job.face.track.select)
            which = f"face {select} (counted from the left)" if select.mode == "numbers" else "face"
            log.warning(f"{Path(job.source).name}: no {which} was found in any frame: the output is the source"
                        " re-encoded, unedited")
        wall = time.perf_counter() - t_start
        st = self.state
        return build_report(
            source=st.source, inversion=st.inversion, edits=st.edits,
            embedder=getattr(self.embedder, "name", None) if cfg.report_identity else None, counts=counts,
            clock=self.clock,
            extra={"input": str(job.source), "outputs": {k: str(v) for k, v in written.items()},
                   "wall_seconds": round(wall, 3), "fps_end_to_end": round(frames_done / wall, 3) if wall else None,
                   "device": self.inv.compute.describe(), "paste_mode": cfg.paste_mode,
                   "strength": str(cfg.strength),
                   # frames the decoder repaired by concealment (kept; they may show artefacts)
                   "decode_damage": {"frames": len(reader.damaged),
                                     "first": reader.damaged[0][0] if reader.damaged else None}},
        )

    def _finish_chunk(self, before, chunk, after, sinks, writer) -> int:
        """Render, write and (resumable runs) mark done one chunk; a chunk finished in an earlier
        run only restores the running state saved with it."""
        n = len(chunk.items)
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
                                     zip(chunk.items, outputs[SIDE_BY_SIDE], outputs[last])]
        if self.cfg.frames_dir is not None:
            idx = [it.index for it in chunk.items]
            writer.put(lambda o=dict(outputs), ix=idx: side_outputs.write_frames(self.cfg.frames_dir, o, ix))
        for name, frames in outputs.items():
            sink = sinks[name]
            writer.put(lambda s=sink, fr=frames, c=chunk.number: s.write_chunk(c, fr, pts, durs))
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
                              audio_from=job.source, time_range=job.time_range,
                              metadata=output_metadata([o.name for o in job.outputs], job.metadata))

    def _open_sinks(self, info) -> dict:
        import dataclasses

        from vidinvert.pipeline.sinks import DirectSink

        enc = self.encode_settings()
        specs = [(o, info) for o in self.job.outputs]
        if self.cfg.side_by_side:
            first = self.job.outputs[0].path
            sbs = OutputSpec(SIDE_BY_SIDE, first.with_name(first.stem + ".side-by-side" + first.suffix))
            specs.append((sbs, dataclasses.replace(info, width=3 * info.width, coded_width=3 * info.width,
                                                   coded_height=info.height)))
        sinks: dict = {}
        try:
            for o, like in specs:
                if self.workdir is not None:
                    sinks[o.name] = self.workdir.sink(o, like, enc)
                else:
                    sinks[o.name] = DirectSink(o.path, like, enc)
        except BaseException:
            for s in sinks.values():
                s.abort()
            raise
        return sinks


def _drop_frame(it: AlignedFace) -> AlignedFace:
    """Free a finished chunk's pixels (its latents stay for the filters' context)."""
    it.frame = None  # type: ignore[assignment]
    return it
