"""Training the Feature-Style encoder (``vidinvert train``).

- :mod:`~vidinvert.train.config`: frozen dataclasses, YAML, dotted overrides.
- :mod:`~vidinvert.train.data`: real faces from a folder, synthetic faces on the fly.
- :mod:`~vidinvert.train.losses`: L2, multi-scale LPIPS, ArcFace identity, BiSeNet parsing, feature.
- :mod:`~vidinvert.train.loop`: :class:`~vidinvert.train.loop.Trainer` and :func:`~vidinvert.train.loop.train`.
- :mod:`~vidinvert.train.export`: a run's encoder in the official bare state-dict format.

Importing this package is cheap; the heavy modules load on use.
"""

from __future__ import annotations

from vidinvert.train.config import TrainConfig, apply_overrides, load_config

__all__ = ["TrainConfig", "apply_overrides", "load_config"]
