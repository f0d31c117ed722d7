"""The ``directions`` command group: ``discover`` (SeFa, no data), ``preview`` (a contact sheet),
``channels`` (StyleSpace channels local to a face region) and ``fit`` (an InterFaceGAN direction from
labelled latents). Each builds one typed request, calls one
library function and renders its summary.

Shapes::

    vidinvert directions discover --out dirs/ [--layers all|coarse|middle|fine|A-B|A,B,C] [--count 10]
                                  [--preview FACE.jpg [--preview-out dirs/preview.png]]
    vidinvert directions preview FACE.jpg|CLIP.mp4 (--attr NAME | --direction FILE.npy)... [--strengths -1,0,1]
                                 [--at 2.5s] [--no-align] [--preview-size 256] [--layers SPEC] [--keep NAME] -o grid.png
    vidinvert directions channels --region mouth [--top 20] [--samples 4] [--probes 8] [--size 128] [--layers SPEC]
    vidinvert directions fit LATENTS... --labels CSV --out FILE.npy [--space wplus|w]
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from vidinvert.choices import FitSpace
from vidinvert.cli import common, text_cmd
from vidinvert.errors import VidinvertError
from vidinvert.pipeline.request import ModelChoice
from vidinvert.specs import TEXT_BETA, TEXT_NEUTRAL

LayersOpt = Annotated[str, typer.Option(
    "--layers", help="w+ rows: all | coarse (0-3) | middle (4-7) | fine (8-17) | A-B | A,B,C.")]
PreviewSizeOpt = Annotated[Optional[int], typer.Option(
    "--preview-size", help="Render the generator's intermediate RGB at this size (e.g. 256; faster) instead of the full image.")]
NoAlignOpt = Annotated[bool, typer.Option("--no-align", help="The input is already an FFHQ-aligned square face.")]
AtOpt = Annotated[Optional[str], typer.Option("--at", help="Frame of a video: 2.5 / 2.5s (seconds) or 75f (index); default the first.")]
FaceOpt = Annotated[str, typer.Option("--face", help="Which face of a photo: largest | center | N (0 = leftmost).")]


def parse_strength_list(text: str) -> tuple[float, ...]:
    """``-1,0,1.5`` -> (-1.0, 0.0, 1.5); every value finite."""
    try:
        values = tuple(float(t) for t in text.replace(" ", "").split(",") if t != "")
    except ValueError:
        raise VidinvertError(f"--strengths {text!r}: give comma-separated numbers, e.g. -1,-0.5,0,0.5,1") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise VidinvertError(f"--strengths {text!r}: give finite comma-separated numbers, e.g. -1,0,1")
    return values


def _render_preview(summary: dict) -> None:
    common.out.print(f"{summary['output']} ({summary['rows']} x {summary['columns']}, "
                     f"strengths {', '.join(f'{s:g}' for s in summary['strengths'])}, "
                     f"{summary['render_size']} px); layout {summary['layout']}")


def _render_discover(summary: dict, layers: str) -> None:
    for e in summary["directions"]:
        common.out.print(f"{Path(summary['out']) / e['file']}  eigenvalue {e['eigenvalue']:.4g} "
                         f"({100 * e['eigenvalue_share']:.1f}%)")
    common.out.print(f"index: {summary['index']} (layers {layers}, {summary['seconds']:.2f} s)")
    if "preview" in summary:
        _render_preview(summary["preview"])


def _models(o: dict) -> ModelChoice:
    return ModelChoice(o["encoder"], o["generator"], o["weights_dir"], o["device"], o["dtype"])


# Option groups (assembled with common.options_of).
def _discover_options(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the direction files and directions.json.", show_default=False)],
    layers: LayersOpt = "all",
    count: Annotated[int, typer.Option("--count", min=1, help="How many directions (by eigenvalue, largest first).")] = 10,
    preview: Annotated[Optional[Path], typer.Option(
        "--preview", help="Also write a contact sheet of the found directions for this face (photo, aligned crop or clip).")] = None,
    preview_out: Annotated[Optional[Path], typer.Option("--preview-out", help="The sheet's file (default OUT/preview.png).")] = None,
    preview_size: PreviewSizeOpt = None,
    no_align: NoAlignOpt = False,
    at: AtOpt = None,
    overwrite: common.OverwriteOpt = False,
) -> None: ...


def _preview_options(
    input: Annotated[Path, typer.Argument(help="A photo, an aligned face (--no-align) or a video (--at).", show_default=False)],
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="The contact sheet (.png); its layout goes to the same name .json.", show_default=False)],
    attr: Annotated[Optional[List[str]], typer.Option("--attr", help="A direction by name (one row each); repeatable.")] = None,
    direction: Annotated[Optional[List[Path]], typer.Option(
        "--direction", help="A direction file, .npy (w+) or .npz (StyleSpace) (one row each); repeatable.")] = None,
    channel: Annotated[Optional[List[str]], typer.Option(
        "--channel", help="A StyleSpace channel L_C[=S] (one row each: column c moves it c*S standard deviations); "
        "repeatable.")] = None,
    text: Annotated[Optional[List[str]], typer.Option(
        "--text", help="An edit in words (one row each, columns are alpha) to compare wordings; repeatable.")] = None,
    text_neutral: Annotated[str, typer.Option("--text-neutral", help="--text is measured against this phrase.")] = TEXT_NEUTRAL,
    text_beta: Annotated[float, typer.Option("--text-beta", help="--text channel threshold in (0, 1).")] = TEXT_BETA,
    text_matrix: Annotated[Optional[Path], typer.Option("--text-matrix", help="--text relevance matrix.")] = None,
    strengths: Annotated[Optional[str], typer.Option(
        "--strengths", help="Columns: comma-separated strengths (default: 5 values, about +-3 per edited row at the ends).")] = None,
    at: AtOpt = None,
    no_align: NoAlignOpt = False,
    preview_size: PreviewSizeOpt = None,
    layers: Annotated[Optional[str], typer.Option(
        "--layers", help="Move only these w+ rows: coarse | middle | fine | A-B | A,B,C.")] = None,
    keep: Annotated[Optional[List[str]], typer.Option(
        "--keep", help="Keep this attribute unchanged (name or file): the edit is made orthogonal to it; repeatable.")] = None,
    face: FaceOpt = "largest",
    detector: common.DetectorOpt = "auto",
    overwrite: common.OverwriteOpt = False,
) -> None: ...


def _channels_options(
    region: Annotated[List[str], typer.Option(
        "--region", help="Face parts: mouth,eyes,brows,nose,skin,face,hair,neck (comma-separated or repeated; "
        "hair and neck need the parsing weights).", show_default=False)],
    top: Annotated[int, typer.Option("--top", min=1, help="How many channels to list, best first.")] = 20,
    samples: Annotated[int, typer.Option("--samples", min=1, help="Sampled images the channels are measured on.")] = 4,
    probes: Annotated[int, typer.Option(
        "--probes", min=1, help="Random probes per image (more: a more precise share; two backward passes each).")] = 8,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the sampled z and of the probes.")] = 0,
    size: Annotated[Optional[int], typer.Option(
        "--size", help="Render size measured (default 128; layers above it are not measured).")] = None,
    layers: Annotated[Optional[str], typer.Option(
        "--layers", help="Only the S layers driven by these w+ rows: coarse | middle | fine | A-B | A,B,C.")] = None,
) -> None: ...


def _render_channels(s: dict) -> None:
    common.out.print(f"channels whose effect lies most inside {','.join(s['region'])} ({s['mask_source']} masks, "
                     f"{s['samples']} samples at {s['size']} px, {s['probes']} probes, {s['seconds']:.1f} s; "
                     f"{s['measured']} channels measured)")
    for c in s["channels"]:
        common.out.print(f"  {c['channel']:>8}  share {c['share']:.3f}  effect {c['effect']:.3g}/std  "
                         f"{c['name']} ({c['resolution']} px, w+ row {c['row']})")
    if s["channels"]:
        picks = " ".join(f"--channel {c['channel']}" for c in s["channels"][:3])
        common.out.print(f"try: vidinvert directions preview FACE.jpg {picks} -o channels.png")


def channels(**o) -> common.Shown:
    """StyleSpace channels acting inside a face region: [bold]vidinvert directions channels --region mouth[/bold].

    Ranks every channel by the share of its image gradient that falls inside the region, on sampled
    images of the generator (parsing masks when the weights are found, else the canonical FFHQ face's
    landmark regions). Only the generator loads."""
    from vidinvert.pipeline.directions_jobs import ChannelsRequest, run_channels_job

    request = ChannelsRequest(region=tuple(o["region"]), top=o["top"], samples=o["samples"], probes=o["probes"],
                              seed=o["seed"], size=o["size"], layers=o["layers"], models=_models(o))
    summary = run_channels_job(request)
    return common.Shown(summary, lambda: _render_channels(summary))


def discover(**o) -> common.Shown:
    """Find edit directions without data (SeFa on the style modulation): [bold]vidinvert directions discover --out dirs/[/bold].

    The factorization runs in float64 on the CPU whatever --device says (seconds); --device, --dtype
    and --encoder serve the --preview sheet."""
    from vidinvert.edit.discover import DiscoverRequest
    from vidinvert.pipeline.directions_jobs import DiscoverJob, run_discover_job

    ctx = o.pop("ctx")
    job = DiscoverJob(DiscoverRequest(out_dir=o["out"], layers=o["layers"], count=o["count"], overwrite=o["overwrite"]),
                      models=_models(o), preview=o["preview"], preview_out=o["preview_out"],
                      preview_size=o["preview_size"], no_align=o["no_align"], at=o["at"],
                      explicit=frozenset(n for n in o if common.given_on_command_line(ctx, n)))
    summary = run_discover_job(job)
    return common.Shown(summary, lambda: _render_discover(summary, o["layers"]))


def preview(**o) -> common.Shown:
    """A contact sheet of directions x strengths for one face.

    [bold]vidinvert directions preview face.jpg --attr smile -o grid.png[/bold]."""
    from vidinvert.pipeline.directions_jobs import run_preview_job
    from vidinvert.pipeline.preview import PreviewRequest

    request = PreviewRequest(
        input=o["input"], output=o["output"], attrs=tuple(o["attr"] or ()), directions=tuple(o["direction"] or ()),
        strengths=parse_strength_list(o["strengths"]) if o["strengths"] is not None else None, at=o["at"],
        no_align=o["no_align"], preview_size=o["preview_size"], layers=o["layers"], keep=tuple(o["keep"] or ()),
        channels=tuple(o["channel"] or ()), texts=tuple(o["text"] or ()), text_neutral=o["text_neutral"],
        text_beta=o["text_beta"], text_matrix=o["text_matrix"], face=o["face"], detector=o["detector"],
        weights_dir=o["weights_dir"], overwrite=o["overwrite"])
    summary = run_preview_job(request, _models(o))
    return common.Shown(summary, lambda: _render_preview(summary))


def fit(
    latents: Annotated[List[Path], typer.Argument(help="Latent .npz files (--save-latents) or folders of chunks.", show_default=False)],
    labels: Annotated[Path, typer.Option(
        "--labels", help="CSV with columns latent_file, frame_index, label (0/1).", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output direction .npy.", show_default=False)],
    space: Annotated[str, typer.Option("--space", help="wplus: (1, L*D) boundary; w: (1, D) direction.")] = FitSpace.WPLUS.value,
    svm_c: Annotated[float, typer.Option("--svm-c", help="SVM regularisation C (smaller: smoother, for few frames).")] = 1.0,
    overwrite: common.OverwriteOpt = False,
) -> common.Shown:
    """Fit an InterFaceGAN direction (linear SVM normal) for [bold]vidinvert edit --direction[/bold]."""
    from vidinvert.edit.fit import FitRequest, run_fit

    s = run_fit(FitRequest(tuple(latents), labels, out, space=space, svm_c=svm_c, overwrite=overwrite))
    return common.Shown(s, lambda: common.out.print(
        f"{s['output']} {tuple(s['shape'])} ({s['space']}; {s['positive']} positive, {s['negative']} negative,"
        f" training accuracy {s['train_accuracy']:.3f})"))


def register(app: typer.Typer) -> None:
    """Add the ``directions`` group (discover, preview, channels, fit) to the app."""
    group = common.command_group(
        name="directions",
        help="Edit directions: discover them without data, preview them, find StyleSpace channels, make them from "
        "words, or fit one from labelled latents.",
        no_args_is_help=True,
    )
    common.command(group, "discover")(common.options_of(_discover_options, common.model_options)(discover))
    common.command(group, "preview")(common.options_of(_preview_options, common.model_options)(preview))
    common.command(group, "channels")(common.options_of(_channels_options, common.model_options)(channels))
    common.command(group, "fit")(fit)
    text_cmd.add_commands(group)
    app.add_typer(group, name="directions")


__all__ = ["parse_strength_list", "register"]
