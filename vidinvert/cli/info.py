"""``vidinvert info CLIP``: what a clip is (a Rich table on stdout, or ``--json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vidinvert.cli import common
from vidinvert.video.streams import carried_tags


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
    stored = f"{info.coded_width}x{info.coded_height} pixels"
    if info.sample_aspect_ratio:
        stored += f", pixel aspect {info.sample_aspect_ratio.numerator}:{info.sample_aspect_ratio.denominator}"
    shown = f"{info.display_width}x{info.display_height}"
    if (info.display_width, info.display_height) != (info.width, info.height):
        shown += f" (the frames hold {info.width}x{info.height} pixels)"
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
        ("stored size", stored),
        ("displayed size", shown),
        ("rotation", rot),
        ("pixel format", f"{info.pix_fmt} ({info.chroma}, {info.bit_depth}-bit)"),
        ("colour range", c.range + ("" if c.range_tagged else " (untagged, assumed)")),
        ("colour matrix", c.matrix + ("" if c.matrix_tagged else " (untagged, assumed)")),
        ("HDR", info.hdr.describe()),
        *([("networks see", rendering_spec(info).describe())] if info.is_hdr else []),
        ("time base", str(info.time_base)),
    ]
    if info.timecode:
        out.append(("timecode", f"starts at {info.timecode}"))
    if not info.audio:
        out.append(("audio", "none"))
    for a in info.audio:
        text = f"{a.codec}, {a.sample_rate} Hz, {a.channels} ch"
        text += f" ({a.layout})" if a.layout else ""
        text += f", {a.duration:.3f} s" if a.duration else ""
        out.append((f"audio #{a.index}", text + _identity(a.language, a.title, a.disposition)))
    for st in info.streams:
        text = st.codec + (f", {st.detail}" if st.detail else "")
        if st.kind == "chapters":
            text += " (holds the chapter titles)"
        out.append((f"{st.kind} #{st.index}", text + _identity(st.language, st.title, st.disposition)))
    for i, ch in enumerate(info.chapters):
        out.append((f"chapter {i + 1}", f"{ch.start:.3f} - {ch.end:.3f} s" + (f"  {ch.title}" if ch.title else "")))
    tags = carried_tags(dict(info.metadata))
    if tags:
        out.append(("tags", ", ".join(f"{k}={v}" for k, v in sorted(tags.items()))))
    return out


def _identity(language, title, disposition) -> str:
    parts = [language] if language and language != "und" else []
    parts += [f'"{title}"'] if title else []
    parts += list(disposition)
    return (", " + ", ".join(parts)) if parts else ""


def info_command(
    clip: Annotated[Path, typer.Argument(help="The video to describe.", show_default=False)],
) -> common.Shown:
    """Describe a video: container, duration, frames, frame rate, stored and displayed size, rotation,
    colour (HDR: PQ / HLG, mastering display, light level, and the SDR rendering the networks see), audio,
    subtitles and other streams, chapters, timecode and tags."""
    from vidinvert.video import probe

    info = probe(clip, count_frames=True)
    return common.Shown({**info.to_dict(), "sdr_rendering": rendering_spec(info).to_dict()}, lambda: _render(info))


def rendering_spec(info):
    """The SDR rendering R the networks see of ``info``'s frames (:mod:`vidinvert.video.rendering_hdr`)."""
    from vidinvert.video.rendering_hdr import spec_for

    return spec_for(info.hdr)


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
