"""Display orientation from the display matrix: frames come out upright.

The display matrix (ISO/IEC 14496-12, FFmpeg ``AV_FRAME_DATA_DISPLAYMATRIX``) maps a stored
pixel ``(x, y)`` to its displayed position ``(a*x + c*y, b*x + d*y)`` (plus a translation).
For right angles ``a, b, c, d`` are in ``{-1, 0, 1}``, so showing a frame as players do is a
transpose and/or flips of the array, which :class:`Orientation` applies with numpy.

``rotation`` is reported in the convention of the legacy ``rotate`` tag: degrees the stored
frame is turned **clockwise** for display (a portrait phone clip says 90). FFmpeg's
``av_display_rotation_get`` (PyAV's ``VideoFrame.rotation``) is the same angle counter-clockwise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import av
import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Orientation:
    """How a stored frame is shown: transpose, then flip rows, then flip columns."""

    transpose: bool = False
    flip_rows: bool = False
    flip_cols: bool = False

    @property
    def is_identity(self) -> bool:
        return not (self.transpose or self.flip_rows or self.flip_cols)

    @property
    def rotation(self) -> int:
        """Clockwise degrees (0, 90, 180, 270) of the rotation part."""
        return _ROTATION.get((self.transpose, self.flip_rows, self.flip_cols), (0, False))[0]

    @property
    def mirrored(self) -> bool:
        """True when the display also mirrors the picture (determinant -1)."""
        return _ROTATION.get((self.transpose, self.flip_rows, self.flip_cols), (0, False))[1]

    def display_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) as displayed, from the stored size."""
        return (height, width) if self.transpose else (width, height)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Stored HxWxC array -> displayed (upright) array, C-contiguous."""
        if self.is_identity:
            return image
        out = image.swapaxes(0, 1) if self.transpose else image
        if self.flip_rows:
            out = out[::-1]
        if self.flip_cols:
            out = out[:, ::-1]
        return np.ascontiguousarray(out)

    @classmethod
    def from_matrix(cls, matrix) -> Orientation:
        """From the 9 int32 entries of a display matrix (16.16 fixed point)."""
        a, b, c, d = (int(np.sign(matrix[i])) for i in (0, 1, 3, 4))
        if a == 0 and d == 0 and b != 0 and c != 0:
            return cls(True, b < 0, c < 0)
        if b == 0 and c == 0 and a != 0 and d != 0:
            return cls(False, d < 0, a < 0)
        raise ValueError("not a right-angle display matrix")

    @classmethod
    def from_frame(cls, frame: av.VideoFrame) -> Orientation:
        """Read the display matrix of a decoded frame (identity when there is none)."""
        matrix = None
        try:
            for sd in frame.side_data:
                if sd.type == av.sidedata.sidedata.Type.DISPLAYMATRIX:
                    matrix = np.frombuffer(bytes(sd), dtype=np.int32)[:9]
                    break
        except Exception:  # pragma: no cover - defensive: side data we cannot parse
            matrix = None
        if matrix is None or len(matrix) < 9:
            return cls()
        try:
            return cls.from_matrix(matrix)
        except ValueError:
            log.warning(
                "rotation of %.1f degrees is not a multiple of 90: frames are used as stored",
                -float(frame.rotation),
            )
            return cls()


# (transpose, flip_rows, flip_cols) -> (clockwise degrees, mirrored)
_ROTATION = {
    (False, False, False): (0, False),
    (True, False, True): (90, False),  # transpose + flip columns = rotate clockwise
    (False, True, True): (180, False),
    (True, True, False): (270, False),  # transpose + flip rows = rotate counter-clockwise
    (False, False, True): (0, True),
    (False, True, False): (180, True),
    (True, False, False): (90, True),
    (True, True, True): (270, True),
}
