"""The optional side outputs of a video run: saved latents (``--save-latents``) and PNG frames
(``--frames-dir``). Both are written per chunk, each file through a temporary name, in the
writer thread before the chunk is marked done, so a stopped run never leaves a half file and a
resumed run ends with exactly the files of an uninterrupted one.

Saved latents: ``DIR/latents_NNNNN.npz``, one file per chunk that has faces (``NNNNN`` = the
chunk number; chunks are ``chunk_frames`` consecutive frames), each holding ``w`` ``[n,L,D]``
float16, ``f`` ``[n,C,16,16]`` float16 (after the temporal filters, before the edit), ``index``
(frame indices, int64), ``time`` (seconds, float64), ``pts`` (stream ticks, int64), ``quad``
``[n,4,2]`` float32 (the crop in frame pixels), ``status`` (``detected``/``interpolated``) and
``track`` (int32, the face's track id: 0 with one face). Rows are sorted by frame index, then track.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from vidinvert.errors import VidinvertError
from vidinvert.fileio import atomic_path

LATENTS_GLOB = "latents_*.npz"


def latents_file(root: Path, chunk_number: int) -> Path:
    return Path(root) / f"latents_{chunk_number:05d}.npz"


def prepare_latents_dir(root: Path, *, overwrite: bool, keep_chunks: Sequence[int] = ()) -> None:
    """Make ``root`` ready: files of the chunks in ``keep_chunks`` (finished in an earlier run of
    this same job, resumed) are kept; any other ``latents_*.npz`` is removed with ``overwrite``
    and refused without it."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise VidinvertError(f"--save-latents {root} is a file: give a folder for videos")
    keep = {latents_file(root, n).name for n in keep_chunks}
    stale = [p for p in root.glob(LATENTS_GLOB) if p.name not in keep] if root.is_dir() else []
    if stale and not overwrite:
        raise VidinvertError(f"--save-latents folder {root} already holds latents: pass --overwrite or choose another")
    for p in stale:
        p.unlink()
    root.mkdir(parents=True, exist_ok=True)


def chunk_latent_arrays(items: Sequence, lat_w: torch.Tensor, lat_f: torch.Tensor) -> dict[str, np.ndarray]:
    """The arrays of one batch of aligned faces (``items``: AlignedFace with quads) and their latents."""
    return {
        "w": lat_w.detach().to("cpu", torch.float16).numpy(),
        "f": lat_f.detach().to("cpu", torch.float16).numpy(),
        "index": np.array([it.index for it in items], np.int64),
        "time": np.array([it.time for it in items], np.float64),
        "pts": np.array([-1 if it.pts is None else it.pts for it in items], np.int64),
        "quad": np.stack([it.quad for it in items]).astype(np.float32),
        "status": np.array([it.status for it in items]),
        "track": np.array([getattr(it, "track", 0) for it in items], np.int32),
    }


def write_chunk_latents(root: Path, chunk_number: int, batches: list[dict[str, np.ndarray]]) -> None:
    """One chunk's latents (its batches concatenated) as ``latents_NNNNN.npz``; nothing for a
    chunk without faces."""
    if not batches:
        return
    merged = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    with atomic_path(latents_file(root, chunk_number), overwrite=True) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **merged)


def prepare_frames_dir(root: Path, names: Sequence[str], *, overwrite: bool, resume: bool) -> None:
    """``--frames-dir``: one folder per output, refused when it already holds frames (unless
    --overwrite, or --resume, which continues filling it)."""
    for name in names:
        d = Path(root) / name
        if d.exists() and not d.is_dir():
            raise VidinvertError(f"--frames-dir: {d} is a file, not a folder")
        if d.is_dir() and not (overwrite or resume) and any(d.glob("*.png")):
            raise VidinvertError(f"--frames-dir: {d} already holds frames: pass --overwrite to replace them,"
                                 " or choose another folder")
        d.mkdir(parents=True, exist_ok=True)


def write_frames(root: Path, outputs: dict[str, list[np.ndarray]], indices: list[int],
                 planes: dict[str, list] | None = None) -> None:
    """Every output frame as ``root/<output name>/<frame index>.png``, each written through a temporary
    name: 8-bit RGB, or 16-bit RGB for a frame whose composited samples (``planes``, the same frames'
    :class:`~vidinvert.video.planes.Planes`) are deeper than 8 bits (:func:`png16_of`)."""
    for name, frames in outputs.items():
        d = Path(root) / name
        d.mkdir(parents=True, exist_ok=True)
        deep = (planes or {}).get(name) or [None] * len(frames)
        for i, rgb, pl in zip(indices, frames, deep):
            with atomic_path(d / f"{i:06d}.png", overwrite=True) as tmp:
                if pl is not None and pl.depth > 8:
                    Path(tmp).write_bytes(png16_bytes(png16_of(pl)))
                else:
                    Image.fromarray(rgb).save(tmp, format="PNG")


def png16_of(planes) -> np.ndarray:
    """Deep samples -> uint16 RGB ``[H,W,3]``: the exact float RGB of the planes
    (:meth:`~vidinvert.video.planes.Planes.to_rgb`, chroma by sample replication) clipped to [0, 1],
    ``round(65535 * v)``."""
    rows = 256
    out = np.empty((planes.height, planes.width, 3), np.uint16)
    for y in range(0, planes.height, rows):  # bounded float64 temporaries on 4K frames
        box = (0, y, planes.width, min(planes.height, y + rows))
        out[y : box[3]] = np.rint(np.clip(planes.to_rgb(box), 0, 1) * 65535)
    return out


def png16_bytes(rgb16: np.ndarray) -> bytes:
    """uint16 RGB ``[H,W,3]`` -> 16-bit PNG bytes (OpenCV's encoder)."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb16[..., ::-1]))
    if not ok:  # pragma: no cover - OpenCV failure
        raise VidinvertError("cannot encode a 16-bit PNG")
    return buf.tobytes()
