"""Clip frames for the editing session, from the video job's own pieces (see :mod:`vidinvert.pipeline.session`).

The face stage of a clip (one per set of face settings) is the job's :class:`~vidinvert.face.stream.MultiFaceAligner`
over the job's reader, advanced only as far as a render needs; frames keep their faces and, within
:data:`FRAME_CACHE_BYTES`, their pixels (evicted ones are decoded again by
:class:`~vidinvert.video.RandomAccessVideo`, which equals the streaming reader). Frames are grouped in the
job's chunks; inversions are made one face (one frame) at a time, as the job with ``--batch-size 1``
makes them, and the frame's batch goes through :meth:`VideoRun.render_batch`.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vidinvert.convert import to_uint8
from vidinvert.engine import Inverter, Latents
from vidinvert.errors import VidinvertError
from vidinvert.face.stream import FaceFrame, MultiFaceAligner
from vidinvert.face.types import parse_face_select
from vidinvert.pipeline.chunks import Chunk, Key
from vidinvert.pipeline.composite import Compositor
from vidinvert.pipeline.context import JobContext
from vidinvert.pipeline.request import CHUNK_FRAMES, VIDEO
from vidinvert.pipeline.session_types import ByteLRU, FaceInfo, Media, RenderCancelled, Rendered
from vidinvert.pipeline.settings import JobSettings
from vidinvert.pipeline.video import VideoRun
from vidinvert.pipeline.video_config import OutputSpec, VideoJob, face_config
from vidinvert.video import RandomAccessVideo, open_video, probe
from vidinvert.video.rendering_hdr import rendering_for

#: Inversions kept (w+ and F per face: about 0.55 MB each at 1024 px).
LATENT_CACHE_BYTES = 1 << 30
#: Decoded frames kept per clip's face stage (a 1080p frame is 6.2 MB).
FRAME_CACHE_BYTES = 1 << 30
#: Reconstructions G(w, F) of the last frames rendered (12 MB per face at 1024 px).
RECON_CACHE_BYTES = 256 << 20
#: Face stages kept (one per clip and set of face settings).
STAGES_KEPT = 4
#: Settings a clip's face stage depends on.
FACE_FIELDS = ("detector", "face", "crop_sigma", "max_gap", "flow_refine", "start", "end", "on_damage")

Progress = Callable[[str, int, int], None]


def _tensor_bytes(lat: Latents) -> int:
    return lat.w.numel() * lat.w.element_size() + lat.f.numel() * lat.f.element_size()


class FaceStage:
    """The job's face stage over one clip for one set of face settings, advanced on demand."""

    def __init__(self, media: Media, s: JobSettings, device: str, detector=None) -> None:
        self.media = media
        self.reader = open_video(media.path, time_range=s.time_range, on_damage=str(s.request.on_damage),
                                 planes=True)
        self.aligner = MultiFaceAligner(face_config(s, device), detector=detector,
                                        pixel_aspect=self.reader.info.pixel_aspect)
        self._planes_at: dict = {}  # decoded samples of the frames inside the face stage, by index
        self._stream = self.aligner.run(self._decoded())
        self.frames: list[FaceFrame] = []  # pixels dropped (kept in ``pixels``)
        self.position: dict[int, int] = {}  # frame index -> position in the range
        self.finished = False
        # frame index -> (uint8 RGB, Planes or None)
        self.pixels = ByteLRU(FRAME_CACHE_BYTES, lambda a: a[0].nbytes + (a[1].nbytes if a[1] is not None else 0))
        self._random: RandomAccessVideo | None = None

    def _decoded(self):
        for f in self.reader:
            self._planes_at[f.index] = f.planes
            yield f

    def advance(self, n: int, progress: Progress | None = None, cancel: threading.Event | None = None) -> None:
        """Run the stage until ``n`` frames have left it (or the range ends)."""
        while len(self.frames) < n and not self.finished:
            if cancel is not None and cancel.is_set():
                raise RenderCancelled("render cancelled")
            try:
                ff = next(self._stream)
            except StopIteration:
                self.finished = True
                break
            self.pixels.put(ff.index, (ff.frame, self._planes_at.pop(ff.index, None)))
            ff.frame = None  # type: ignore[assignment]
            for a in ff.faces:
                a.frame = None  # type: ignore[assignment]
            self.position[ff.index] = len(self.frames)
            self.frames.append(ff)
            if progress is not None:
                progress("faces", len(self.frames), n)

    def locate(self, index: int, progress=None, cancel=None) -> int:
        """The position of frame ``index`` in the range (the stage advanced until it left it)."""
        if self.frames and index < self.frames[0].index:
            raise VidinvertError(f"frame {index} is before the range start (frame {self.frames[0].index})")
        while index not in self.position and not self.finished:
            self.advance(len(self.frames) + 1, progress, cancel)
        if index not in self.position:
            raise VidinvertError(f"frame {index} is outside the rendered range of {self.media.path.name}")
        return self.position[index]

    def samples(self, position: int) -> tuple[np.ndarray, object]:
        """The decoded frame at ``position``: uint8 RGB ``[H,W,3]`` and its Planes (or None)."""
        index = self.frames[position].index
        got = self.pixels.get(index)
        if got is None:
            if self._random is None:
                self._random = RandomAccessVideo(self.media.path, planes=True)
            fr = self._random.get(index)
            got = (fr.rgb, fr.planes)
            self.pixels.put(index, got)
        return got

    def rgb(self, position: int) -> np.ndarray:
        """The decoded frame at ``position``, uint8 RGB ``[H,W,3]``."""
        return self.samples(position)[0]

    def frame(self, position: int, *, pixels: bool) -> FaceFrame:
        """A copy of the frame at ``position`` (with its pixels and planes when ``pixels``)."""
        ff = self.frames[position]
        rgb, planes = self.samples(position) if pixels else (None, None)
        faces = [dataclasses.replace(a, frame=rgb) for a in ff.faces]
        return dataclasses.replace(ff, frame=rgb, faces=faces, planes=planes)

    def first_numbers(self) -> dict[int, int]:
        """Track id -> ``--face`` number of the faces on the first frame with faces (those seen so far)."""
        for ff in self.frames:
            present = [a for a in ff.faces if a.quad is not None]
            if present:
                return {a.track: a.track for a in present}
        return {}


