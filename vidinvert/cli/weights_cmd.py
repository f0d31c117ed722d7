"""``vidinvert weights``: list the known model files; ``vidinvert weights download``: fetch them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vidinvert.cli import common
from vidinvert.cli.common import JsonOpt, WeightsDirOpt
from vidinvert.errors import VidinvertError

_STATUS_STYLE = {
    "missing": "red",
    "found": "green",
    "verified": "bold green",
    "mismatch": "bold red",
    "unverifiable": "yellow",
}


def _short_license(spec) -> str:
    return "non-commercial" if spec.research_only else spec.license.split(" (")[0]


def list_weights(weights_dir: Path | None, *, as_json: bool, verify: bool) -> int:
    """Print one row per registry entry: status, licence, and where the file is or must go."""
    from rich.table import Table

    from vidinvert.weights import REGISTRY, search_dirs, status

    if verify and not as_json and common.err.is_terminal:
        with common.err.status("hashing the model files..."):
            rows = [status(name, weights_dir, verify=True) for name in REGISTRY]
    else:
        rows = [status(name, weights_dir, verify=verify) for name in REGISTRY]
    if as_json:
        from dataclasses import asdict

        from vidinvert.weights import KNOWN_DIRECTION_SOURCES

        common.print_json({"search_dirs": [str(d) for d in search_dirs(weights_dir)], "weights": rows,
                           "direction_sources": [asdict(src) for src in KNOWN_DIRECTION_SOURCES]})
        return 0
    lines = [
        (
            row["name"],
            row["filename"],
            row["status"],
            _short_license(REGISTRY[row["name"]]),
            row["path"] if row["path"] else f"place at {row['place_at']}",
        )
        for row in rows
    ]
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
    from vidinvert.weights import direction_sources_text

    common.info("edit directions published elsewhere (not fetched by vidinvert): " + direction_sources_text())
    missing = [r["name"] for r in rows if r["status"] == "missing"]
    if missing:
        common.info(
            "searched: "
            + (", ".join(str(d) for d in search_dirs(weights_dir)) or "nothing")
            + ". Fetch missing files with `vidinvert weights download NAME` (--accept-license for"
            " non-commercial / research-only ones)."
        )
    return 0


def _progress_reporter(name: str):
    """A (context manager, callback) pair: a Rich bar on a terminal, nothing otherwise."""
    import contextlib

    if not common.err.is_terminal or common.state.quiet:
        return contextlib.nullcontext(), None
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=common.err,
        transient=True,
    )
    task = bar.add_task(name, total=None)

    def update(done: int, total: int | None) -> None:
        bar.update(task, completed=done, total=total)

    return bar, update


def download_weights(
    names: list[str], weights_dir: Path | None, *, accept_license: bool, as_json: bool
) -> int:
    """Download the named registry files (default: every missing one) into the install folder."""
    from vidinvert.weights import REGISTRY, download, find, get_spec, install_dir, license_notice

    specs = [get_spec(n) for n in dict.fromkeys(names)] if names else list(REGISTRY.values())
    dest = install_dir(weights_dir)
    results = []
    todo = []
    for spec in specs:
        present = find(spec.name, weights_dir)
        if present is not None:
            results.append({"name": spec.name, "path": str(present), "status": "present"})
            if names:
                common.info(f"{spec.name}: already present at {present}")
        else:
            todo.append(spec)
    gated = [s for s in todo if s.research_only]
    for spec in gated:
        common.info(license_notice(spec))
    if gated and not accept_license:
        raise VidinvertError(
            f"{', '.join(s.name for s in gated)}: research-only / non-commercial licence (printed above);"
            " re-run with --accept-license to accept it"
        )
    failures: list[VidinvertError] = []
    for spec in todo:
        common.info(f"downloading {spec.name} from {spec.url}")
        ctx, update = _progress_reporter(spec.name)
        try:
            with ctx:
                path = download(spec.name, dest, accept_license=accept_license, progress=update)
        except VidinvertError as exc:
            failures.append(exc)
            results.append({"name": spec.name, "path": None, "status": "failed", "error": exc.message})
            if len(todo) > 1:
                common.render_error(exc)
            continue
        results.append({"name": spec.name, "path": str(path), "status": "downloaded"})
        if not as_json:
            common.out.print(f"{spec.name}\t{path}", markup=False)
    if as_json:
        common.print_json({"dest": str(dest), "weights": results})
    if failures:
        if len(failures) == 1:
            raise failures[0]
        raise VidinvertError(f"{len(failures)} of {len(todo)} downloads failed (see above)")
    if not todo and not names:
        common.info(f"every known model file is present (searched from {dest})")
    return 0


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
        ctx.obj = {"weights_dir": weights_dir}
        if ctx.invoked_subcommand is None:
            list_weights(weights_dir, as_json=as_json, verify=verify)

    @weights_app.command("download")
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
        as_json: JsonOpt = False,
    ) -> None:
        """Download model files from their known URLs (resumable, sha256-checked when known)."""
        parent = (ctx.obj or {}).get("weights_dir") if isinstance(ctx.obj, dict) else None
        download_weights(
            list(names or []), weights_dir or parent, accept_license=accept_license, as_json=as_json
        )

    app.add_typer(weights_app, name="weights")
