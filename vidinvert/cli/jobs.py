"""``vidinvert invert`` and ``vidinvert edit``: parse the options into one request, call
:func:`vidinvert.pipeline.job.run_edit`, render the result.

Every default comes from the request dataclasses (``EditRequest.defaults()``), so the CLI and the
library cannot disagree; options are shown in panels (``PANELS`` of the request module).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from vidinvert.cli import common
from vidinvert.pipeline.request import FACE_OPTIONS, PANELS, VIDEO_ONLY, EditRequest, InvertRequest

D = EditRequest.defaults()
# The options about clips and faces that both commands parse.
VIDEO_OPTIONS = tuple(o for o in VIDEO_ONLY + FACE_OPTIONS if o in InvertRequest.defaults())
_PANEL_OF = {name: panel for panel, names in PANELS.items() for name in names}


def _in_panel(annotated, name: str):
    """``annotated`` (``Annotated[T, typer.Option(...)]``) shown in the ``--help`` panel of ``name``."""
    base, info = annotated.__origin__, annotated.__metadata__[0]
    info = copy.copy(info)
    info.rich_help_panel = _PANEL_OF[name]
    return Annotated[base, info]


def _opt(name: str, type_, *flags: str, help: str, **kw):
    return Annotated[type_, typer.Option(*flags, help=help, rich_help_panel=_PANEL_OF[name], **kw)]


InputsArg = Annotated[List[Path], typer.Argument(
    help="Input videos or images; with --out-dir also folders (recursive), quoted globs and list files "
         "(.txt/.lst/.list, one path a line): a corpus run.", show_default=False)]
OutputOpt = _opt("output", Optional[Path], "--output", "-o", help="Output file (one input).")
OutDirOpt = _opt("out_dir", Optional[Path], "--out-dir", help="Folder for the outputs (created if missing).")
NoAlignOpt = _opt("no_align", bool, "--no-align",
                  help="Images (and the --style reference) are already FFHQ-aligned squares.")
OverwriteOpt = _opt("overwrite", bool, "--overwrite", help="Replace existing outputs.")
LatentsOpt = _opt("save_latents", Optional[Path], "--save-latents",
                  help="Write w+ and F: a .npz for images, a folder of per-chunk .npz files for videos.")
ReportOpt = _opt("report", Optional[Path], "--report",
                 help="Write the report as JSON here (a folder for several inputs).")
FramesDirOpt = _opt("frames_dir", Optional[Path], "--frames-dir",
                    help="Also write every output frame as PNG into this folder.")
SideBySideOpt = _opt("side_by_side", bool, "--side-by-side",
                     help="Also write OUTPUT.side-by-side.mp4: source | inversion | edit.")
BatchOpt = _opt("batch_size", Optional[int], "--batch-size", min=1, help="Frames per batch (default: auto).")
AttrOpt = _opt("attr", Optional[List[str]], "--attr",
               help="Edit by name (a direction file found in the weights folders, e.g. smile); repeatable.")
DirectionOpt = _opt("direction", Optional[List[Path]], "--direction", help="Edit direction .npy file; repeatable.")
StrengthOpt = _opt("strength", str, "--strength",
                   help="Edit strength (w~ = w + 15*S*d, d unit-norm); videos: keyframes 0s:0,2s:3.")
CombineOpt = _opt("combine", bool, "--combine", help="Sum several edits into one output.")
StartOpt = _opt("start", Optional[str], "--start", help="Start of the range: 12.5 / 12.5s (seconds) or 300f (frame).")
EndOpt = _opt("end", Optional[str], "--end", help="End of the range (exclusive), same grammar as --start.")
FaceOpt = _opt("face", str, "--face",
               help="Which faces: largest | center | all | N | N,M (0 = leftmost); videos track them over time.")
MinFaceOpt = _opt("min_face", float, "--min-face", help="Photos: skip faces whose box is smaller than PX pixels (0: off).")
LayersOpt = _opt("layers", Optional[str], "--layers",
                 help="Move only these w+ rows: all | coarse (0-3) | middle (4-7) | fine (8-17) | A-B | A,B,C.")
KeepOpt = _opt("keep", Optional[List[str]], "--keep",
               help="Keep this attribute unchanged (name or file): the edit is made orthogonal to it; repeatable.")
RegionOpt = _opt("region", Optional[List[str]], "--region",
                 help="Edit only these face parts: mouth,eyes,brows,nose,skin,face,hair,neck (comma-separated or "
                      "repeated; hair and neck need the parsing weights).")
FeatureKeepOpt = _opt("feature_keep", str, "--feature-keep",
                      help="B in 0..1 (or keyframes): below 1 lets the edit move what the feature code holds "
                           "(stronger edits, less detail); 1 is the paper's eq. (1).")
StyleOpt = _opt("style", Optional[Path], "--style",
                help="Appearance from this reference photo (the paper's style mixing): every frame keeps its own "
                     "feature code (geometry).")
StyleStrengthOpt = _opt("style_strength", str, "--style-strength", help="How much of the reference: 0..1 (or keyframes).")
StyleLayersOpt = _opt("style_layers", str, "--style-layers",
                      help="The w+ rows taken from the reference: all | coarse | middle | fine | A-B | A,B,C.")
ShardOpt = _opt("shard", Optional[str], "--shard",
                help="Take shard I of N of the inputs (I/N, from 0) or 'slurm' (job array); needs --out-dir.")
RetryOpt = _opt("retry_failed", bool, "--retry-failed",
                help="Corpus runs: also redo inputs recorded as failed with this configuration.")
PasteOpt = _opt("paste", str, "--paste", help="delta (add only the edit's change: keeps source detail) | full.")
ColorOpt = _opt("color_match", bool, "--color-match", help="Match the pasted face's colours to the source (full paste).")
FlowOpt = _opt("flow_refine", bool, "--flow-refine", help="Refine landmarks with optical flow between detections.")
SmoothOpt = _opt("smooth_latents", float, "--smooth-latents", help="Gaussian sigma (frames) over w+ and F; 0 = off.")
FineOpt = _opt("fine_mean", bool, "--fine-mean", help="Replace the fine rows of w+ (9..17) by their running mean.")
MaxGapOpt = _opt("max_gap", float, "--max-gap",
                 help="Seconds without the face filled by interpolation; longer gaps pass through.")
CropSigmaOpt = _opt("crop_sigma", str, "--crop-sigma",
                    help="Temporal smoothing of the crop, Gaussian sigmas in frames: CENTER,AXES.")
CodecOpt = _opt("codec", str, "--codec", help="libx264 | libx265 | ffv1 (lossless).")
CrfOpt = _opt("crf", float, "--crf", help="Quality for libx264/libx265 (0 lossless .. 51; 18 is visually lossless).")
PresetOpt = _opt("preset", str, "--preset", help="x264/x265 speed preset (ultrafast .. veryslow).")
PreviewOpt = _opt("preview", bool, "--preview",
                  help="Render a short stretch (first 2 s, or --start/--end) and estimate the full time.")
ResumeOpt = _opt("resume", bool, "--resume", help="Keep a work folder so a stopped run continues where it stopped.")
IdentityOpt = _opt("identity", bool, "--identity/--no-identity",
                   help="Identity metrics in the report (ArcFace, else dlib: CPU, about 3 embeddings per frame); "
                        "--no-identity skips them (flicker and counts remain).")


def _given(ctx: typer.Context, options: dict) -> frozenset[str]:
    return frozenset(name for name in options if common.given_on_command_line(ctx, name))


def _run(kind: str, options: dict) -> int:
    """Build the request from the parsed options (``explicit``: those the user gave), run it,
    render the result; the exit code."""
    from vidinvert.cli.render import render_result, result_printer

    options = dict(options)
    as_json = options.pop("as_json")
    explicit = options.pop("explicit", frozenset())
    cls = EditRequest if kind == "edit" else InvertRequest
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in options.items() if v is not None or k in D}
    values = {k: (() if v is None and isinstance(D.get(k), tuple) else v) for k, v in values.items()}
    request = cls(**values, explicit=frozenset(explicit))
    from vidinvert.pipeline.corpus_job import corpus_mode
    from vidinvert.pipeline.job import run_edit

    # a corpus prints one plain line per input itself (and rank 0 the whole corpus)
    printer = None if corpus_mode(request) else result_printer(as_json, len(request.inputs))
    result = run_edit(request, progress=common.stage_progress, on_result=printer)
    return render_result(result, as_json)


def _inputs(inputs: InputsArg) -> None: ...


def _context(ctx: typer.Context) -> None: ...


def _edit_options(
    attr: AttrOpt = None,
    direction: DirectionOpt = None,
    strength: StrengthOpt = D["strength"],
    combine: CombineOpt = D["combine"],
    layers: LayersOpt = D["layers"],
    keep: KeepOpt = None,
    region: RegionOpt = None,
    feature_keep: FeatureKeepOpt = D["feature_keep"],
    style: StyleOpt = D["style"],
    style_strength: StyleStrengthOpt = D["style_strength"],
    style_layers: StyleLayersOpt = D["style_layers"],
) -> None: ...


def _output_options(
    output: OutputOpt = D["output"],
    out_dir: OutDirOpt = D["out_dir"],
    no_align: NoAlignOpt = D["no_align"],
    overwrite: OverwriteOpt = D["overwrite"],
    save_latents: LatentsOpt = D["save_latents"],
    report: ReportOpt = D["report"],
    frames_dir: FramesDirOpt = D["frames_dir"],
    side_by_side: SideBySideOpt = D["side_by_side"],
    as_json: common.JsonOpt = False,
) -> None: ...


def _model_options(
    encoder: _in_panel(common.EncoderOpt, "encoder") = D["encoder"],  # type: ignore[valid-type]
    generator: _in_panel(common.GeneratorOpt, "generator") = D["generator"],  # type: ignore[valid-type]
    weights_dir: _in_panel(common.WeightsDirOpt, "weights_dir") = D["weights_dir"],  # type: ignore[valid-type]
    device: _in_panel(common.DeviceOpt, "device") = D["device"],  # type: ignore[valid-type]
    dtype: _in_panel(common.DtypeOpt, "dtype") = D["dtype"],  # type: ignore[valid-type]
    batch_size: BatchOpt = D["batch_size"],
) -> None: ...


def _face_options(
    detector: _in_panel(common.DetectorOpt, "detector") = D["detector"],  # type: ignore[valid-type]
    face: FaceOpt = D["face"],
    min_face: MinFaceOpt = D["min_face"],
    paste: PasteOpt = D["paste"],
    color_match: ColorOpt = D["color_match"],
    flow_refine: FlowOpt = D["flow_refine"],
) -> None: ...


def _temporal_options(
    start: StartOpt = D["start"],
    end: EndOpt = D["end"],
    smooth_latents: SmoothOpt = D["smooth_latents"],
    fine_mean: FineOpt = D["fine_mean"],
    max_gap: MaxGapOpt = D["max_gap"],
    crop_sigma: CropSigmaOpt = D["crop_sigma"],
) -> None: ...


def _encoding_options(
    codec: CodecOpt = D["codec"],
    crf: CrfOpt = D["crf"],
    preset: PresetOpt = D["preset"],
) -> None: ...


def _run_options(
    preview: PreviewOpt = D["preview"],
    resume: ResumeOpt = D["resume"],
    identity: IdentityOpt = D["identity"],
    shard: ShardOpt = D["shard"],
    retry_failed: RetryOpt = D["retry_failed"],
) -> None: ...


COMMON_GROUPS = (_output_options, _model_options, _face_options, _temporal_options, _encoding_options, _run_options)


def register(app: typer.Typer) -> None:
    @app.command("invert")
    @common.options_of(_context, _inputs, *COMMON_GROUPS)
    def invert(ctx: typer.Context, **options) -> None:
        """Invert faces without editing (the reconstruction): [bold]vidinvert invert clip.mp4[/bold] or photo.jpg.

        Aligned images with --no-align; folders, globs and list files with --out-dir."""
        code = _run("invert", {**options, "explicit": _given(ctx, options)})
        if code:
            raise typer.Exit(code)

    @app.command("edit")
    @common.options_of(_context, _inputs, _edit_options, *COMMON_GROUPS)
    def edit(ctx: typer.Context, **options) -> None:
        """Edit faces in videos and photos: [bold]vidinvert edit clip.mp4 --attr smile[/bold] -> clip.smile.mp4.

        photo.jpg -> photo.smile.jpg; aligned images with --no-align; a corpus with --out-dir."""
        code = _run("edit", {**options, "explicit": _given(ctx, options)})
        if code:
            raise typer.Exit(code)