class ClipRenderer:
    """Clip frames of the session: face stages, inversions and reconstructions cached."""

    def __init__(self, inverter: Inverter, masker, detector=None) -> None:
        self.inv, self.masker, self.detector = inverter, masker, detector
        self.stages: OrderedDict[tuple, FaceStage] = OrderedDict()
        self.latents = ByteLRU(LATENT_CACHE_BYTES, _tensor_bytes)
        self.recons = ByteLRU(RECON_CACHE_BYTES, lambda t: t.numel() * t.element_size())

    def open(self, path: Path) -> Media:
        info = probe(path, count_frames=True)
        with RandomAccessVideo(path) as ra:
            times = tuple(float(t) for t in ra.times)
        return Media(path, VIDEO, len(times), times, (info.width, info.height), info)

    def stage(self, media: Media, s: JobSettings) -> tuple[tuple, FaceStage]:
        key = (str(media.path), *(str(getattr(s.request, f)) for f in FACE_FIELDS))
        st = self.stages.get(key)
        if st is None:
            st = self.stages[key] = FaceStage(media, s, str(self.inv.compute.device), self.detector)
            while len(self.stages) > STAGES_KEPT:
                self.stages.popitem(last=False)
        self.stages.move_to_end(key)
        return key, st

    def check_numbers(self, media: Media, s: JobSettings, progress=None, cancel=None) -> None:
        """``--face N,M`` names faces of the first frame with faces (numbered from the left, as the job
        numbers them): one line naming the faces there otherwise."""
        select = parse_face_select(s.request.face)
        if select.mode != "numbers":
            return
        _, every = self.stage(media, JobSettings.resolve(dataclasses.replace(s.request, face="all"), check=False))
        while not every.first_numbers() and not every.finished:
            every.advance(len(every.frames) + 1, progress, cancel)
        have = sorted(every.first_numbers())
        missing = [n for n in select.numbers if n not in have]
        if missing:
            first = next((ff.index for ff in every.frames if any(a.quad is not None for a in ff.faces)), None)
            where = f"the first frame with faces (frame {first}) has faces {', '.join(map(str, have))}" \
                if have else "no frame of the range has a face"
            raise VidinvertError(f"--face {s.request.face}: face {missing[0]} is not in {media.path.name}: {where}")

    def faces(self, media: Media, frame: int, s: JobSettings, *, progress=None, cancel=None) -> list[FaceInfo]:
        _, st = self.stage(media, s)
        k = st.locate(frame, progress, cancel)
        return _face_infos(st, st.frames[k])

    # ------------------------------------------------------------------------------- render
    def render(self, media: Media, frame: int, s: JobSettings, ctx: JobContext, *, exact: bool,
               progress: Progress | None, cancel: threading.Event | None, synth: Inverter | None = None) -> Rendered:
        """Frame ``frame`` (see the session); ``synth``: the inverter whose ``synthesize`` makes the
        images (an early-exit preview; default the session's)."""
        t0 = time.perf_counter()
        synth = synth or self.inv
        self.check_numbers(media, s, progress, cancel)
        key, st = self.stage(media, s)
        req = s.request
        r = int(math.ceil(3 * float(req.smooth_latents))) if float(req.smooth_latents) > 0 else 0
        fine = bool(req.fine_mean)
        approximated: list[str] = []
        if not exact and frame not in st.position:
            return self._approximate(media, frame, s, ctx, t0, synth)
        k = st.locate(frame, progress, cancel)
        c, p = divmod(k, CHUNK_FRAMES)
        if (r or fine) and not exact:
            approximated += ["latent smoothing"] * bool(r) + ["fine-layer mean"] * fine
            r, fine = 0, False
        if r or fine:
            st.advance((c + 1) * CHUNK_FRAMES + max(r, 1), progress, cancel)
        t_faces = time.perf_counter()
        run = self._video_run(media, s, ctx, synth)
        wanted = _wanted_positions(st, c, p, r, fine)
        chunks = {j: self._chunk(st, j, wanted.get(j, set()), p if j == c else None) for j in wanted}
        self._invert(key, run, chunks, wanted, progress, cancel)
        t_inv = time.perf_counter()
        latents = _filtered(run, chunks, c, fine)
        target = {kk: v for kk, v in latents.items() if kk[0] == p}
        chunk = chunks[c]
        outputs = run.chunk_outputs(chunk)
        sel = sorted(target)
        crops, edited = None, {}
        if sel:
            rkey = (key, r, fine, frame, getattr(synth, "rgb_size", None))
            recon = run.render_batch(outputs, chunk, sel, target, recon=self.recons.get(rkey), metrics=False)
            self.recons.put(rkey, recon)
            src, edited_t = run.last_batch
            crops, edited = to_uint8(src), {n: to_uint8(x.clamp(-1, 1)) for n, x in edited_t.items()}
        t_end = time.perf_counter()
        ff = chunk.frames[p]
        notes = () if sel else ("no face to edit on this frame: it is written unedited",)
        return Rendered(frame, float(ff.time), {name: frames[p] for name, frames in outputs.items()}, ff.frame,
                        _face_infos(st, st.frames[k]), crops, edited,
                        planes={name: pl[p] for name, pl in outputs.planes.items() if pl[p] is not None} or None,
                        timings={"faces": round(t_faces - t0, 4), "invert": round(t_inv - t_faces, 4),
                                 "render": round(t_end - t_inv, 4), **{k: round(v, 4) for k, v in run.clock.seconds.items()}},
                        exact=not approximated, approximated=tuple(approximated), notes=notes)

    def _video_run(self, media: Media, s: JobSettings, ctx: JobContext, synth: Inverter) -> VideoRun:
        edits = ctx.edits or (("inverted", None),)
        outs = tuple(OutputSpec(tag, Path(f"{tag}.mkv"), spec) for tag, spec in edits)
        job = VideoJob.from_settings(s, media.path, outs, compute=self.inv.compute, image_size=self.inv.size,
                                     frames_dir=None, save_latents=None)
        cfg = dataclasses.replace(job.config, batch_size=1, side_by_side=False, frames_dir=None)
        run = VideoRun(synth, dataclasses.replace(job, config=cfg), masker=self.masker, plan=ctx.plan,
                       detector=self.detector)
        run.compositor = Compositor(rendering_for(media.info))  # HDR clips: R and R⁻¹ (video.rendering_hdr)
        return run

    @staticmethod
    def _chunk(st: FaceStage, j: int, positions: set[int], render_at: int | None) -> Chunk:
        lo = j * CHUNK_FRAMES
        hi = min(lo + CHUNK_FRAMES, len(st.frames))
        frames = [st.frame(q, pixels=(q - lo) in positions or (q - lo) == render_at) for q in range(lo, hi)]
        return Chunk(j, frames)

    def _invert(self, key, run: VideoRun, chunks: dict[int, Chunk], wanted: dict[int, set[int]], progress,
                cancel) -> None:
        """Every wanted face's raw latents, one face at a time (the job's ``--batch-size 1``), cached."""
        todo = [(j, kk) for j, ch in sorted(chunks.items()) for kk in ch.keys if kk[0] in wanted[j]]
        for n, (j, kk) in enumerate(todo, 1):
            ch = chunks[j]
            ck = (key, ch.frames[kk[0]].index, kk[1])
            lat = self.latents.get(ck)
            if lat is None:
                if cancel is not None and cancel.is_set():
                    raise RenderCancelled("render cancelled")
                with run.clock.timer("encoder", 1):
                    lat = self.inv.invert(run._crops(ch, [kk])).cpu()
                self.latents.put(ck, lat)
            ch.latents[kk] = Latents(lat.w, lat.f)
            if progress is not None:
                progress("invert", n, len(todo))

    def _approximate(self, media: Media, frame: int, s: JobSettings, ctx: JobContext, t0: float,
                     synth: Inverter) -> Rendered:
        """Frame ``frame`` from its own detection alone (no tracking history, crop smoothing, fades or
        latent filters): a fast preview while scrubbing, flagged as such."""
        with RandomAccessVideo(media.path) as ra:
            item = ra.get(frame)
            pixel_aspect = ra.info.pixel_aspect
        aligner = MultiFaceAligner(face_config(s, str(self.inv.compute.device)), detector=self.detector,
                                   pixel_aspect=pixel_aspect)
        (ff,) = list(aligner.run(iter([item])))
        st = _OneFrame(ff)
        run = self._video_run(media, s, ctx, synth)
        chunk = Chunk(0, [ff])
        for kk in chunk.keys:
            chunk.latents[kk] = self.inv.invert(run._crops(chunk, [kk])).cpu()
        outputs = run.chunk_outputs(chunk)
        crops, edited = None, {}
        if chunk.latents:
            run.render_batch(outputs, chunk, sorted(chunk.latents), chunk.latents, metrics=False)
            src, edited_t = run.last_batch
            crops, edited = to_uint8(src), {n: to_uint8(x.clamp(-1, 1)) for n, x in edited_t.items()}
        what = ["tracking and crop smoothing over neighbouring frames", "fades around gaps"]
        req = s.request
        what += ["latent smoothing"] * (float(req.smooth_latents) > 0) + ["fine-layer mean"] * bool(req.fine_mean)
        return Rendered(frame, float(ff.time), {name: frames[0] for name, frames in outputs.items()}, ff.frame,
                        _face_infos(st, ff), crops, edited, timings={"render": round(time.perf_counter() - t0, 4)},
                        exact=False, approximated=tuple(what))


