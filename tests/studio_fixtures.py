"""Files for the studio's tests: a folder with a face clip, a two-face photo, a clip without faces and
a file that is no media; a weights folder with a named direction; direction and style files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tests.face_clips import face_patch, make_face_clip


def make_media(root: Path, tiny_weights) -> dict:
    """``root/media`` (the input's folder) and ``root/weights`` (a named direction ``smile``)."""
    media, weights = root / "media", root / "weights"
    media.mkdir(parents=True)
    weights.mkdir()
    rng = np.random.default_rng(3)
    np.save(weights / "smile.npy", rng.standard_normal(64).astype(np.float32))
    dirs = media / "dirs"
    dirs.mkdir()
    np.save(dirs / "sefa_L0-9_r00.npy", rng.standard_normal((10, 64)).astype(np.float32))
    np.save(root / "upload.npy", rng.standard_normal(64).astype(np.float32))
    clip = make_face_clip(media / "one.mp4", n_frames=3, size=(176, 144))
    empty = make_face_clip(media / "empty.mp4", n_frames=3, size=(96, 80),
                           frame_fn=lambda i: np.full((80, 96, 3), 120, np.uint8))
    photo = np.full((200, 420, 3), 120, np.uint8)
    photo[10:190, 10:190] = face_patch(180)
    photo[40:160, 260:380] = face_patch(120)
    Image.fromarray(photo).save(media / "pair.png")
    Image.fromarray(face_patch(160)).save(root / "ref.png")
    (media / "notes.mp4").write_text("not a video\n")
    return {"root": root, "media": media, "weights": weights, "clip": clip, "empty": empty, "photo": media / "pair.png",
            "sefa": dirs / "sefa_L0-9_r00.npy", "upload": root / "upload.npy", "ref": root / "ref.png",
            "smile": weights / "smile.npy", "encoder": str(tiny_weights["encoder"]),
            "generator": str(tiny_weights["generator"])}


def studio_request(files: dict, **extra):
    from vidinvert.studio.request import StudioRequest

    return StudioRequest(input=files["clip"], port=0, out_dir=files["root"] / "out", encoder=files["encoder"],
                         generator=files["generator"], weights_dir=files["weights"], device="cpu", detector="dlib",
                         **extra)


def png(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))
