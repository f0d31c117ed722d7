"""Display geometry for frames whose pixels are not square (anamorphic video).

Frames stay in stored pixels everywhere (decoding, warping, pasting, encoding). Only the face
stage looks at them as displayed: it detects and tracks on each frame resampled to display
geometry (width ``round(W * pixel_aspect)``, height unchanged), builds the FFHQ quads and smooths
them there (they are squares on screen), and maps quads and landmarks back to stored pixels.
A display-space square becomes a parallelogram in stored pixels, which the warp
(:func:`~vidinvert.face.align.warp_faces`, an affine map) and the paste (its inverse) take as
is, so the networks see the face unstretched and the edit lands where the face is.

The map, in the pixel-centre convention of :mod:`vidinvert.face.types` (y unchanged):
``x_display = (x_stored + 0.5) * sx - 0.5`` with ``sx = W_display / W`` (the exact ratio of the
resampled width, within half a pixel of the pixel aspect).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vidinvert.face.types import Face


@dataclass(frozen=True)
class PixelGeometry:
    """Stored frame pixels <-> display pixels for frames ``width`` pixels wide (see the module doc)."""

    width: int
    display_width: int

    @classmethod
    def for_frames(cls, pixel_aspect: float, width: int) -> PixelGeometry:
        """Frames ``width`` wide whose pixels are ``pixel_aspect`` (width / height) as displayed."""
        return cls(int(width), max(1, round(int(width) * float(pixel_aspect))))

    @property
    def square(self) -> bool:
        return self.display_width == self.width

    @property
    def sx(self) -> float:
        return self.display_width / self.width

    def display_image(self, frame: np.ndarray) -> np.ndarray:
        """uint8 RGB ``[H,W,3]`` -> ``[H,W_display,3]`` as displayed (the same array when square)."""
        if self.square:
            return frame
        shrink = self.display_width < self.width
        return cv2.resize(frame, (self.display_width, frame.shape[0]),
                          interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)

    def to_display(self, pts: np.ndarray) -> np.ndarray:
        """Stored points ``[...,2]`` -> display points."""
        if self.square:
            return np.asarray(pts, np.float64)
        out = np.array(pts, np.float64)
        out[..., 0] = (out[..., 0] + 0.5) * self.sx - 0.5
        return out

    def to_stored(self, pts: np.ndarray) -> np.ndarray:
        """Display points ``[...,2]`` (e.g. a quad ``[4,2]``) -> stored points."""
        if self.square:
            return np.asarray(pts, np.float64)
        out = np.array(pts, np.float64)
        out[..., 0] = (out[..., 0] + 0.5) / self.sx - 0.5
        return out

    def face_to_stored(self, face: Face | None) -> Face | None:
        """A face detected in display geometry, in stored pixels."""
        if face is None or self.square:
            return face
        box = self.to_stored(face.box.reshape(2, 2)).reshape(4)
        lm68 = None if face.landmarks68 is None else self.to_stored(face.landmarks68)
        return Face(box=box, score=face.score, landmarks5=self.to_stored(face.landmarks5), landmarks68=lm68,
                    extra=dict(face.extra))
