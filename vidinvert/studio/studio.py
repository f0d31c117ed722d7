"""What the studio's page does, without the page: open a clip or photo, list its faces, render a frame
with the controls' settings (exactly as ``edit`` writes it, or as a cheap preview while a slider is
dragged), render the whole clip through :func:`~vidinvert.pipeline.job.run_edit` with progress and
cancel, and say the equivalent ``vidinvert edit`` command line.

Frames come from the editing session (:class:`~vidinvert.pipeline.session.Editor`): the shown frame's
inversion is cached there, so a change re-runs only what it must. A preview stops the generator at
:data:`PREVIEW_RGB` px and upscales (and skips the prefix pass of frames the face stage has not yet
reached); it is labelled so. Generators below :data:`PREVIEW_FROM` px get no preview (their exact
render is as fast). The models load on first use: missing weights are one line on the page
(which file, where it goes) and the next action tries again.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from vidinvert.cli.jobs import command_line
from vidinvert.device import dtype_name
from vidinvert.errors import VidinvertError
from vidinvert.face.regions import PARSING_ONLY
from vidinvert.imagefile import is_image_path
from vidinvert.pipeline.job import run_edit
from vidinvert.pipeline.plan import image_output_path, video_output_path
from vidinvert.pipeline.request import EditRequest, InvertRequest
from vidinvert.pipeline.session import Editor, FaceInfo, Media, RenderCancelled, Rendered
from vidinvert.specs import REGIONS
from vidinvert.studio.controls import Controls
from vidinvert.studio.files import is_under, media_in, save_upload
from vidinvert.studio.request import StudioRequest
from vidinvert.video import RandomAccessVideo
from vidinvert.weights.registry import search_dirs

__all__ = ["PREVIEW_RGB", "RenderDone", "RenderProgress", "Studio", "View"]

#: The drag preview's synthesis resolution (the generator stopped there, then upscaled).
PREVIEW_RGB = 64
#: Generators from this size on get drag previews (below it the exact render is as cheap).
PREVIEW_FROM = 256
#: Side of each aligned crop in the page's crop strip (px).
CROP_VIEW = 256
#: The ``--face`` words offered beside the numbers.
FACE_WORDS = ("largest", "center", "all")


@dataclass
class View:
    """A rendered frame for the page: ``after`` the render (uint8 RGB ``[H,W,3]``, what ``edit``
    writes for this frame, or a preview when not ``exact``), ``source`` the frame, ``crops`` the
    aligned crops strip (source | edit per face, :data:`CROP_VIEW` px; None without a face),
    ``label`` what it is and how long it took, ``command`` the equivalent command line."""

    frame: int
    time: float
    after: np.ndarray
    source: np.ndarray
    crops: np.ndarray | None
    exact: bool
    seconds: float
    label: str
    notes: tuple[str, ...]
    faces: list[FaceInfo]
    command: str
    rendered: Rendered


@dataclass
class RenderProgress:
    """A clip render's progress: frames done of ``total`` (the render stage), frames/s and ETA."""

    stage: str
    done: int
    total: int
    fraction: float
    fps: float | None
    eta_s: float | None

    def text(self) -> str:
        rate = f" · {self.fps:.2f} frames/s" if self.fps else ""
        eta = f" · ETA {self.eta_s:.0f} s" if self.eta_s is not None else ""
        return f"{self.stage}: {self.done}/{self.total} frames{rate}{eta}"


@dataclass
class RenderDone:
    output: Path
    command: str
    seconds: float
    report: dict | None


