"""The page's callbacks, by name: each takes the page's values as ``{control name: value}`` and
returns ``{output name: value}`` (the page, :mod:`vidinvert.studio.page`, maps names to its
components). Errors become a line in the page's status, never a traceback; the app stays up.

Images go to the page as PNG files written here (:class:`~vidinvert.studio.files.ShownImages`), so
the after image the browser decodes is the render bit for bit.

Steering: a slider's change shows a labelled preview first, then the exact render; when the user
has already moved that slider on (an ``input`` event noted with :meth:`Handlers.note_input` after
this change started), the exact render is left to the newer change, which always runs last.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vidinvert.errors import VidinvertError
from vidinvert.pipeline.session import Media, RenderCancelled
from vidinvert.studio.channels import add_channel, find_channels
from vidinvert.studio.controls import Controls
from vidinvert.studio.files import ShownImages
from vidinvert.studio.gallery import Sheet, build_sheet, direction_choices, find_sheet
from vidinvert.studio.studio import RenderProgress, Studio, View

__all__ = ["CONTROL_NAMES", "Handlers", "error_text"]

#: The page's edit controls (see :class:`~vidinvert.studio.controls.Controls`).
CONTROL_NAMES = ("face", "direction", "strength", "layers", "keep", "region", "feature_keep", "style",
                 "style_strength", "style_layers", "paste", "color_match", "channel", "text", "text_neutral",
                 "text_beta", "text_matrix")
#: Sliders that show a preview while dragged.
SLIDERS = ("strength", "feature_keep", "style_strength", "text_beta")


def error_text(exc: BaseException) -> str:
    """One line for the page's status (an internal error says so, without the traceback)."""
    if isinstance(exc, VidinvertError):
        return " ".join(["**Error:** " + exc.message, *exc.details])
    return f"**Internal error:** {type(exc).__name__}: {exc} (the studio's terminal has the traceback)"


def _frame_text(media: Media, frame: int) -> str:
    if media.kind != "video":
        return f"{media.path.name} · photo {media.size[0]}x{media.size[1]}"
    t, end = media.time_of(frame), media.times[-1]
    return f"{media.path.name} · frame {frame} of {media.frames - 1} · {t:.3f} s of {end:.3f} s"


def _as_int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    return int(round(float(value)))


