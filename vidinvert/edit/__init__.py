"""Latent edits: direction files and their registry, strengths over time, temporal filters."""

from vidinvert.edit.directions import (
    EDIT_STEP,
    Direction,
    EditSpec,
    broadcast_direction,
    available_directions,
    load_direction,
    resolve_attr,
)
from vidinvert.edit.latent import apply_edit, edit_feature

__all__ = [
    "EDIT_STEP",
    "Direction",
    "EditSpec",
    "apply_edit",
    "broadcast_direction",
    "available_directions",
    "edit_feature",
    "load_direction",
    "resolve_attr",
]
