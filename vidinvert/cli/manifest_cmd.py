"""``vidinvert manifest merge OUT_DIR``: one corpus manifest from the per-rank manifests.

After a job array (``--shard``) or at any time while ranks still work: writes
``manifest.jsonl`` and ``manifest.summary.json`` in OUT_DIR from its ``manifest.rank-*.jsonl``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vidinvert.cli import common

OutDirArg = Annotated[Path, typer.Argument(metavar="OUT_DIR", show_default=False,
                                           help="The corpus output folder (holds manifest.rank-*.jsonl).")]


def register(app: typer.Typer) -> None:
    """Add the ``manifest`` command group to the app."""
    manifest_app = common.command_group(name="manifest", help="Corpus manifests (edit/invert over a corpus).",
                                        no_args_is_help=True)

    def merge(out_dir: OutDirArg) -> common.Shown:
        """Merge the per-rank manifests of OUT_DIR into manifest.jsonl and manifest.summary.json."""
        from vidinvert.pipeline.manifest import merge_manifests

        summary = merge_manifests(out_dir)
        return common.Shown(summary, lambda: _render(summary, out_dir))

    common.command(manifest_app, "merge")(merge)
    app.add_typer(manifest_app)


def _render(summary: dict, out_dir: Path) -> None:
    from vidinvert.pipeline.manifest import MANIFEST, SUMMARY

    rate = summary["frames_per_second"]
    common.out.print(
        f"{summary['inputs']} inputs: {summary['done']} done, {summary['failed']} failed, "
        f"{summary['frames']} frames" + (f", {rate:.1f} frames/s per process" if rate else "")
        + f" -> {Path(out_dir) / MANIFEST}, {Path(out_dir) / SUMMARY}", markup=False)
    for f in summary["failed_inputs"][:20]:
        common.out.print(f"failed: {f['input']}: {f['error']}", markup=False)
