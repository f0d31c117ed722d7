"""Latent edits: direction files and their registry, layer masks, conditional edits, discovery
(SeFa, :mod:`vidinvert.edit.discover`), strengths over time, temporal filters."""

from vidinvert.edit.conditional import condition_direction
from vidinvert.edit.directions import (
    EDIT_STEP,
    Direction,
    EditSpec,
    available_directions,
    broadcast_direction,
    load_direction,
    resolve_attr,
)
from vidinvert.edit.latent import apply_edit, edit_feature
from vidinvert.edit.layers import layer_mask, mask_direction, mask_spec, parse_layers

__all__ = [
    "EDIT_STEP",
    "Direction",
    "EditSpec",
    "apply_edit",
    "available_directions",
    "broadcast_direction",
    "condition_direction",
    "edit_feature",
    "layer_mask",
    "load_direction",
    "mask_direction",
    "mask_spec",
    "parse_layers",
    "resolve_attr",
]
