"""Anamorphic frames: the face is found, aligned and pasted as displayed, the frames stay in stored pixels.

The reference is the same picture stored with square pixels: its aligned crop is what the networks
must see, and where its paste lands is where the face is on screen.
"""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np
import pytest
import torch

from tests.face_clips import face_frame
from tests.video_fixtures import psnr
from vidinvert.face.align import warp_faces
from vidinvert.face.geometry import PixelGeometry
from vidinvert.face.paste import paste_faces
from vidinvert.face.stage import FaceConfig
from vidinvert.face.stream import MultiFaceAligner

PAR = Fraction(4, 3)  # pixels shown 4/3 as wide as tall: 180 stored columns shown as 240


@pytest.fixture(scope="module")
def pictures():
    shown = face_frame(0, size=(240, 144), face_px=110, faces=((60, 20),))
    stored = cv2.resize(shown, (180, 144), interpolation=cv2.INTER_AREA)
    return shown, stored


def _face(frame, pixel_aspect):
    (ff,) = MultiFaceAligner(FaceConfig(detector="dlib"), pixel_aspect=pixel_aspect).run([frame])
    (face,) = ff.faces
    return face


def _crop(frame, quad, size=64):
    x = warp_faces([frame], quad[None], size)[0]
    return ((x.permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)


def test_anamorphic_crop_equals_the_square_pixel_crop(pictures):
    shown, stored = pictures
    square = _crop(shown, _face(shown, 1.0).quad)
    aware = _crop(stored, _face(stored, PAR).quad)
    naive = _crop(stored, _face(stored, 1.0).quad)  # the stretched face the networks used to get
    assert psnr(aware, square) > 28  # within interpolation (and detector) tolerance
    assert psnr(naive, square) < psnr(aware, square) - 10


def test_paste_lands_where_the_face_is(pictures):
    shown, stored = pictures
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 16:48, 16:48] = 1
    white = torch.ones(1, 3, 64, 64)

    def box(frame, pixel_aspect):
        out = paste_faces([frame], _face(frame, pixel_aspect).quad[None], white, mask, mode="full")[0]
        ys, xs = np.nonzero((out != frame).any(axis=2))
        return np.array([xs.min(), xs.max() + 1]), np.array([ys.min(), ys.max() + 1])

    (x_stored, y_stored), (x_shown, y_shown) = box(stored, PAR), box(shown, 1.0)
    assert np.abs(x_stored * 240 / 180 - x_shown).max() <= 2.5  # stored columns mapped onto the screen
    assert np.abs(y_stored - y_shown).max() <= 2


def test_pixel_geometry_round_trips_points_and_faces():
    geo = PixelGeometry.for_frames(PAR, 180)
    assert (geo.display_width, geo.sx) == (240, 240 / 180)
    pts = np.array([[-0.5, 3.0], [0.0, 0.0], [179.5, 7.0]])
    disp = geo.to_display(pts)
    np.testing.assert_allclose(disp[:, 0], [-0.5, 1 / 6, 239.5])  # pixel edges map onto pixel edges
    np.testing.assert_allclose(geo.to_stored(disp), pts)
    assert PixelGeometry.for_frames(1, 180).display_image(np.zeros((2, 180, 3), np.uint8)).shape == (2, 180, 3)