class _OneFrame:
    def __init__(self, ff: FaceFrame) -> None:
        self.frames = [ff]

    def first_numbers(self) -> dict[int, int]:
        return {a.track: a.track for a in self.frames[0].faces if a.quad is not None}


def _face_infos(st, ff: FaceFrame) -> list[FaceInfo]:
    numbers = st.first_numbers()
    return [FaceInfo.of(a.track, numbers.get(a.track), a.quad, a.status, a.edit_weight) for a in ff.faces]


def _wanted_positions(st: FaceStage, c: int, p: int, r: int, fine: bool) -> dict[int, set[int]]:
    """Chunk -> the positions whose inversions the latent filters of frame (chunk ``c``, position
    ``p``) read: the frame alone; with smoothing radius ``r`` the chunk and ``r`` frames of each
    neighbour; with the fine-layer mean every chunk from the start."""
    n_chunks = math.ceil(len(st.frames) / CHUNK_FRAMES)
    full = set(range(CHUNK_FRAMES))
    if not r and not fine:
        return {c: {p}}
    out = {j: set(full) for j in (range(c + 1) if fine else [c])}
    if r and c > 0 and not fine:
        out[c - 1] = set(range(CHUNK_FRAMES - r, CHUNK_FRAMES))
    if c + 1 < n_chunks:
        out[c + 1] = set(range(r)) if r else set()
    return out


def _filtered(run: VideoRun, chunks: dict[int, Chunk], c: int, fine: bool) -> dict[Key, Latents]:
    """Chunk ``c``'s latents after the job's temporal filters (with ``fine``, every chunk from the start
    filtered in order, as the job carries the running mean)."""
    out: dict[Key, Latents] = {}
    for j in (range(c + 1) if fine else [c]):
        out = run.filtered_latents(chunks.get(j - 1), chunks[j], chunks.get(j + 1))
    return out
