"""The studio's page (Gradio Blocks): the controls, the before | after view, the render, the gallery,
wired to the callbacks of :mod:`vidinvert.studio.handlers` by name.

Images are PNG files (lossless; Gradio's image component would default to lossy WebP). Every slider
notes its ``input`` events unqueued and renders on ``change`` (last one wins): a preview, then the
exact render, so a drag, the arrow keys and a typed number all end in the exact render. The text
boxes (channels, prompt, neutral phrase, matrix) render on Enter and when they lose focus.
"""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from vidinvert.specs import REGIONS, TEXT_BETA, TEXT_NEUTRAL
from vidinvert.studio.controls import CONTROL_OPTIONS, LAYER_CHOICES
from vidinvert.studio.handlers import SLIDERS, Handlers

__all__ = ["VIEW_INPUTS", "build_page"]

#: The values every frame render reads.
VIEW_INPUTS = ("media", "frame", "face", "direction", "strength", "layers", "keep", "region", "feature_keep",
               "style", "style_strength", "style_layers", "paste", "color_match", "channel", "text", "text_neutral",
               "text_beta", "text_matrix", "start", "end")
#: Text boxes: rendered when Enter is pressed or they lose focus (not on every keystroke).
TEXT_BOXES = ("channel", "text", "text_neutral", "text_matrix")
VIEW_OUTPUTS = ("after", "crops", "timing", "command", "status")
IMAGE_BUTTONS = ["download", "fullscreen"]  # no "share" (it would reach another host)
CSS = "#status {min-height: 1.5em} #command textarea {font-family: monospace; font-size: 0.85em}"


def _label(name: str, text: str) -> str:
    return f"{text} ({CONTROL_OPTIONS[name]})"


def _inputs_column(h: Handlers, ui: dict) -> None:
    st = h.studio
    first = str(st.request.input) if st.request.input is not None and st.request.input.is_file() else None
    ui["media"] = gr.Dropdown(h.media_choices(), value=first, label="Clip or photo (from the input's folder)",
                              elem_id="media")
    limit = st.request.max_upload_mb
    ui["upload_input"] = gr.File(label=f"... or upload one (up to {limit:g} MB)", file_types=["video", "image"],
                                 type="filepath", elem_id="upload-input", height=90)
    ui["frame"] = gr.Slider(0, 1, value=0, step=1, label="Frame", elem_id="frame")
    ui["time"] = gr.Markdown(elem_id="time")
    ui["faces"] = gr.Image(label="Faces of this frame, numbered as --face numbers them", format="png",
                           type="filepath", interactive=False, buttons=["fullscreen"], height=200, elem_id="faces")
    ui["face"] = gr.Radio(["largest", "center", "all"], value="largest", label=_label("face", "Face"),
                          info="Numbers: the faces of the first frame with faces, from the left", elem_id="face")


