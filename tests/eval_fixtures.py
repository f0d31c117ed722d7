"""Clips for the eval tests: the astronaut's face (skimage.data) drifting a little across frames.

The tiny models' reconstructions are meaningless, but the face stage must find a real face in
the source frames; dlib's detector finds hers in 128x128 frames. Written with PyAV directly.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def astronaut_frames(n: int, size: int = 128, shift: int = 0) -> list[np.ndarray]:
    """``n`` uint8 RGB ``[size,size,3]`` frames: a 280 px window over her face, moving 3 px right
    and 2 px down per frame (``shift`` offsets the start), resized to ``size``."""
    from PIL import Image
    from skimage import data

    img = data.astronaut()
    out = []
    for i in range(n):
        x0, y0 = 100 + 3 * (i + shift), 10 + 2 * (i + shift)
        crop = img[y0:y0 + 280, x0:x0 + 280]
        out.append(np.asarray(Image.fromarray(crop).resize((size, size), Image.BILINEAR)))
    return out


def write_clip(path: str | Path, frames: list[np.ndarray], fps: int = 25) -> Path:
    """H.264 (CRF 16, yuv420p) MP4 of the frames."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"crf": "16"}
        s.time_base = Fraction(1, fps)
        for i, rgb in enumerate(frames):
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            f.pts = i
            for pk in s.encode(f):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    return path


def make_ravdess_folder(root: str | Path, n_frames: int = 5) -> dict[str, Path]:
    """A RAVDESS-like folder of three clips (four files):

    * ``Actor_01/02-01-03-01-01-01-01.mp4`` video-only and its audio-video twin
      ``Actor_01/01-01-03-01-01-01-01.mp4`` (the same recording: counted once, the 02 file);
    * ``Actor_02/01-01-05-02-02-01-02.mp4`` audio-video only (the fallback is used);
    * ``Actor_02/02-02-04-01-01-02-02.mp4`` broken (not a video).
    """
    root = Path(root)
    files = {
        "video_only": root / "Actor_01" / "02-01-03-01-01-01-01.mp4",
        "audio_video_twin": root / "Actor_01" / "01-01-03-01-01-01-01.mp4",
        "audio_video_only": root / "Actor_02" / "01-01-05-02-02-01-02.mp4",
        "broken": root / "Actor_02" / "02-02-04-01-01-02-02.mp4",
    }
    frames = astronaut_frames(n_frames)
    write_clip(files["video_only"], frames)
    write_clip(files["audio_video_twin"], frames)
    write_clip(files["audio_video_only"], astronaut_frames(n_frames, shift=4))
    files["broken"].parent.mkdir(parents=True, exist_ok=True)
    files["broken"].write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"not a video" * 64)
    return files


ALEXNET_CONVS = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}


def random_alexnet_features(seed: int = 0) -> dict:
    """Seeded random weights for torchvision AlexNet's ``features.*`` convolutions (LPIPS's trunk),
    He-scaled so activations neither vanish nor explode. Built directly: a whole torchvision
    AlexNet (61 M parameters, mostly its classifier) is slow to initialise."""
    import torch

    g = torch.Generator().manual_seed(seed)
    out = {}
    for i, (cout, cin, k) in ALEXNET_CONVS.items():
        out[f"features.{i}.weight"] = torch.randn(cout, cin, k, k, generator=g) * (2.0 / (cin * k * k)) ** 0.5
        out[f"features.{i}.bias"] = torch.randn(cout, generator=g) * 0.01
    return out


def save_random_alexnet(path: str | Path, seed: int = 0) -> Path:
    """:func:`random_alexnet_features` saved like torchvision's file (keys ``features.N.weight|bias``)."""
    import torch

    torch.save(random_alexnet_features(seed), path)
    return Path(path)
