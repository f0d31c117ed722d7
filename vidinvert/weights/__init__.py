"""Model files: the registry, where files are looked up, safe reading, strict loading, downloads.

- :mod:`~vidinvert.weights.registry`: :class:`WeightSpec`, :data:`REGISTRY`, :func:`search_dirs`,
  :func:`find`, :func:`require`, :func:`resolve_file`, :func:`sha256_file` (no torch import).
- :mod:`~vidinvert.weights.checkpoint`: :func:`read_checkpoint` (``weights_only=True``, safetensors;
  refuses ``.pkl``, HTML pages, git-lfs pointers with their own messages).
- :mod:`~vidinvert.weights.loading`: :func:`load_generator`, :func:`load_encoder`, :func:`load_arcface`.
- :mod:`~vidinvert.weights.downloading`: :func:`download` (urllib; GitHub, Google Drive; resume; sha256).

The torch-using names are imported on first use, so ``import vidinvert.weights`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# Imported eagerly: it needs no torch.
from vidinvert.weights.downloading import download, download_many, license_notice
from vidinvert.weights.registry import (
    KNOWN_DIRECTION_SOURCES,
    REGISTRY,
    DirectionSource,
    WeightSpec,
    direction_sources_text,
    find,
    generator_file,
    get_spec,
    how_to_get,
    install_dir,
    model_files,
    place_path,
    require,
    resolve_file,
    search_dirs,
    sha256_file,
    status,
    weights_report,
)

if TYPE_CHECKING:  # pragma: no cover
    from vidinvert.weights.checkpoint import read_checkpoint
    from vidinvert.weights.loading import (
        classify_state_dict,
        load_arcface,
        load_encoder,
        load_generator,
        strict_load,
    )

_LAZY = {
    "read_checkpoint": "vidinvert.weights.checkpoint",
    "classify_state_dict": "vidinvert.weights.loading",
    "load_arcface": "vidinvert.weights.loading",
    "load_encoder": "vidinvert.weights.loading",
    "load_generator": "vidinvert.weights.loading",
    "strict_load": "vidinvert.weights.loading",
}

__all__ = [
    "KNOWN_DIRECTION_SOURCES",
    "REGISTRY",
    "DirectionSource",
    "WeightSpec",
    "classify_state_dict",
    "direction_sources_text",
    "download",
    "download_many",
    "find",
    "generator_file",
    "get_spec",
    "how_to_get",
    "install_dir",
    "license_notice",
    "load_arcface",
    "load_encoder",
    "load_generator",
    "model_files",
    "place_path",
    "read_checkpoint",
    "require",
    "resolve_file",
    "search_dirs",
    "sha256_file",
    "status",
    "strict_load",
    "weights_report",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vidinvert.weights' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
