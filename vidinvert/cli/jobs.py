"""``vidinvert invert`` and ``vidinvert edit``: videos, and aligned images (``--no-align``), share the options."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from vidinvert.cli import common
from vidinvert.errors import VidinvertError

InputsArg = Annotated[List[Path], typer.Argument(help="Input videos or images.", show_default=False)]
OutputOpt = Annotated[Optional[Path], typer.Option("--output", "-o", help="Output file (one input).")]
OutDirOpt = Annotated[Optional[Path], typer.Option("--out-dir", help="Folder for the outputs of many inputs.")]
NoAlignOpt = Annotated[bool, typer.Option("--no-align", help="Images are already FFHQ-aligned squares.")]
BatchOpt = Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Frames per batch (default: auto).")]
LatentsOpt = Annotated[Optional[Path], typer.Option("--save-latents", help="Write w+ and F to this .npz.")]
AttrOpt = Annotated[
    Optional[List[str]], typer.Option("--attr", help="Edit by name (smile, age, Eyeglasses, ...); repeatable.")
]
DirectionOpt = Annotated[
    Optional[List[Path]], typer.Option("--direction", help="Edit direction .npy file; repeatable.")
]
StrengthOpt = Annotated[
    str,
    typer.Option("--strength", help="Edit strength (w~ = w + 15*S*d, d unit-norm); videos: keyframes 0s:0,2s:3."),
]
CombineOpt = Annotated[bool, typer.Option("--combine", help="Sum several edits into one output.")]
StartOpt = Annotated[Optional[str], typer.Option("--start", help="Start of the range: 12.5 / 12.5s (seconds) or 300f (frame).")]
EndOpt = Annotated[Optional[str], typer.Option("--end", help="End of the range (exclusive), same grammar as --start.")]
FaceOpt = Annotated[str, typer.Option("--face", help="Which face: largest | center | N (0 = leftmost); tracked over time.")]
PasteOpt = Annotated[str, typer.Option("--paste", help="delta (add only the edit's change: keeps source detail) | full.")]
ColorOpt = Annotated[bool, typer.Option("--color-match", help="Match the pasted face's colours to the source (full paste).")]
SmoothOpt = Annotated[float, typer.Option("--smooth-latents", min=0.0, help="Gaussian sigma (frames) over w+ and F; 0 = off.")]
FineOpt = Annotated[bool, typer.Option("--fine-mean", help="Replace the fine rows of w+ (9..17) by their running mean.")]
MaxGapOpt = Annotated[float, typer.Option("--max-gap", min=0.0, help="Seconds without the face filled by interpolation; longer gaps pass through.")]
CropSigmaOpt = Annotated[
    str, typer.Option("--crop-sigma", help="Temporal smoothing of the crop, Gaussian sigmas in frames: CENTER,AXES.")
]
FlowOpt = Annotated[bool, typer.Option("--flow-refine", help="Refine landmarks with optical flow between detections.")]
CodecOpt = Annotated[str, typer.Option("--codec", help="libx264 | libx265 | ffv1 (lossless).")]
CrfOpt = Annotated[float, typer.Option("--crf", help="Quality for libx264/libx265 (0 lossless .. 51; 18 is visually lossless).")]
PresetOpt = Annotated[str, typer.Option("--preset", help="x264/x265 speed preset (ultrafast .. veryslow).")]
PreviewOpt = Annotated[bool, typer.Option("--preview", help="Render a short stretch (first 2 s, or --start/--end) and estimate the full time.")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Keep a work folder so a stopped run continues where it stopped.")]
SideBySideOpt = Annotated[bool, typer.Option("--side-by-side", help="Also write OUTPUT.side-by-side.mp4: source | inversion | edit.")]
FramesDirOpt = Annotated[Optional[Path], typer.Option("--frames-dir", help="Also write every output frame as PNG into this folder.")]
IdentityOpt = Annotated[bool, typer.Option(
    "--identity/--no-identity",
    help="Identity metrics in the report (ArcFace, else dlib: CPU, about 3 embeddings per frame); "
         "--no-identity skips them (flicker and counts remain).")]
ReportOpt = Annotated[Optional[Path], typer.Option("--report", help="Write the report as JSON here (a folder for several inputs).")]


# The video-only options of both commands, forwarded to cli.videos by name.
VIDEO_OPTIONS = ("start", "end", "detector", "face", "paste", "color_match", "smooth_latents", "fine_mean",
                 "max_gap", "crop_sigma", "flow_refine", "codec", "crf", "preset", "preview", "resume", "report",
                 "dtype", "side_by_side", "frames_dir", "identity")


def _video_options(params: dict) -> dict:
    return {k: params[k] for k in VIDEO_OPTIONS}


def resolve_models(encoder: str | None, generator: str | None, weights_dir: Path | None):
    from vidinvert.weights import find, resolve_file

    if generator is None:
        generator = "stylegan2-ffhq" if find("stylegan2-ffhq", weights_dir) or not find("psp-ffhq", weights_dir) else "psp-ffhq"
    gen_path = resolve_file(generator, "stylegan2-ffhq", weights_dir)
    enc_path = resolve_file(encoder, "fs-encoder", weights_dir)
    return enc_path, gen_path


def _edit_specs(attr, direction, strength, combine, n_latent, style_dim, weights_dir):
    from vidinvert.edit.directions import load_direction, resolve_attr
    from vidinvert.edit.directions import EditSpec
    from vidinvert.timespec import parse_strength

    s = parse_strength(strength)
    dirs = []
    for a in attr or []:
        name, path = resolve_attr(a, weights_dir)
        dirs.append(load_direction(path, n_latent, style_dim, name=a))
    for p in direction or []:
        dirs.append(load_direction(p, n_latent, style_dim))
    if not dirs:
        raise VidinvertError("nothing to edit: give --attr NAME or --direction FILE.npy")
    if combine:
        return s, (EditSpec("+".join(d.name for d in dirs), tuple(dirs), tuple(1.0 for _ in dirs)),)
    return s, tuple(EditSpec(d.name, (d,), (1.0,)) for d in dirs)


def _run(kind: str, o: dict) -> int:
    """Run ``invert``/``edit`` with the parsed options ``o`` (the parameter names of the option groups below)."""
    from vidinvert.imagefile import is_image_path

    inputs, output, out_dir, weights_dir = o["inputs"], o["output"], o["out_dir"], o["weights_dir"]
    if not inputs:
        raise VidinvertError("no inputs given")
    if out_dir is not None and not out_dir.is_dir():
        raise VidinvertError(f"--out-dir {out_dir} is not an existing folder")
    images = [p for p in inputs if is_image_path(p)]
    if images and len(images) != len(inputs):
        raise VidinvertError("give either images or videos in one call, not both")
    if images and not o["no_align"]:
        raise VidinvertError(
            "still images are taken as FFHQ-aligned faces: pass --no-align (to align raw photos, use a video)"
        )
    if images or len(inputs) == 1:
        for p in inputs:
            if not p.exists():
                raise VidinvertError(f"input not found: {p}")
    if not images and len(inputs) == 1:
        _check_video_outputs_early(kind, inputs[0], o)
    enc_path, gen_path = resolve_models(o["encoder"], o["generator"], weights_dir)
    compute = common.resolve_compute_loudly(o["device"], o["dtype"])
    from vidinvert.pipeline.inverter import Inverter

    inverter = Inverter.from_files(enc_path, gen_path, compute)
    s, edits = 0.0, ()
    if kind == "edit":
        s, edits = _edit_specs(o["attr"], o["direction"], o["strength"], o["combine"], inverter.n_latent,
                               inverter.style_dim, weights_dir)
    if images:
        return _run_images(kind, inverter, images, output, out_dir, o["no_align"], s, edits, o["batch_size"],
                           o["save_latents"], o["overwrite"], o["as_json"], enc_path, gen_path)
    from vidinvert.cli.videos import run_videos

    return run_videos(kind, inverter, inputs, output, out_dir, s, edits, o["batch_size"], o["save_latents"],
                      o["overwrite"], o["as_json"], weights_dir, _video_options(o))


def _edit_names(attr, direction, combine) -> list[str]:
    """The output tags of the edits, as :func:`_edit_specs` names them (before loading anything)."""
    names = [*(attr or []), *(Path(p).stem for p in direction or [])]
    return ["+".join(names)] if combine and names else names


def _check_video_outputs_early(kind: str, src: Path, o: dict) -> None:
    """The outputs of a one-video run are checked before the models load (seconds with the 1024
    models), with the same function the job uses when it starts."""
    from vidinvert.cli.videos import check_video_outputs

    tags = ["inverted"] if kind == "invert" else _edit_names(o.get("attr"), o.get("direction"), o.get("combine"))
    check_video_outputs(src, tags, o["output"], o["out_dir"], bool(o["preview"]), bool(o["overwrite"]))


def _run_images(kind, inverter, inputs, output, out_dir, no_align, s, edits, batch_size, save_latents, overwrite,
                as_json, enc_path, gen_path):
    from vidinvert.fileio import check_output
    from vidinvert.pipeline.images import ImageJob, plan_outputs, run_image_job
    from vidinvert.timespec import Keyframes

    if isinstance(s, Keyframes):
        raise VidinvertError("strength keyframes apply to videos; give a single number for images")
    tags = [e.name for e in edits] if edits else ["inverted"]
    outputs = plan_outputs(inputs, tags, output, out_dir)
    for outs in outputs:
        for o in outs:
            check_output(o, overwrite=overwrite, inputs=inputs)
    if save_latents is not None:
        check_output(save_latents, overwrite=overwrite, inputs=inputs)
    bs = batch_size or (4 if inverter.compute.device.type == "cpu" else 16)
    job = ImageJob(tuple(inputs), tuple(outputs), edits, float(s), save_latents, bs, overwrite)
    with common.StageProgress() as prog:
        task = prog.add(kind, total=len(inputs), unit="images")
        summary = run_image_job(inverter, job, progress=lambda n: prog.advance(task, n))
    summary.update(device=inverter.compute.describe(), encoder=str(enc_path), generator=str(gen_path))
    if as_json:
        common.print_json(summary)
    else:
        for o in summary["outputs"]:
            common.out.print(o)
    return 0


# The commands' option groups (assembled with common.options_of).
def _inputs(inputs: InputsArg) -> None: ...


def _edit_options(
    attr: AttrOpt = None,
    direction: DirectionOpt = None,
    strength: StrengthOpt = "3",
    combine: CombineOpt = False,
) -> None: ...


def _output_options(
    output: OutputOpt = None,
    out_dir: OutDirOpt = None,
    no_align: NoAlignOpt = False,
) -> None: ...


def _job_options(
    batch_size: BatchOpt = None,
    save_latents: LatentsOpt = None,
    overwrite: common.OverwriteOpt = False,
    as_json: common.JsonOpt = False,
    start: StartOpt = None,
    end: EndOpt = None,
    detector: common.DetectorOpt = "auto",
    face: FaceOpt = "largest",
    paste: PasteOpt = "delta",
    color_match: ColorOpt = False,
    smooth_latents: SmoothOpt = 0.0,
    fine_mean: FineOpt = False,
    max_gap: MaxGapOpt = 0.5,
    crop_sigma: CropSigmaOpt = "2,4",
    flow_refine: FlowOpt = False,
    codec: CodecOpt = "libx264",
    crf: CrfOpt = 18.0,
    preset: PresetOpt = "medium",
    preview: PreviewOpt = False,
    resume: ResumeOpt = False,
    report: ReportOpt = None,
    identity: IdentityOpt = True,
    side_by_side: SideBySideOpt = False,
    frames_dir: FramesDirOpt = None,
) -> None: ...


def register(app: typer.Typer) -> None:
    @app.command("invert")
    @common.options_of(_inputs, _output_options, common.model_options, _job_options)
    def invert(**options) -> None:
        """Invert faces without editing (the reconstruction): [bold]vidinvert invert clip.mp4[/bold], or aligned images with --no-align."""
        code = _run("invert", options)
        if code:
            raise typer.Exit(code)

    @app.command("edit")
    @common.options_of(_inputs, _edit_options, _output_options, common.model_options, _job_options)
    def edit(**options) -> None:
        """Edit the face in videos: [bold]vidinvert edit clip.mp4 --attr smile[/bold] -> clip.smile.mp4 (aligned images with --no-align)."""
        code = _run("edit", options)
        if code:
            raise typer.Exit(code)
