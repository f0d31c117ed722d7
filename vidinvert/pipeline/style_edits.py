"""The StyleSpace edits of a request (``--channel``, ``.npz`` directions), checked and resolved.

:func:`precheck_style_edits` runs before the networks load: it reads the generator file's layout
from its shapes and refuses an unknown channel or a direction file made for another generator in
one line. :func:`style_directions` resolves them once the generator is loaded: the per-channel
standard deviations (cached in the weights folder, :func:`~vidinvert.edit.stylespace.load_style_stats`),
``--layers`` keeping the S layers driven by its rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vidinvert.edit.layers import parse_layers
from vidinvert.edit.stylespace import (
    STATS_SAMPLES,
    STATS_SEED,
    StyleDirection,
    channel_direction,
    file_direction,
    generator_fingerprint,
    load_style_stats,
    mask_style_rows,
)
from vidinvert.engine import Inverter
from vidinvert.models.stylespace import (
    ChannelEdit,
    StyleLayout,
    check_file_layout,
    is_style_direction_path,
    parse_channels,
    read_style_direction,
)
from vidinvert.pipeline.request import EditRequest
from vidinvert.weights import generator_file, install_dir
from vidinvert.weights.loading import read_generator_layout


def check_style_edits(req: EditRequest, layout: StyleLayout) -> None:
    """Every ``--channel`` exists in ``layout`` and every ``.npz`` direction was made for it."""
    check_layout(layout, req.channel, req.direction)


def check_layout(layout: StyleLayout, channels: Sequence[str], directions: Sequence[Path]) -> None:
    """Every channel ``L_C`` exists in ``layout`` and every ``.npz`` of ``directions`` was made for it."""
    for c in parse_channels(channels):
        layout.flat_index(c.layer, c.channel)
    for p in directions:
        if is_style_direction_path(p):
            check_file_layout(read_style_direction(p), layout)


def precheck_layout(generator: str | None, weights_dir: Path | None, channels: Sequence[str],
                    directions: Sequence[Path]) -> None:
    """Before the networks load: :func:`check_layout` against the layout of the generator file
    ``generator`` names (read from its shapes; nothing when there is no S edit)."""
    if not channels and not any(is_style_direction_path(p) for p in directions):
        return

    check_layout(read_generator_layout(generator_file(generator, weights_dir)), channels, directions)


def precheck_style_edits(req: EditRequest) -> None:
    """Before the networks load: the S edits checked against the generator file's layout."""
    precheck_layout(req.generator, req.weights_dir, req.channel, req.direction)


def style_directions(req: EditRequest, inv: Inverter) -> list[StyleDirection]:
    """The request's S directions in its order (each ``.npz`` direction, then the channel edit),
    restricted to the layers of ``layers``."""
    check_style_edits(req, inv.style_layout)
    files = [p for p in req.direction if is_style_direction_path(p)]
    groups = [parse_channels(req.channel)] if req.channel else []
    return resolve_styles(inv, files, groups, layers=req.layers, weights_dir=req.weights_dir)


def resolve_styles(inv: Inverter, files: Sequence[Path], channel_groups: Sequence[Sequence[ChannelEdit]], *,
                   layers: str | None = None, weights_dir: Path | None = None) -> list[StyleDirection]:
    """S directions for ``inv``'s generator: each ``.npz`` of ``files``, then one per channel group,
    restricted to the layers driven by the w+ rows of ``layers``. The standard deviations are loaded
    (or computed and cached in the weights folder) only when a channel or a ``std`` file needs them."""
    layout = inv.style_layout
    read = [read_style_direction(p) for p in files]
    stats = None
    if channel_groups or any(f.units == "std" for f in read):
        stats = load_style_stats(inv.generator, install_dir(weights_dir))
    fingerprint = stats.fingerprint if stats is not None else generator_fingerprint(inv.generator)
    out = [file_direction(f, layout, None if stats is None else stats.std, fingerprint) for f in read]
    out += [channel_direction(group, layout, stats.std) for group in channel_groups]
    if layers is not None:
        rows = parse_layers(layers, inv.n_latent)
        out = [mask_style_rows(d, layout, rows) for d in out]
    return out


def describe_style_edits(edits, inv: Inverter) -> dict | None:
    """What ``run.json`` records of the S edits of ``edits`` (``(tag, EditSpec | None)``): per tag its
    sources, channels and units, and the statistics the standard deviations came from; None without any."""
    out: dict = {}
    for tag, spec in edits:
        if spec is not None and spec.styles:
            out[tag] = {"sources": [d.source for d in spec.styles], "channels": [c for d in spec.styles
                                                                                for c in d.channels],
                        "units": [d.units for d in spec.styles]}
    if not out:
        return None
    if any(u == "std" for v in out.values() for u in v["units"]):
        out["stats"] = {"samples": STATS_SAMPLES, "seed": STATS_SEED,
                        "generator_fingerprint": generator_fingerprint(inv.generator)}
    return out


__all__ = ["check_layout", "check_style_edits", "describe_style_edits", "precheck_layout", "precheck_style_edits",
           "resolve_styles", "style_directions"]