class Handlers:
    """The page's callbacks over one :class:`~vidinvert.studio.studio.Studio`."""

    def __init__(self, studio: Studio, images: Path | None = None) -> None:
        self.studio = studio
        self.images = ShownImages(images or studio.temp / "shown")
        self._inputs: dict[tuple[str, str], tuple[float, Any]] = {}
        self._inputs_lock = threading.Lock()
        self._last: tuple[tuple, dict] | None = None

    # ------------------------------------------------------------------------- helpers
    def media(self, v: dict) -> Media:
        if not v.get("media"):
            raise VidinvertError("open a clip or photo first (choose one, or upload one)")
        return self.studio.open(v["media"])

    @staticmethod
    def controls(v: dict) -> Controls:
        return Controls.of(**{name: v.get(name) for name in CONTROL_NAMES})

    def _view_out(self, view: View) -> dict:
        notes = " ".join(view.notes)
        return {"after": str(self.images.write(view.after, "after")),
                "crops": None if view.crops is None else str(self.images.write(view.crops, "crops")),
                "timing": view.label, "command": view.command, "status": notes}

    def _view(self, v: dict, *, preview: bool = False) -> dict:
        media = self.media(v)
        frame = _as_int(v.get("frame")) or 0
        controls, start, end = self.controls(v), _as_int(v.get("start")), _as_int(v.get("end"))
        key = (media.path, frame, controls, start, end, self.studio.command(media, controls, start, end))
        if not preview and self._last is not None and self._last[0] == key:
            return dict(self._last[1])  # the same exact render again (e.g. opening at the frame shown)
        view = self.studio.view(media, frame, controls, preview=preview, start=start, end=end)
        out = self._view_out(view)
        if view.exact:
            self._last = (key, out)
        return out

    @staticmethod
    def _guarded(fn, *args, **kwargs) -> dict:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # every failure is one line on the page; the app stays up
            if not isinstance(exc, VidinvertError):
                traceback.print_exc()
            return {"status": error_text(exc)}

    # --------------------------------------------------------------------------- views
    def view(self, v: dict) -> dict:
        """The exact render of the shown frame with the page's values."""
        return self._guarded(self._view, v)

    def note_input(self, session: str, control: str, value: Any) -> None:
        """A slider moved (its ``input`` event, unqueued): a change still rendering may skip its exact step."""
        with self._inputs_lock:
            self._inputs[(session, control)] = (time.monotonic(), value)

    def _moved_on(self, session: str, control: str, value: Any, since: float) -> bool:
        with self._inputs_lock:
            t, latest = self._inputs.get((session, control), (0.0, value))
        return t > since and latest != value

    def steer(self, v: dict, control: str, session: str = "") -> Iterator[dict]:
        """A slider's change: the preview, then (unless the slider has moved on) the exact render."""
        since = time.monotonic()
        if not self._guarded(lambda: self.studio.previews):
            yield self.view(v)
            return
        first = self._guarded(self._view, v, preview=True)
        yield first
        if "after" not in first or self._moved_on(session, control, v.get(control), since):
            return
        yield self.view(v)

    def frame(self, v: dict, session: str = "") -> Iterator[dict]:
        """The frame slider: the frame itself and its time at once, a preview, then the exact render."""
        try:
            media = self.media(v)
            frame = _as_int(v.get("frame")) or 0
            before = self.studio.source_frame(media, frame)
            yield {"before": str(self.images.write(before, "before")), "time": _frame_text(media, frame)}
        except Exception as exc:
            yield {"status": error_text(exc)}
            return
        yield from self.steer(v, "frame", session)
        yield self._faces(media, frame)

    def open(self, v: dict) -> Iterator[dict]:
        """Open the chosen clip or photo: frame slider, time, faces, the first frame, then its render."""
        try:
            media = self.media(v)
            rgb = self.studio.source_frame(media, 0)
            regions = self.studio.region_choices()
        except Exception as exc:
            yield {"status": error_text(exc)}
            return
        yield {"frame": {"maximum": max(media.frames - 1, 0), "value": 0, "visible": media.kind == "video"},
               "before": str(self.images.write(rgb, "before")), "time": _frame_text(media, 0),
               "region": {"choices": regions}, "status": "", "range": {"visible": media.kind == "video"},
               "video": {"visible": media.kind == "video"}, "photo": {"visible": media.kind != "video"}}
        yield self.view({**v, "frame": 0})
        yield self._faces(media, 0)

    def _faces(self, media: Media, frame: int) -> dict:
        """The face picker's choices and the frame with its faces numbered."""
        def faces() -> dict:
            choices, drawn = self.studio.frame_faces(media, frame)
            return {"face": {"choices": choices}, "faces": str(self.images.write(drawn, "faces"))}
        return self._guarded(faces)

    def command(self, v: dict) -> dict:
        """The command line for the page's values (the range changed)."""
        return self._guarded(lambda: {"command": self.studio.command(self.media(v), self.controls(v),
                                                                     _as_int(v.get("start")), _as_int(v.get("end"))),
                                      "status": ""})

    def load(self, v: dict) -> Iterator[dict]:
        """The page opened: an existing directions sheet, the input given on the command line (or, with
        none, whether the models load)."""
        sheet = self._guarded(self.find_sheet)
        if isinstance(sheet, Sheet):
            yield {"sheet": str(sheet.image), "sheet_state": sheet}
        if v.get("media"):
            yield from self.open(v)
        else:
            yield self._guarded(lambda: {"status": "", "region": {"choices": self.studio.region_choices()}})

    # -------------------------------------------------------------------------- uploads
    def upload(self, file: Any, kind: str) -> dict:
        """Keep an upload under the output folder: a clip or photo (then opened), a direction (then
        chosen) or a style reference."""
        def save() -> dict:
            if not file:
                return {"style": ""} if kind == "style" else {}
            path = self.studio.upload(file, kind)
            if kind == "input":
                return {"media": {"choices": self.media_choices(), "value": str(path)}, "status": ""}
            if kind == "style":
                return {"style": str(path), "status": ""}
            choices = self.direction_choices()
            return {"direction": {"choices": choices, "value": f"file:{path.resolve()}"},
                    "keep": {"choices": choices}, "status": ""}

        return self._guarded(save)

    def media_choices(self) -> list[tuple[str, str]]:
        folder = self.studio.request.folder
        return [(str(p.relative_to(folder)) if folder in p.parents else f"{p.name} (uploaded)", str(p))
                for p in self.studio.media_files()]

    def direction_choices(self) -> list[tuple[str, str]]:
        st = self.studio
        return direction_choices([st.request.folder, st.out], st.request.weights_dir, st.uploads)

    # --------------------------------------------------------------------------- render
    def render(self, v: dict, progress=None) -> dict:
        """Render the clip (or the range) through ``run_edit``; Cancel stops it within one chunk."""
        def report(p: RenderProgress) -> None:
            if progress is not None:
                progress(p.fraction, desc=p.text())

        try:
            media = self.media(v)
            done = self.studio.render(media, self.controls(v), _as_int(v.get("start")), _as_int(v.get("end")),
                                      progress=report)
        except RenderCancelled as exc:
            return {"status": f"**Cancelled:** {exc.message}", "progress": "cancelled"}
        except Exception as exc:
            if not isinstance(exc, VidinvertError):
                traceback.print_exc()
            return {"status": error_text(exc), "progress": "failed"}
        video = str(done.output) if media.kind == "video" else None
        photo = str(done.output) if media.kind != "video" else None
        return {"video": video, "photo": photo, "download": str(done.output), "rendered_command": done.command,
                "progress": f"rendered {done.output.name} in {done.seconds:.1f} s", "status": "",
                "command": self.studio.command(media, self.controls(v), _as_int(v.get("start")), _as_int(v.get("end")))}

    def cancel(self) -> dict:
        self.studio.cancel.set()
        return {"progress": "cancelling (within one chunk) ..."}

    # ------------------------------------------------------------------------- channels
    def find_channels(self, v: dict) -> dict:
        """Rank the channels acting in the chosen face part (``directions channels``): the list to pick from."""
        def find() -> dict:
            choices, note = find_channels(self.studio, v.get("channel_region") or "")
            return {"channel_pick": {"choices": choices, "value": None}, "channel_note": note, "status": ""}

        return self._guarded(find)

    def pick_channel(self, v: dict) -> dict:
        """A channel picked from the list: added to the channel box, then the frame rendered with it."""
        if not v.get("channel_pick"):
            return {}
        text = add_channel(v.get("channel"), str(v["channel_pick"]))
        return {**self.view({**v, "channel": text}), "channel": text}

    # ---------------------------------------------------------------------------- sheet
    def find_sheet(self) -> Sheet | None:
        st = self.studio
        return find_sheet([st.request.folder, st.out])

    def build_sheet(self, v: dict, progress=None) -> dict:
        """A sheet of every offered direction on the shown frame's face (cells at 256 px), built in the
        background with progress."""
        def build() -> dict:
            media = self.media(v)
            frame = _as_int(v.get("frame")) or 0
            dest = self.studio.temp / "sheets" / f"sheet-{int(time.time() * 1000)}.png"
            dest.parent.mkdir(parents=True, exist_ok=True)

            def report(done: int, total: int) -> None:
                if progress is not None:
                    progress((done, total), desc=f"directions sheet: {done}/{total} rows")

            req = self.studio.request
            sheet = build_sheet(self.studio.editor.inverter, media, frame, self.direction_choices(), dest,
                                face=v.get("face") or "largest", detector=str(req.detector),
                                weights_dir=req.weights_dir, progress=report)
            return {"sheet": str(sheet.image), "sheet_state": sheet, "status": ""}

        return self._guarded(build)

    @staticmethod
    def pick(sheet: Sheet | None, x: float, y: float) -> dict:
        """A click on the sheet at pixel (x, y): its cell's direction and strength."""
        got = sheet.pick(x, y) if sheet is not None else None
        if got is None:
            return {}
        value, strength = got
        if not value:
            return {"status": "**Error:** that row's direction file is not found"}
        return {"direction": value, "strength": strength}


def path_of(file: Any) -> Path | None:
    """A gradio upload value (a path string, or an object with ``.name``/``path``) -> its path."""
    if not file:
        return None
    return Path(getattr(file, "path", None) or getattr(file, "name", None) or str(file))
