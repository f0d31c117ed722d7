"""``vidinvert info CLIP``: what a clip is (a Rich table on stdout, or ``--json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vidinvert.cli import common


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    m, s = divmod(seconds, 60)
    h, m = divmod(int(m), 60)
    return f"{seconds:.3f} s" + (f" ({h:d}:{m:02d}:{s:06.3f})" if seconds >= 60 else "")


def rows(info) -> list[tuple[str, str]]:
    """The table's (field, value) rows for a :class:`~vidinvert.video.VideoInfo`."""
    c = info.colour
    fps = f"{float(info.avg_frame_rate):.3f} fps ({info.avg_frame_rate})" if info.avg_frame_rate else "unknown"
    if info.variable_frame_rate is not None:
        fps += ", variable" if info.variable_frame_rate else ", constant"
    size = f"{info.width}x{info.height}"
    if (info.coded_width, info.coded_height) != (info.width, info.height):
        size += f" (stored {info.coded_width}x{info.coded_height})"
    if info.sample_aspect_ratio:
        size += f", pixel aspect {info.sample_aspect_ratio}"
    rot = f"{info.rotation}° clockwise" if info.rotation else "none"
    if info.mirrored:
        rot += ", mirrored"
    count = "unknown" if info.frame_count is None else f"{info.frame_count}" + ("" if info.frame_count_exact else " (estimated)")
    out = [
        ("file", str(info.path)),
        ("container", f"{info.container_long} ({info.container})"),
        ("video codec", info.codec),
        ("duration", _fmt_duration(info.duration)),
        ("frames", count),
        ("frame rate", fps),
        ("displayed size", size),
        ("rotation", rot),
        ("pixel format", f"{info.pix_fmt} ({info.chroma}, {info.bit_depth}-bit)"),
        ("colour range", c.range + ("" if c.range_tagged else " (untagged, assumed)")),
        ("colour matrix", c.matrix + ("" if c.matrix_tagged else " (untagged, assumed)")),
        ("time base", str(info.time_base)),
    ]
    if not info.audio:
        out.append(("audio", "none"))
    for a in info.audio:
        text = f"{a.codec}, {a.sample_rate} Hz, {a.channels} ch"
        text += f" ({a.layout})" if a.layout else ""
        text += f", {a.duration:.3f} s" if a.duration else ""
        text += f", {a.language}" if a.language and a.language != "und" else ""
        out.append((f"audio #{a.index}", text))
    return out


def info_command(
    clip: Annotated[Path, typer.Argument(help="The video to describe.", show_default=False)],
) -> common.Shown:
    """Describe a video: container, duration, frames, frame rate, size, rotation, colour, audio."""
    from vidinvert.video import probe

    info = probe(clip, count_frames=True)
    return common.Shown(info.to_dict(), lambda: _render(info))


def _render(info) -> None:
    from rich.table import Table

    table = Table(title=str(info.path.name), show_header=False, box=None, pad_edge=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for k, v in rows(info):
        table.add_row(k, v)
    common.out.print(table)


def register(app: typer.Typer) -> None:
    common.command(app, "info")(info_command)
