"""The editing session: load the models once, open a clip or photo, render any frame with any edit
settings, exactly as the job would write it.

::

    from vidinvert import EditRequest, Editor
    editor = Editor.from_request(EditRequest(inputs=(), device="cpu"))   # the model fields
    media = editor.open("clip.mp4")                 # frames, times, size
    editor.faces(media, 40)                          # the faces of frame 40, with their track ids
    shown = editor.render(media, 40, EditRequest(attr=("smile",), strength="2"))
    shown.outputs["smile"]                           # uint8 RGB [H,W,3]: what `edit` writes for frame 40

**What you see is what you render.** A clip frame is rendered by the video job's own pieces
(:class:`~vidinvert.pipeline.video.VideoRun`): the face stage runs from the range start up to the
frame plus its look-ahead (crop smoother, gap filling, fades), the inversions the latent filters need
(``smooth_latents``: the frame's chunk and its neighbours' edges; ``fine_mean``: every frame from the
start) are computed, and only the frame's own batch is edited, synthesized and pasted. With one face
per batch (the job run with ``--batch-size 1``) the result is bit for bit the job's frame; at other
batch sizes the CPU's numerics differ by at most one level on a few face pixels. ``exact=False``
skips the prefix (a fast approximation while scrubbing) and says what it approximated. A photo is
rendered by the photo job's pieces (detection, one batch, depth-ordered paste) without the write.

**Fast re-renders.** The face stage, the inversions (an LRU bounded by :data:`LATENT_CACHE_BYTES`),
the reconstruction of the last frames and the edit plans (directions, the style reference inverted
once) are cached, so a second render of a frame with other edit settings runs only the edit, G_K, one
synthesis per output and the paste. One render runs at a time: the session holds a lock, so it may be
called from several threads (each call waits for the one before).

**Settings** are an :class:`~vidinvert.pipeline.request.EditRequest` (or ``InvertRequest``: the
reconstruction). Every field that changes frame i's pixels in the job changes the render the same way;
the fields that cannot are ignored: :data:`NOT_RENDERED`. The model fields are the editor's.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from vidinvert.choices import ModelChoice
from vidinvert.engine import Inverter
from vidinvert.errors import VidinvertError
from vidinvert.face import masks as face_masks
from vidinvert.imagefile import is_image_path
from vidinvert.pipeline.context import JobContext, edit_plan, load_inverter
from vidinvert.pipeline.needs import check_needed_files
from vidinvert.pipeline.preview import EarlyExitSynthesis
from vidinvert.pipeline.request import PHOTO, VIDEO, EditRequest, InvertRequest
from vidinvert.pipeline.session_clip import FACE_FIELDS, ClipRenderer
from vidinvert.pipeline.session_photo import PhotoRenderer
from vidinvert.pipeline.session_types import FaceInfo, Media, RenderCancelled, Rendered
from vidinvert.pipeline.settings import JobSettings
from vidinvert.pipeline.text_edits import check_prompts

#: Request fields that do not change a frame's pixels (outputs, encoding, the report, corpus runs).
NOT_RENDERED = ("inputs", "output", "out_dir", "overwrite", "save_latents", "report", "frames_dir", "side_by_side",
                "encoder", "generator", "weights_dir", "device", "dtype", "batch_size", "codec", "crf", "preset",
                "preview", "resume", "identity", "shard", "retry_failed", "explicit")
#: Edit plans kept (each holds its directions and, with --style, the reference's inversion).
PLANS_KEPT = 8

__all__ = ["NOT_RENDERED", "Editor", "FaceInfo", "Media", "RenderCancelled", "Rendered"]

Progress = Callable[[str, int, int], None]


def _stamp(p: Path | None) -> tuple | None:
    if p is None:
        return None
    try:
        st = Path(p).stat()
        return (str(p), st.st_size, st.st_mtime_ns)
    except OSError:
        return (str(p), None, None)


def _edit_key(req: InvertRequest) -> tuple:
    """What an edit plan depends on (the request's edit fields and the files they name)."""
    if not isinstance(req, EditRequest):
        return ("invert",)
    return (req.attr, tuple(_stamp(p) for p in req.direction), req.channel, req.strength, req.combine, req.layers, req.keep,
            req.region, req.feature_keep, _stamp(req.style), req.style_strength, req.style_layers, req.no_align,
            str(req.detector), req.text, req.text_neutral, req.text_beta, _stamp(req.text_matrix))


class Editor:
    """An editing session (see the module docstring): the networks on one device, caches, a lock.

    ``masker``: the parsing masker (None: landmark masks); ``detector``: a face detector to use
    instead of the one ``--detector`` names (tests, custom detectors)."""

    def __init__(self, inverter: Inverter, *, masker=None, weights_dir: Path | None = None, detector=None) -> None:
        self.inverter = inverter
        self.masker = masker
        self.weights_dir = weights_dir
        self.lock = threading.RLock()
        self._plans: OrderedDict[tuple, JobContext] = OrderedDict()
        self.clips = ClipRenderer(inverter, masker, detector)
        self.photos = PhotoRenderer(inverter, masker, detector)

    @classmethod
    def from_request(cls, request: InvertRequest | ModelChoice) -> Editor:
        """Load the models named by the model fields of ``request`` (missing files: one line each, as the
        CLI gives them, before anything loads)."""
        models = request.models if isinstance(request, InvertRequest) else request
        models.check()
        probe = EditRequest(inputs=(), encoder=models.encoder, generator=models.generator,
                            weights_dir=models.weights_dir)
        check_needed_files(probe, {PHOTO, VIDEO})
        inverter = load_inverter(models)
        masker = face_masks.load_parsing_masker(models.weights_dir, inverter.compute.device)
        return cls(inverter, masker=masker, weights_dir=models.weights_dir)

    # ---------------------------------------------------------------------------------- media
    def open(self, path: str | Path) -> Media:
        """A clip or a photo: its frames (count, times), size, and (photos) kind; one line when it is
        neither (or missing)."""
        p = Path(path).expanduser()
        if not p.exists():
            raise VidinvertError(f"{p}: input not found")
        if p.is_dir():
            raise VidinvertError(f"{p}: is a folder, not a file")
        with self.lock:
            return self.photos.open(p) if is_image_path(p) else self.clips.open(p)

    def faces(self, media: Media, frame: int, settings: InvertRequest | None = None, *,
              progress: Progress | None = None, cancel: threading.Event | None = None) -> list[FaceInfo]:
        """The faces of ``frame`` as the job sees them with ``settings`` (default ``--face all``): track
        ids, ``--face`` numbers (on the first frame with faces), boxes and quads."""
        fields = FACE_FIELDS + ("min_face",) if settings is not None else ()
        face = {f: getattr(settings, f) for f in fields} if settings is not None else {"face": "all"}
        s = self._settings(media, InvertRequest(inputs=(), **face))
        with self.lock:
            media.check_frame(frame)
            if media.kind == PHOTO:
                return self.photos.faces(media, s)
            return self.clips.faces(media, frame, s, progress=progress, cancel=cancel)

    # --------------------------------------------------------------------------------- render
    def render(self, media: Media, frame: int, settings: InvertRequest, *, exact: bool = True,
               preview_size: int | None = None, progress: Progress | None = None,
               cancel: threading.Event | None = None) -> Rendered:
        """Frame ``frame`` of ``media`` with ``settings``, as the job writes it (see the module docstring).
        ``progress(stage, done, total)`` reports the prefix pass; setting ``cancel`` stops it
        (:class:`RenderCancelled`). ``preview_size`` (a power of two from 32 to below the generator's
        size): a cheap preview, the syntheses stopped at that resolution and upscaled
        (:class:`~vidinvert.pipeline.preview.EarlyExitSynthesis`); ``exact`` is then False."""
        s = self._settings(media, settings)
        with self.lock:
            media.check_frame(frame)
            t0 = time.perf_counter()
            ctx = self._context(s, media.kind)
            t_plan = time.perf_counter() - t0
            synth = self.inverter if preview_size is None else EarlyExitSynthesis(self.inverter, preview_size)
            if media.kind == PHOTO:
                out = self.photos.render(media, s, ctx, synth)
            else:
                out = self.clips.render(media, frame, s, ctx, exact=exact, progress=progress, cancel=cancel,
                                        synth=synth)
            if preview_size is not None:
                out.exact = False
                out.approximated += (f"the syntheses stopped at {preview_size} px and upscaled",)
            out.timings = {"plan": round(t_plan, 4), **out.timings,
                           "total": round(time.perf_counter() - t0, 4)}
            return out

    def _settings(self, media: Media, settings: InvertRequest) -> JobSettings:
        """The settings checked as the job checks them, for this media's kind (an option that does not
        apply to it is one line naming it)."""
        if not isinstance(settings, InvertRequest):
            raise TypeError("settings: an EditRequest or InvertRequest")
        req = dataclasses.replace(settings, inputs=(media.path,), output=None, out_dir=None, report=None,
                                  frames_dir=None, save_latents=None, weights_dir=self.weights_dir, preview=False)
        req.refuse_inapplicable({media.kind: media.path})
        return JobSettings.resolve(req)

    def _context(self, s: JobSettings, kind: str) -> JobContext:
        """The edit plan of ``s`` (cached by its edit fields: directions loaded and the style reference
        inverted once)."""
        key = (kind, _edit_key(s.request))
        ctx = self._plans.get(key)
        if ctx is None:
            ctx = JobContext(self.inverter, masker=self.masker)
            if s.edit is not None and s.edit.text:
                check_prompts(s.edit.text, s.edit.text_neutral)  # as the job does before its networks load
            if s.edit is not None:
                ctx.edits, ctx.plan = edit_plan(s, self.inverter, self.masker)
            self._plans[key] = ctx
            while len(self._plans) > PLANS_KEPT:
                self._plans.popitem(last=False)
        self._plans.move_to_end(key)
        return ctx
