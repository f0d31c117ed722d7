"""Photos for the editing session, from the photo job's own pieces (see :mod:`vidinvert.pipeline.session`):
the faces found and aligned (:func:`~vidinvert.pipeline.photo.photo_faces`), inverted as one batch and
reconstructed (cached per face settings), edited (:func:`~vidinvert.pipeline.photo.photo_edits`) and
pasted back in depth order (:func:`~vidinvert.pipeline.photo.paste_photo_samples`) without the write."""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

from vidinvert.convert import to_uint8
from vidinvert.engine import Inverter, Latents
from vidinvert.imagefile import Photo, photo_samples, read_photo
from vidinvert.pipeline.context import JobContext
from vidinvert.pipeline.edits import EditPlan
from vidinvert.pipeline.photo import INVERSION, PhotoConfig, paste_photo_samples, photo_edits, photo_faces
from vidinvert.pipeline.request import PHOTO
from vidinvert.pipeline.session_types import FaceInfo, Media, Rendered
from vidinvert.pipeline.settings import JobSettings

#: Photos (with their faces' inversions) kept.
PHOTOS_KEPT = 4


@dataclass
class _PhotoFaces:
    photo: Photo
    chosen: list
    quads: object
    src: torch.Tensor
    latents: Latents
    recon: torch.Tensor


class PhotoRenderer:
    """Photo renders of the session; the faces' inversions cached per photo and face settings."""

    def __init__(self, inverter: Inverter, masker, detector=None) -> None:
        self.inv, self.masker, self.detector = inverter, masker, detector
        self._faces: OrderedDict[tuple, _PhotoFaces] = OrderedDict()

    def open(self, path: Path) -> Media:
        photo = read_photo(path)
        return Media(path, PHOTO, 1, (0.0,), photo.size, photo)

    def _found(self, media: Media, s: JobSettings) -> tuple[_PhotoFaces, float]:
        cfg = self._config(s)
        st = media.path.stat()
        key = (str(media.path), st.st_size, st.st_mtime_ns, str(cfg.face_select), str(cfg.detector), cfg.min_face)
        got = self._faces.get(key)
        t = 0.0
        if got is None:
            t0 = time.perf_counter()
            photo = media.info
            chosen, _, quads, src = photo_faces(self.inv, photo, cfg, str(media.path))
            lat = self.inv.invert(src)
            got = self._faces[key] = _PhotoFaces(photo, chosen, quads, src, lat, self.inv.synthesize(lat))
            t = time.perf_counter() - t0
            while len(self._faces) > PHOTOS_KEPT:
                self._faces.popitem(last=False)
        self._faces.move_to_end(key)
        return got, t

    def _config(self, s: JobSettings) -> PhotoConfig:
        cfg = PhotoConfig.from_settings(s)
        return cfg if self.detector is None else dataclasses.replace(cfg, detector=self.detector)

    def faces(self, media: Media, s: JobSettings) -> list[FaceInfo]:
        found, _ = self._found(media, s)
        return [FaceInfo.of(c.number, c.number, c.quad, "detected", 1.0) for c in found.chosen]

    def render(self, media: Media, s: JobSettings, ctx: JobContext, synth: Inverter | None = None) -> Rendered:
        """The photo with ``s`` (see the session); ``synth``: the inverter whose ``synthesize`` makes the
        images (an early-exit preview: the reconstruction is then made the same way)."""
        found, t_faces = self._found(media, s)
        t0 = time.perf_counter()
        synth = synth or self.inv
        recon = found.recon if synth is self.inv else synth.synthesize(found.latents)
        invert = s.request.kind == "invert"
        tags = [INVERSION] if invert else [tag for tag, _ in ctx.edits]
        plan = ctx.plan if ctx.plan is not None else EditPlan(strength=s.strength)
        edits = [sp for _, sp in ctx.edits if sp is not None]
        _, edited, region = photo_edits(synth, found.src, found.chosen, found.latents,
                                        [t for t in tags if t != INVERSION], edits, plan)
        t1 = time.perf_counter()
        cfg = self._config(s)
        outputs, samples = {}, {}
        for tag in tags:
            img = recon if tag == INVERSION else edited[tag]
            rgb, high = paste_photo_samples(found.photo, found.chosen, found.quads, found.src, recon, img, region,
                                            inversion=tag == INVERSION, cfg=cfg, masker=self.masker)
            outputs["inverted" if invert else tag] = rgb
            samples["inverted" if invert else tag] = photo_samples(found.photo, rgb, high)
        t2 = time.perf_counter()
        crops = to_uint8(found.src)
        edited_crops = {tag: to_uint8(x.clamp(-1, 1)) for tag, x in edited.items()}
        return Rendered(0, 0.0, outputs, found.photo.rgb, self.faces(media, s), crops, edited_crops, samples,
                        timings={"faces+invert": round(t_faces, 4), "edit": round(t1 - t0, 4),
                                 "paste": round(t2 - t1, 4)})