class Studio:
    """The studio's state: the request, the editor (loaded on first use), the opened media, the
    render's cancel flag. ``temp``: its own temporary folder (uploads arrive there)."""

    def __init__(self, request: StudioRequest, temp: Path, *, editor: Editor | None = None) -> None:
        self.request = request
        self.temp = Path(temp)
        self.out = request.output_folder
        self.uploads = self.out / "uploads"
        self._editor = editor
        self._load_lock = threading.Lock()
        self._media: dict[Path, Media] = {}
        self.cancel = threading.Event()
        self.preview_from = PREVIEW_FROM

    @property
    def previews(self) -> bool:
        """Whether a dragged slider shows a preview first (generators of :attr:`preview_from` px and up)."""
        return self.editor.inverter.size >= self.preview_from

    # ----------------------------------------------------------------------------- models
    @property
    def editor(self) -> Editor:
        """The editing session, loaded on first use (missing model files: one line naming them)."""
        with self._load_lock:
            if self._editor is None:
                self._editor = Editor.from_request(EditRequest(inputs=(), **self.request.edit_models()))
            return self._editor

    @property
    def roots(self) -> list[Path]:
        """The folders the server may serve files from: the input's, the output folder, its temp."""
        return [self.request.folder, self.out, self.temp]

    def resolved_models(self) -> dict:
        """The model fields with the device and dtype the editor runs on (so the command line names them)."""
        compute = self.editor.inverter.compute
        models = self.request.edit_models()
        models.update(device=str(compute.device), dtype=dtype_name(compute.dtype))
        return models

    # ------------------------------------------------------------------------------ media
    def media_files(self) -> list[Path]:
        """Clips and photos to choose from: the input's folder, then the uploaded ones."""
        return media_in(self.request.folder) + [p for p in media_in(self.uploads) if p not in media_in(self.request.folder)]

    def open(self, path: str | Path) -> Media:
        """Open a clip or photo under the served folders (one line when it is neither)."""
        p = Path(path).expanduser().absolute()
        if not is_under(p, self.roots):
            raise VidinvertError(f"{p}: not in the input's folder, the output folder or an upload")
        media = self._media.get(p)
        if media is None:
            try:
                media = self.editor.open(p)
            except VidinvertError:
                raise
            except (OSError, ValueError, RuntimeError) as exc:  # a decoder's own error on a file that is no media
                raise VidinvertError(f"{p.name}: not a video or photo this studio can read ({exc})") from None
            self._media[p] = media
        return media

    def upload(self, src: str | Path, kind: str, name: str | None = None) -> Path:
        """An uploaded file (``direction`` .npy, ``style`` photo, ``input`` clip or photo) saved under the
        output folder's ``uploads``."""
        return save_upload(src, kind, self.uploads, name=name, limit=self.request.upload_limit)

    def source_frame(self, media: Media, frame: int) -> np.ndarray:
        """The frame's pixels (uint8 RGB), decoded alone (to show while the render runs)."""
        media.check_frame(frame)
        if media.kind != "video":
            return media.info.rgb

        with RandomAccessVideo(media.path) as ra:
            return ra.get(int(frame)).rgb

    def frame_faces(self, media: Media, frame: int) -> tuple[list[str], np.ndarray]:
        """What ``--face`` can name here (the words, then the numbers of the faces seen: a clip's are
        numbered on its first frame with faces) and the frame with every face's box and number drawn."""
        faces = self.editor.faces(media, frame)
        numbers = sorted({f.number for f in faces if f.number is not None})
        return [*FACE_WORDS, *(str(n) for n in numbers)], draw_faces(self.source_frame(media, frame), faces)

    def region_choices(self) -> list[str]:
        """The face parts ``--region`` can use with the weights present (hair and neck need parsing)."""
        parsing = self.editor.masker is not None
        return [r for r in REGIONS if parsing or r not in PARSING_ONLY]

    # ----------------------------------------------------------------------------- render
    def settings(self, media: Media, frame: int | None, controls: Controls, start: int | None = None,
                 end: int | None = None) -> InvertRequest:
        """The session's settings for ``frame``: the controls, the detector and (a clip frame inside it)
        the render range."""
        self._check_matrix(controls)
        rng = _range(media, start, end) if frame is None or _inside(frame, start, end) else {}
        return controls.request(inputs=(), detector=self.request.detector, **rng)

    def _check_matrix(self, controls: Controls) -> None:
        """A typed relevance-matrix path is read only from the served folders or the weights folders
        (a page, remote with ``--allow-remote``, must not make the server read any file it names)."""
        text = str(controls.text_matrix or "").strip()
        if text and not is_under(Path(text).expanduser().absolute(),
                                 self.roots + search_dirs(self.request.weights_dir)):
            raise VidinvertError(f"--text-matrix {text}: not in the input's folder, the output folder or the "
                                 "weights folders")

    def view(self, media: Media, frame: int, controls: Controls, *, preview: bool = False,
             start: int | None = None, end: int | None = None) -> View:
        """Frame ``frame`` rendered with ``controls`` (exact, or a labelled preview)."""
        t0 = time.perf_counter()
        settings = self.settings(media, frame, controls, start, end)
        editor = self.editor
        size = editor.inverter.size
        small = min(PREVIEW_RGB, size // 2) if preview and size // 2 >= 32 else None
        shown = editor.render(media, frame, settings, exact=not preview, preview_size=small)
        seconds = time.perf_counter() - t0
        if shown.exact:
            steps = ", ".join(f"{k} {v:.2f}" for k, v in shown.timings.items() if k in ("faces", "invert", "render",
                                                                                         "faces+invert", "edit", "paste"))
            label = f"exact render: {seconds:.2f} s ({steps})"
        else:
            label = f"preview ({'; '.join(shown.approximated)}): {seconds:.2f} s"
        command = self.command(media, controls, start, end)
        return View(frame, shown.time, shown.preview, shown.source, crop_strip(shown), shown.exact, seconds, label,
                    shown.notes, shown.faces, command, shown)

    def render_request(self, media: Media, controls: Controls, start: int | None = None,
                       end: int | None = None) -> InvertRequest:
        """The request of the whole render (or the range): what :meth:`render` runs and :meth:`command`
        shows; the output a new file in the output folder."""
        models = self.resolved_models()
        rng = _range(media, start, end)
        self._check_matrix(controls)
        req = controls.request(inputs=(media.path,), **rng, **models, explicit=frozenset({"device", "dtype"}))
        return controls.request(inputs=(media.path,), output=self.output_path(media, req.tags[0]), **rng, **models,
                                explicit=frozenset({"device", "dtype"}))

    def output_path(self, media: Media, tag: str) -> Path:
        """``OUT/clip.smile.mp4`` (or ``.2.mp4`` ... when taken): the next render's file."""
        first = (image_output_path(media.path, tag, None, self.out) if is_image_path(media.path)
                 else video_output_path(media.path, tag, None, self.out, False))
        path, n = first, 2
        while path.exists():
            path = first.with_name(f"{first.stem}.{n}{first.suffix}")
            n += 1
        return path

    def command(self, media: Media, controls: Controls, start: int | None = None, end: int | None = None) -> str:
        """The ``vidinvert edit ...`` command that writes what :meth:`render` writes."""
        return command_line(self.render_request(media, controls, start, end))

    def render(self, media: Media, controls: Controls, start: int | None = None, end: int | None = None,
               progress: Callable[[RenderProgress], None] | None = None) -> RenderDone:
        """The whole clip (or ``start``..``end``, frames) with ``controls`` through ``run_edit``; setting
        :attr:`cancel` stops it within one chunk (the partial output removed: :class:`RenderCancelled`)."""
        req = self.render_request(media, controls, start, end)
        self.out.mkdir(parents=True, exist_ok=True)
        self.cancel.clear()
        t0 = time.perf_counter()
        result = run_edit(req, progress=_progress_factory(progress, self.cancel))
        item = result.items[0]
        if item.error is not None:
            raise VidinvertError(item.error)
        return RenderDone(item.outputs[req.tags[0]], command_line(req), time.perf_counter() - t0, item.report)


def _inside(frame: int, start: int | None, end: int | None) -> bool:
    return (not start or frame >= start) and (not end or frame < end)


def _range(media: Media, start: int | None, end: int | None) -> dict:
    """``start``/``end`` frame indices as ``--start Nf --end Mf`` (clips; a photo has none). Empty or 0:
    from the first frame / to the last."""
    if media.kind != "video":
        if start or end:
            raise VidinvertError("a photo has no range: clear start and end")
        return {}
    out = {}
    start = int(start) if start is not None and int(start) > 0 else None
    end = int(end) if end is not None and 0 < int(end) < media.frames else None
    if start is not None:
        if start >= media.frames:
            raise VidinvertError(f"the range's start (frame {start}) is past the clip's last frame ({media.frames - 1})")
        out["start"] = f"{start}f"
    if end is not None:
        if start is not None and end <= start:
            raise VidinvertError(f"the range's end (frame {end}) must come after its start (frame {start})")
        out["end"] = f"{end}f"
    return out


def draw_faces(rgb: np.ndarray, faces: list[FaceInfo]) -> np.ndarray:
    """A copy of ``rgb`` with each face's crop box and ``--face`` number (``track N`` for a face that
    appears after the first frame with faces) drawn in."""
    img = Image.fromarray(rgb)
    draw = ImageDraw.Draw(img)
    width = max(1, round(max(rgb.shape[:2]) / 300))
    for f in faces:
        if f.box is None:
            continue
        x0, y0, x1, y1 = f.box
        draw.rectangle([x0, y0, x1, y1], outline=(255, 200, 0), width=width)
        label = str(f.number) if f.number is not None else f"track {f.track}"
        draw.text((max(x0, 0) + 3, max(y0, 0) + 2), label, fill=(255, 200, 0))
    return np.asarray(img)


def crop_strip(shown: Rendered) -> np.ndarray | None:
    """The aligned crops, source | edit per face side by side (rows: faces), :data:`CROP_VIEW` px each."""
    if shown.crops is None or not len(shown.crops):
        return None
    edited = next(iter(shown.edited_crops.values()), None)
    rows = []
    for i, src in enumerate(shown.crops):
        cells = [src] + ([edited[i]] if edited is not None else [])
        rows.append(np.concatenate([_resized(c) for c in cells], axis=1))
    return np.concatenate(rows, axis=0)


def _resized(rgb: np.ndarray) -> np.ndarray:
    if rgb.shape[0] == CROP_VIEW:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((CROP_VIEW, CROP_VIEW), Image.BILINEAR))


def _progress_factory(report: Callable[[RenderProgress], None] | None, cancel: threading.Event):
    """A ``run_edit`` progress factory: each chunk's advance reports frames/s and ETA and, when
    ``cancel`` is set, stops the render (:class:`RenderCancelled`)."""

    @contextlib.contextmanager
    def factory(title: str, totals: dict, unit: str):
        done = dict.fromkeys(totals, 0)
        t0 = time.perf_counter()
        whole = max(1, sum(int(v or 0) for v in totals.values()))

        def advance(stage: str, n: int) -> None:
            if cancel.is_set():
                raise RenderCancelled("render cancelled: the partial output was removed")
            done[stage] = done.get(stage, 0) + int(n)
            if report is None:
                return
            elapsed = time.perf_counter() - t0
            total = int(totals.get(stage) or 0)
            fps = done[stage] / elapsed if elapsed > 0 else None
            eta = (sum(int(v or 0) for v in totals.values()) - sum(done.values())) / (sum(done.values()) / elapsed) \
                if elapsed > 0 and sum(done.values()) else None
            report(RenderProgress(stage, done[stage], total, sum(done.values()) / whole, fps, eta))

        yield advance

    return factory