def _edit_column(h: Handlers, ui: dict) -> None:
    choices = h.direction_choices()
    limit = h.studio.request.max_upload_mb
    with gr.Accordion("Edit", open=True):
        ui["direction"] = gr.Dropdown(choices, value=choices[0][1] if choices else None,
                                      label=_label("direction", "Direction"), elem_id="direction")
        ui["upload_direction"] = gr.File(label=f"Upload a direction (.npy w+, .npz StyleSpace; up to {limit:g} MB)",
                                         file_types=[".npy", ".npz"],
                                         type="filepath", elem_id="upload-direction", height=90)
        ui["strength"] = gr.Slider(-10, 10, value=3, step=0.1, label=_label("strength", "Strength"),
                                   elem_id="strength")
        ui["layers"] = gr.Dropdown(list(LAYER_CHOICES), value="", allow_custom_value=True,
                                   label=_label("layers", "Layers"), info="empty: every row; or A-B, A,B,C",
                                   elem_id="layers")
        ui["keep"] = gr.Dropdown(choices, value=[], multiselect=True, label=_label("keep", "Keep unchanged"),
                                 elem_id="keep")
        ui["region"] = gr.CheckboxGroup([], value=[], label=_label("region", "Region"), elem_id="region")
        ui["feature_keep"] = gr.Slider(0, 1, value=1, step=0.05, label=_label("feature_keep", "Feature keep"),
                                       elem_id="feature-keep")
    with gr.Accordion("Style reference", open=False):
        ui["style_file"] = gr.File(label=_label("style", "Reference photo"), file_types=["image"], type="filepath",
                                   elem_id="style-file", height=90)
        ui["style"] = gr.State("")
        ui["style_strength"] = gr.Slider(0, 1, value=1, step=0.05, label=_label("style_strength", "Style strength"),
                                         elem_id="style-strength")
        ui["style_layers"] = gr.Dropdown([c for c in LAYER_CHOICES if c], value="all", allow_custom_value=True,
                                         label=_label("style_layers", "Style layers"), elem_id="style-layers")
    with gr.Accordion("Paste", open=False):
        ui["paste"] = gr.Radio(["delta", "full"], value="delta", label=_label("paste", "Paste"), elem_id="paste")
        ui["color_match"] = gr.Checkbox(False, label=_label("color_match", "Colour match"), elem_id="color-match")
    _style_space_column(ui)
    gr.Markdown("Strength keyframes (`--strength 0s:0,2s:3`) are not on the page: edit the command line by hand. "
                "Several edits (a direction, channels, a prompt) are shown summed (`--combine`).")


def _style_space_column(ui: dict) -> None:
    """StyleSpace channels (``--channel``) and an edit described in words (``--text`` and its options)."""
    with gr.Accordion("StyleSpace channels", open=False):
        ui["channel"] = gr.Textbox("", label=_label("channel", "Channels"), placeholder="e.g. 6_501, 9_409=-0.5",
                                   info="LAYER_CHANNEL[=S], S in standard deviations per unit of strength (default 1); "
                                        "`vidinvert directions channels --region mouth` lists candidates; Enter renders",
                                   elem_id="channel")
        with gr.Row():
            ui["channel_region"] = gr.Dropdown(list(REGIONS), value="mouth", label="Find channels acting in",
                                               info="`directions channels`: about 1.5 min at 1024 on a CPU",
                                               elem_id="channel-region", scale=2)
            ui["channel_btn"] = gr.Button("Find channels", elem_id="channel-find", scale=1)
        ui["channel_pick"] = gr.Dropdown([], value=None, label="Channels found: pick one to add it",
                                         elem_id="channel-pick")
        ui["channel_note"] = gr.Markdown(elem_id="channel-note")
    with gr.Accordion("Text (StyleCLIP global directions; needs CLIP)", open=False):
        ui["text"] = gr.Textbox("", label=_label("text", "Prompt"), placeholder="a face with a beard",
                                info="Enter renders; the strength is alpha (StyleCLIP's demo uses 4.1)", elem_id="text")
        ui["text_neutral"] = gr.Textbox(TEXT_NEUTRAL, label=_label("text_neutral", "Neutral phrase"),
                                        placeholder=TEXT_NEUTRAL, elem_id="text-neutral")
        ui["text_beta"] = gr.Slider(0.01, 0.99, value=TEXT_BETA, step=0.01, label=_label("text_beta", "Beta"),
                                    info="higher: fewer channels move", elem_id="text-beta")
        ui["text_matrix"] = gr.Textbox("", label=_label("text_matrix", "Relevance matrix"),
                                       placeholder="empty: StyleCLIP's fs3.npy in the weights folders",
                                       elem_id="text-matrix")


