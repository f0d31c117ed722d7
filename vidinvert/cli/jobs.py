"""``vidinvert invert`` and ``vidinvert edit``: images (``--no-align``) and videos share the options."""

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
EncoderOpt = Annotated[
    Optional[str], typer.Option("--encoder", help="Encoder file or registry name (default: fs-encoder).")
]
GeneratorOpt = Annotated[
    Optional[str],
    typer.Option("--generator", help="Generator file or registry name (default: stylegan2-ffhq, else psp-ffhq)."),
]
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


def resolve_models(encoder: str | None, generator: str | None, weights_dir: Path | None):
    from vidinvert.weights import find, resolve_file

    if generator is None:
        generator = "stylegan2-ffhq" if find("stylegan2-ffhq", weights_dir) or not find("psp-ffhq", weights_dir) else "psp-ffhq"
    gen_path = resolve_file(generator, "stylegan2-ffhq", weights_dir)
    enc_path = resolve_file(encoder, "fs-encoder", weights_dir)
    return enc_path, gen_path


def _compute(device: str, dtype: str):
    from vidinvert.device import resolve_compute

    compute = resolve_compute(device, dtype)
    if compute.fell_back and device != "cpu":
        common.loud(
            "running on the CPU: CUDA is not available"
            + (" although --device cuda was asked for" if device.startswith("cuda") else "")
            + " (this is slow; pass --device cpu to silence this)"
        )
    return compute


def _edit_specs(attr, direction, strength, combine, n_latent, style_dim, weights_dir):
    from vidinvert.edit.directions import load_direction, resolve_attr
    from vidinvert.pipeline.images import EditSpec
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


def _run(kind: str, inputs, output, out_dir, no_align, encoder, generator, weights_dir, device, dtype,
         batch_size, save_latents, overwrite, as_json, attr=None, direction=None, strength="3", combine=False):
    from vidinvert.fileio import check_output
    from vidinvert.imagefile import is_image_path
    from vidinvert.pipeline.images import ImageJob, plan_outputs, run_image_job
    from vidinvert.pipeline.inverter import Inverter
    from vidinvert.timespec import Keyframes

    if not inputs:
        raise VidinvertError("no inputs given")
    images = [p for p in inputs if is_image_path(p)]
    if len(images) != len(inputs):
        raise VidinvertError("video inputs need the video pipeline (not in this build yet)")
    if not no_align:
        raise VidinvertError(
            "still images are taken as FFHQ-aligned faces: pass --no-align (alignment of raw photos: use a video or align first)"
        )
    for p in inputs:
        if not p.exists():
            raise VidinvertError(f"input not found: {p}")
    if out_dir is not None and not out_dir.is_dir():
        raise VidinvertError(f"--out-dir {out_dir} is not an existing folder")
    enc_path, gen_path = resolve_models(encoder, generator, weights_dir)
    compute = _compute(device, dtype)
    inverter = Inverter.from_files(enc_path, gen_path, compute)
    edits = ()
    s = 0.0
    tags = ["inverted"]
    if kind == "edit":
        s, edits = _edit_specs(attr, direction, strength, combine, inverter.n_latent, inverter.style_dim, weights_dir)
        if isinstance(s, Keyframes):
            raise VidinvertError("strength keyframes apply to videos; give a single number for images")
        tags = [e.name for e in edits]
    outputs = plan_outputs(inputs, tags, output, out_dir)
    for outs in outputs:
        for o in outs:
            check_output(o, overwrite=overwrite, inputs=inputs)
    if save_latents is not None:
        check_output(save_latents, overwrite=overwrite, inputs=inputs)
    bs = batch_size or (4 if compute.device.type == "cpu" else 16)
    job = ImageJob(tuple(inputs), tuple(outputs), edits, float(s), save_latents, bs, overwrite)
    with common.StageProgress() as prog:
        task = prog.add(kind, total=len(inputs), unit="images")
        summary = run_image_job(inverter, job, progress=lambda n: prog.advance(task, n))
    summary.update(device=compute.describe(), encoder=str(enc_path), generator=str(gen_path))
    if as_json:
        common.print_json(summary)
    else:
        for o in summary["outputs"]:
            common.out.print(o)
    return 0


def register(app: typer.Typer) -> None:
    @app.command("invert")
    def invert(
        inputs: InputsArg,
        output: OutputOpt = None,
        out_dir: OutDirOpt = None,
        no_align: NoAlignOpt = False,
        encoder: EncoderOpt = None,
        generator: GeneratorOpt = None,
        weights_dir: common.WeightsDirOpt = None,
        device: common.DeviceOpt = "auto",
        dtype: common.DtypeOpt = "auto",
        batch_size: BatchOpt = None,
        save_latents: LatentsOpt = None,
        overwrite: common.OverwriteOpt = False,
        as_json: common.JsonOpt = False,
    ) -> None:
        """Invert faces (the reconstruction, no edit), e.g. [bold]vidinvert invert face.png --no-align -o recon.png[/bold]."""
        _run("invert", inputs, output, out_dir, no_align, encoder, generator, weights_dir, device, dtype,
             batch_size, save_latents, overwrite, as_json)

    @app.command("edit")
    def edit(
        inputs: InputsArg,
        attr: AttrOpt = None,
        direction: DirectionOpt = None,
        strength: StrengthOpt = "3",
        combine: CombineOpt = False,
        output: OutputOpt = None,
        out_dir: OutDirOpt = None,
        no_align: NoAlignOpt = False,
        encoder: EncoderOpt = None,
        generator: GeneratorOpt = None,
        weights_dir: common.WeightsDirOpt = None,
        device: common.DeviceOpt = "auto",
        dtype: common.DtypeOpt = "auto",
        batch_size: BatchOpt = None,
        save_latents: LatentsOpt = None,
        overwrite: common.OverwriteOpt = False,
        as_json: common.JsonOpt = False,
    ) -> None:
        """Edit faces along a direction, e.g. [bold]vidinvert edit face.png --no-align --attr smile -o smile.png[/bold]."""
        _run("edit", inputs, output, out_dir, no_align, encoder, generator, weights_dir, device, dtype,
             batch_size, save_latents, overwrite, as_json, attr, direction, strength, combine)
