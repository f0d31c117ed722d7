"""``vidinvert directions discover`` (SeFa, no data) and ``vidinvert directions preview`` (a contact sheet).

Shapes::

    vidinvert directions discover --out dirs/ [--layers all|coarse|middle|fine|A-B|A,B,C] [--count 10]
                                  [--preview FACE.jpg [--preview-out dirs/preview.png]]
    vidinvert directions preview FACE.jpg|CLIP.mp4 (--attr NAME | --direction FILE.npy)... [--strengths -1,0,1]
                                 [--at 2.5s] [--no-align] [--preview-size 256] [--layers SPEC] [--keep NAME] -o grid.png

The commands join the ``directions`` group through :func:`add_commands`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from vidinvert.cli import common
from vidinvert.errors import VidinvertError

LayersOpt = Annotated[str, typer.Option(
    "--layers", help="w+ rows: all | coarse (0-3) | middle (4-7) | fine (8-17) | A-B | A,B,C.")]
PreviewSizeOpt = Annotated[int | None, typer.Option(
    "--preview-size", help="Render the generator's intermediate RGB at this size (e.g. 256; faster) instead of the full image.")]
NoAlignOpt = Annotated[bool, typer.Option("--no-align", help="The input is already an FFHQ-aligned square face.")]
AtOpt = Annotated[str | None, typer.Option("--at", help="Frame of a video: 2.5 / 2.5s (seconds) or 75f (index); default the first.")]
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


def model_paths(encoder: str | None, generator: str | None, weights_dir: Path | None, *, need_encoder: bool):
    """(encoder path or None, generator path) by the usual rule: --generator, else stylegan2-ffhq when
    present (or when psp-ffhq is absent too), else psp-ffhq; --encoder, else fs-encoder."""
    from vidinvert.weights import generator_file, resolve_file

    gen_path = generator_file(generator, weights_dir)
    enc_path = resolve_file(encoder, "fs-encoder", weights_dir) if need_encoder else None
    return enc_path, gen_path


def _inverter(o: dict, enc_path: Path, gen_path: Path):
    from vidinvert.engine import Inverter

    compute = common.resolve_compute_loudly(o["device"], o["dtype"])
    return Inverter.from_files(enc_path, gen_path, compute)


def _render_preview(summary: dict) -> None:
    common.out.print(f"{summary['output']} ({summary['rows']} x {summary['columns']}, "
                     f"strengths {', '.join(f'{s:g}' for s in summary['strengths'])}, "
                     f"{summary['render_size']} px); layout {summary['layout']}")


# Option groups (assembled with common.options_of).
def _discover_options(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the direction files and directions.json.", show_default=False)],
    layers: LayersOpt = "all",
    count: Annotated[int, typer.Option("--count", min=1, help="How many directions (by eigenvalue, largest first).")] = 10,
    preview: Annotated[Path | None, typer.Option(
        "--preview", help="Also write a contact sheet of the found directions for this face (photo, aligned crop or clip).")] = None,
    preview_out: Annotated[Path | None, typer.Option("--preview-out", help="The sheet's file (default OUT/preview.png).")] = None,
    preview_size: PreviewSizeOpt = None,
    no_align: NoAlignOpt = False,
    at: AtOpt = None,
    overwrite: common.OverwriteOpt = False,
    as_json: common.JsonOpt = False,
) -> None: ...


def _preview_options(
    input: Annotated[Path, typer.Argument(help="A photo, an aligned face (--no-align) or a video (--at).", show_default=False)],
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="The contact sheet (.png); its layout goes to the same name .json.", show_default=False)],
    attr: Annotated[list[str] | None, typer.Option("--attr", help="A direction by name (one row each); repeatable.")] = None,
    direction: Annotated[list[Path] | None, typer.Option("--direction", help="A direction file (one row each); repeatable.")] = None,
    strengths: Annotated[str | None, typer.Option(
        "--strengths", help="Columns: comma-separated strengths (default: 5 values, about +-3 per edited row at the ends).")] = None,
    at: AtOpt = None,
    no_align: NoAlignOpt = False,
    preview_size: PreviewSizeOpt = None,
    layers: Annotated[str | None, typer.Option("--layers", help="Move only these w+ rows: coarse | middle | fine | A-B | A,B,C.")] = None,
    keep: Annotated[list[str] | None, typer.Option(
        "--keep", help="Keep this attribute unchanged (name or file): the edit is made orthogonal to it; repeatable.")] = None,
    face: FaceOpt = "largest",
    detector: common.DetectorOpt = "auto",
    overwrite: common.OverwriteOpt = False,
    as_json: common.JsonOpt = False,
) -> None: ...


def add_commands(directions_app: typer.Typer) -> None:
    """Add ``discover`` and ``preview`` to the ``directions`` command group."""

    @directions_app.command("discover")
    @common.options_of(_discover_options, common.model_options)
    def discover(**o) -> None:
        """Find edit directions without data (SeFa on the style modulation): [bold]vidinvert directions discover --out dirs/[/bold].

        The factorization runs in float64 on the CPU whatever --device says (seconds); --device, --dtype
        and --encoder serve the --preview sheet."""
        from vidinvert.edit.discover import DiscoverRequest, plan_discover, run_discover
        from vidinvert.pipeline.preview import (
            PreviewRequest,
            check_preview_request,
            run_preview,
        )

        request = DiscoverRequest(out_dir=o["out"], layers=o["layers"], count=o["count"], overwrite=o["overwrite"])
        enc_path, gen_path = model_paths(o["encoder"], o["generator"], o["weights_dir"], need_encoder=o["preview"] is not None)
        preview = None
        if o["preview"] is not None:
            preview = PreviewRequest(input=o["preview"], output=o["preview_out"] or Path(o["out"]) / "preview.png",
                                     directions=(Path("pending.npy"),), at=o["at"], no_align=o["no_align"],
                                     preview_size=o["preview_size"], weights_dir=o["weights_dir"], overwrite=o["overwrite"])
            if Path(o["out"]).is_dir() or o["preview_out"] is not None:
                check_preview_request(preview)
        elif o["preview_out"] is not None or o["preview_size"] is not None or o["at"] is not None or o["no_align"]:
            raise VidinvertError("--preview-out, --preview-size, --at and --no-align need --preview FACE")
        elif o["encoder"] is not None or o["dtype"] != "auto":
            raise VidinvertError("--encoder and --dtype are used by --preview only (the factorization needs"
                                 " the generator alone, in float64)")
        if preview is None:
            from vidinvert.weights import load_generator

            generator, _ = load_generator(gen_path)
            inverter = None
        else:
            inverter = _inverter(o, enc_path, gen_path)
            generator = inverter.generator
        plan_discover(request, generator.n_latent, generator.style_dim)
        result = run_discover(generator, request, source=str(gen_path))
        summary = {"out": str(request.out_dir), "index": str(result.index), "layers": result.rows,
                   "seconds": result.seconds, "directions": result.entries}
        if preview is not None:
            from dataclasses import replace

            preview = replace(preview, directions=tuple(result.files))
            summary["preview"] = run_preview(inverter, preview)
        if o["as_json"]:
            common.print_json(summary)
            return
        for e in result.entries:
            common.out.print(f"{Path(request.out_dir) / e['file']}  eigenvalue {e['eigenvalue']:.4g} "
                             f"({100 * e['eigenvalue_share']:.1f}%)")
        common.out.print(f"index: {result.index} (layers {o['layers']}, {result.seconds:.2f} s)")
        if preview is not None:
            _render_preview(summary["preview"])

    @directions_app.command("preview")
    @common.options_of(_preview_options, common.model_options)
    def preview(**o) -> None:
        """A contact sheet of directions x strengths for one face.

        [bold]vidinvert directions preview face.jpg --attr smile -o grid.png[/bold]."""
        from vidinvert.pipeline.preview import (
            PreviewRequest,
            check_preview_request,
            run_preview,
        )

        request = PreviewRequest(
            input=o["input"], output=o["output"], attrs=tuple(o["attr"] or ()), directions=tuple(o["direction"] or ()),
            strengths=parse_strength_list(o["strengths"]) if o["strengths"] is not None else None, at=o["at"],
            no_align=o["no_align"], preview_size=o["preview_size"], layers=o["layers"], keep=tuple(o["keep"] or ()),
            face=o["face"], detector=o["detector"], weights_dir=o["weights_dir"], overwrite=o["overwrite"])
        check_preview_request(request)
        enc_path, gen_path = model_paths(o["encoder"], o["generator"], o["weights_dir"], need_encoder=True)
        summary = run_preview(_inverter(o, enc_path, gen_path), request)
        if o["as_json"]:
            common.print_json(summary)
        else:
            _render_preview(summary)


__all__ = ["add_commands", "model_paths", "parse_strength_list"]