def _view_column(ui: dict) -> None:
    with gr.Row():
        ui["before"] = gr.Image(label="Before", format="png", type="filepath", interactive=False,
                                buttons=IMAGE_BUTTONS, elem_id="before")
        ui["after"] = gr.Image(label="After", format="png", type="filepath", interactive=False,
                               buttons=IMAGE_BUTTONS, elem_id="after")
    ui["timing"] = gr.Markdown(elem_id="timing")
    ui["crops"] = gr.Image(label="Aligned crop: source | edit", format="png", type="filepath", interactive=False,
                           buttons=IMAGE_BUTTONS, height=260, elem_id="crops")
    ui["command"] = gr.Textbox(label="Equivalent command line", lines=2, interactive=False, buttons=["copy"],
                               elem_id="command")
    with gr.Row(visible=True) as rng:
        ui["start"] = gr.Number(None, precision=0, minimum=0, label="Render from frame (empty or 0: the first)",
                                elem_id="start")
        ui["end"] = gr.Number(None, precision=0, minimum=0, label="... to frame, excluded (empty or 0: the end)",
                              elem_id="end")
    ui["range"] = rng
    with gr.Row():
        ui["render_btn"] = gr.Button("Render", variant="primary", elem_id="render")
        ui["cancel_btn"] = gr.Button("Cancel", variant="stop", elem_id="cancel")
    ui["progress"] = gr.Markdown(elem_id="progress")
    with gr.Row():
        ui["video"] = gr.Video(label="Result", interactive=False, elem_id="video", buttons=["download"], height=320)
        ui["photo"] = gr.Image(label="Result", format="png", type="filepath", interactive=False, buttons=IMAGE_BUTTONS,
                               visible=False, elem_id="photo", height=320)
        ui["download"] = gr.File(label="Download", interactive=False, elem_id="download", height=90)
    ui["rendered_command"] = gr.Textbox(label="The render's command line", interactive=False, buttons=["copy"],
                                        elem_id="rendered-command")
    with gr.Accordion("Directions gallery: click a cell to pick its direction and strength", open=False):
        ui["sheet"] = gr.Image(label="Directions x strengths", type="filepath", interactive=False,
                               buttons=IMAGE_BUTTONS, elem_id="sheet")
        ui["sheet_state"] = gr.State(None)
        ui["sheet_btn"] = gr.Button("Build a sheet on this frame (256 px cells, in the background)",
                                    elem_id="sheet-build")


class _Wiring:
    """Name-based callbacks <-> Gradio's component-keyed values (a dict value is a ``gr.update``)."""

    def __init__(self, ui: dict) -> None:
        self.ui = ui
        self.names = {c._id: n for n, c in ui.items()}

    def named(self, data: dict) -> dict:
        return {self.names[c._id]: v for c, v in data.items()}

    def out(self, result: dict) -> dict:
        return {self.ui[k]: (gr.update(**v) if isinstance(v, dict) else v) for k, v in result.items()}

    def comps(self, names) -> list:
        return [self.ui[n] for n in names]

    def plain(self, fn: Callable[[dict], dict]):
        def call(data: dict):
            return self.out(fn(self.named(data)))
        return call

    def stream(self, fn):
        def call(data: dict, request: gr.Request):
            for out in fn(self.named(data), request.session_hash):
                yield self.out(out)
        return call


def _wire_view(h: Handlers, w: _Wiring) -> None:
    ui = w.ui
    view_in, view_out = set(w.comps(VIEW_INPUTS)), w.comps(VIEW_OUTPUTS)
    for name in (*SLIDERS, "frame"):
        def note(value, request: gr.Request, name=name):
            h.note_input(request.session_hash, name, value)
        ui[name].input(note, inputs=[ui[name]], queue=False, api_visibility="private")
    for name in SLIDERS:
        ui[name].change(w.stream(lambda v, s, name=name: h.steer(v, name, s)), inputs=view_in, outputs=view_out,
                        trigger_mode="always_last", concurrency_id="view", api_visibility="private")
    ui["frame"].change(w.stream(h.frame), inputs=view_in, outputs=[*view_out, *w.comps(("before", "time", "face", "faces"))],
                       trigger_mode="always_last", concurrency_id="view", api_visibility="private")
    for name in ("face", "direction", "layers", "keep", "region", "paste", "color_match", "style", "style_layers",
                 "start", "end"):  # (the range: a frame's face stage starts at the range's start)
        ui[name].change(w.plain(h.view), inputs=view_in, outputs=view_out, trigger_mode="always_last",
                        concurrency_id="view", api_visibility="private")
    for name in TEXT_BOXES:  # (a second event for the same values returns the cached render)
        for event in (ui[name].submit, ui[name].blur):
            event(w.plain(h.view), inputs=view_in, outputs=view_out, trigger_mode="always_last",
                  concurrency_id="view", api_visibility="private")
    opened = [*view_out, *w.comps(("frame", "before", "time", "region", "range", "face", "faces", "video", "photo"))]
    ui["media"].change(w.stream(lambda v, s: h.open(v)), inputs=view_in, outputs=opened, concurrency_id="view",
                       api_visibility="private")


