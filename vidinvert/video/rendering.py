"""What the networks see of a face: the rendering between the source's signal and SDR RGB.

The face stage and the networks work on display-referred SDR RGB in [0, 1] (8-bit RGB /255 for
an SDR source). The composite (:mod:`vidinvert.pipeline.composite`) brings the networks' change
back into the source's own samples through a :class:`Rendering`::

    x' = R.inverse(R.forward(x) + delta)

``x`` is the source's signal RGB (the decoded planes converted with the stream's matrix and
range, float64 in [0, 1] of the code range; HDR: the PQ/HLG signal, BT.2020), ``delta`` the
networks' change in rendered units (``[0, 1]`` scale). ``forward`` may extend past [0, 1]
(R's unclipped range); ``inverse(forward(x)) == x`` there. For SDR sources the rendering is
the identity (:data:`SDR_IDENTITY`), so the composite is ``x + delta`` on the source's deep values.

Arrays are numpy float64 ``[..., 3]`` RGB (channel last); implementations must be elementwise
per pixel (no spatial filtering) so the composite can work on a face's bounding box only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Rendering(Protocol):
    """Source signal RGB <-> what the networks see (float64 ``[..., 3]``, channel last).

    ``name``: a short id written to reports/run.json (``sdr-identity``, ...);
    ``describe()``: one line naming the operator and its parameters.
    """

    name: str

    def forward(self, signal: np.ndarray) -> np.ndarray:
        """Source signal RGB in [0, 1] -> rendered SDR RGB (may leave [0, 1]: unclipped)."""
        ...

    def inverse(self, rendered: np.ndarray) -> np.ndarray:
        """Rendered SDR RGB (unclipped) -> source signal RGB; ``inverse(forward(x)) == x``."""
        ...

    def describe(self) -> str:
        ...


@dataclass(frozen=True)
class IdentityRendering:
    """SDR sources: the networks see the signal itself (``forward``/``inverse`` return it unchanged)."""

    name: str = "sdr-identity"

    def forward(self, signal: np.ndarray) -> np.ndarray:
        return signal

    def inverse(self, rendered: np.ndarray) -> np.ndarray:
        return rendered

    def describe(self) -> str:
        return "identity (SDR source: the networks see the decoded RGB)"

    @property
    def is_identity(self) -> bool:
        return True


SDR_IDENTITY = IdentityRendering()


def is_identity(rendering: Rendering) -> bool:
    """True for the SDR identity (the composite then skips the two conversions)."""
    return bool(getattr(rendering, "is_identity", False))
