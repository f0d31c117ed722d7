"""``vidinvert weights``: list the known model files; ``vidinvert weights download``: fetch them."""

from __future__ import annotations

import contextlib
from typing import Annotated, Optional

import typer

from vidinvert.cli import common
from vidinvert.cli.common import JsonOpt, WeightsDirOpt

_STATUS_STYLE = {
    "missing": "red",
    "found": "green",
    "verified": "bold green",
    "mismatch": "bold red",
    "unverifiable": "yellow",
}


def _short_license(spec) -> str:
    return "non-commercial" if spec.research_only else spec.license.split(" (")[0]


def _render_listing(report: dict) -> None:
    """One row per registry entry: status, licence, and where the file is or must go; then the
    published direction sources and how to fetch what is missing."""
    from rich.table import Table

    from vidinvert.weights import REGISTRY, direction_sources_text

    rows = report["weights"]
    lines = [(row["name"], row["filename"], row["status"], _short_license(REGISTRY[row["name"]]),
              row["path"] if row["path"] else f"place at {row['place_at']}") for row in rows]
    if common.out.is_terminal:
        table = Table(show_edge=False, pad_edge=False, header_style="bold")
        for title in ("name", "file", "status", "licence"):
            table.add_column(title, no_wrap=title != "file", overflow="fold")
        table.add_column("location", overflow="fold")
        for name, filename, stat, lic, where in lines:
            style = _STATUS_STYLE.get(stat, "")
            table.add_row(name, filename, f"[{style}]{stat}[/{style}]", lic, where)
        common.out.print(table)
    else:  # plain, one line per file, for pipes and logs
        for line in lines:
            common.out.print("\t".join(line), markup=False)
    common.info("edit directions published elsewhere (not fetched by vidinvert): " + direction_sources_text())
    if any(r["status"] == "missing" for r in rows):
        common.info("searched: " + (", ".join(report["search_dirs"]) or "nothing")
                    + ". Fetch missing files with `vidinvert weights download NAME` (--accept-license for"
                    " non-commercial / research-only ones).")


@contextlib.contextmanager
def _progress_reporter(name: str):
    """A Rich download bar on a terminal (its byte callback), nothing otherwise."""
    if not common.err.is_terminal or common.state.quiet:
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   TimeRemainingColumn(), console=common.err, transient=True)
    task = bar.add_task(name, total=None)
    with bar:
        yield lambda done, total: bar.update(task, completed=done, total=total)


def register(app: typer.Typer) -> None:
    """Add the ``weights`` command group to the app."""
    weights_app = common.command_group(
        name="weights",
        help="List the model files vidinvert knows (found / missing / verified, where to place them).",
        invoke_without_command=True,
        no_args_is_help=False,
    )

    @weights_app.callback()
    def weights(
        ctx: typer.Context,
        weights_dir: WeightsDirOpt = None,
        as_json: JsonOpt = False,
        verify: Annotated[
            bool, typer.Option("--verify", help="Hash the files found and compare with the known sha256.")
        ] = False,
    ) -> None:
        """List every known model file with its status, licence and the exact path to place a missing one."""
        from vidinvert.weights import weights_report

        ctx.obj = {"weights_dir": weights_dir}
        if ctx.invoked_subcommand is not None:
            return
        common.state.as_json = as_json
        if verify and not as_json and common.err.is_terminal:
            with common.err.status("hashing the model files..."):
                report = weights_report(weights_dir, verify=True)
        else:
            report = weights_report(weights_dir, verify=verify)
        common.show(common.Shown(report, lambda: _render_listing(report)))

    def weights_download(
        ctx: typer.Context,
        names: Annotated[
            Optional[list[str]],
            typer.Argument(help="Registry names (see `vidinvert weights`); default: every missing file."),
        ] = None,
        accept_license: Annotated[
            bool,
            typer.Option("--accept-license", help="Accept the research-only / non-commercial licences printed."),
        ] = False,
        weights_dir: WeightsDirOpt = None,
    ) -> common.Shown:
        """Download model files from their known URLs (resumable, sha256-checked when known)."""
        from vidinvert.weights import download_many

        parent = (ctx.obj or {}).get("weights_dir") if isinstance(ctx.obj, dict) else None
        result = download_many(list(names or []), weights_dir or parent, accept_license=accept_license,
                               progress=_progress_reporter)
        return common.Shown(result, lambda: [common.out.print(f"{r['name']}\t{r['path']}", markup=False)
                                             for r in result["weights"] if r["status"] == "downloaded"])

    common.command(weights_app, "download")(weights_download)
    app.add_typer(weights_app, name="weights")