def _wire_rest(h: Handlers, w: _Wiring, page: gr.Blocks) -> None:
    ui = w.ui
    view_in = set(w.comps(VIEW_INPUTS))
    for name, kind, outs in (("upload_input", "input", ["media", "status"]),
                             ("upload_direction", "direction", ["direction", "keep", "status"]),
                             ("style_file", "style", ["style", "status"])):
        fn = w.plain(lambda v, name=name, kind=kind: h.upload(v[name], kind))
        ui[name].upload(fn, inputs={ui[name]}, outputs=w.comps(outs), api_visibility="private")
    ui["style_file"].clear(lambda: "", outputs=[ui["style"]], api_visibility="private")

    def render(data: dict, progress=gr.Progress()):
        return w.out(h.render(w.named(data), progress))
    ui["render_btn"].click(render, inputs=view_in,
                           outputs=w.comps(("video", "photo", "download", "rendered_command", "progress", "status",
                                            "command")),
                           concurrency_limit=1, concurrency_id="render", trigger_mode="multiple",
                           api_visibility="private")  # a second click waits in the queue, its position shown
    ui["cancel_btn"].click(lambda: w.out(h.cancel()), inputs=None, outputs=[ui["progress"]], queue=False,
                           api_visibility="private")

    ui["channel_btn"].click(w.plain(h.find_channels), inputs={ui["channel_region"]},
                            outputs=w.comps(("channel_pick", "channel_note", "status")), concurrency_limit=1,
                            concurrency_id="channels", api_visibility="private")
    ui["channel_pick"].input(w.plain(h.pick_channel), inputs=view_in | {ui["channel_pick"]},
                             outputs=[*w.comps(VIEW_OUTPUTS), ui["channel"]], concurrency_id="view",
                             api_visibility="private")

    def sheet(data: dict, progress=gr.Progress()):
        return w.out(h.build_sheet(w.named(data), progress))
    ui["sheet_btn"].click(sheet, inputs=view_in, outputs=w.comps(("sheet", "sheet_state", "status")),
                          concurrency_limit=1, concurrency_id="sheet", api_visibility="private")

    def pick(state, evt: gr.SelectData):
        x, y = evt.index
        return w.out(h.pick(state, float(x), float(y)))
    ui["sheet"].select(pick, inputs=[ui["sheet_state"]], outputs=w.comps(("direction", "strength", "status")),
                       api_visibility="private")
    page.load(w.stream(lambda v, s: h.load(v)), inputs=view_in,
              outputs=w.comps((*VIEW_OUTPUTS, "frame", "before", "time", "region", "range", "face", "faces", "video",
                               "photo", "sheet", "sheet_state")),
              concurrency_id="view", api_visibility="private")


def build_page(h: Handlers) -> tuple[gr.Blocks, dict]:
    """The page over ``h`` and its components by name."""
    ui: dict = {}
    with gr.Blocks(title="vidinvert studio", delete_cache=(600, 3600), analytics_enabled=False) as page:
        gr.Markdown("### vidinvert studio: see an edit on any frame, then render the clip as `vidinvert edit` would")
        ui["status"] = gr.Markdown(elem_id="status")
        with gr.Row():
            with gr.Column(scale=1, min_width=340):
                _inputs_column(h, ui)
                _edit_column(h, ui)
            with gr.Column(scale=2):
                _view_column(ui)
        w = _Wiring(ui)
        _wire_view(h, w)
        _wire_rest(h, w, page)
    return page, ui
