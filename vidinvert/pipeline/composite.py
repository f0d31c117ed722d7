"""Compositing the edited faces into the source's own samples (planes at their depth and layout).

The face stage and the networks see 8-bit RGB; what is written is the source's decoded planes
(:class:`~vidinvert.video.planes.Planes`) with only the faces changed:

* outside the support of the paste masks (the samples with non-zero weight; in a subsampled
  plane, the chroma blocks touching it) every luma and chroma sample is the source's decoded
  sample, untouched;
* inside, the composite is computed at the source's depth in float64:
  ``x' = R.inverse(R.forward(x) + w m * delta)`` (``--paste delta``, ``delta`` the networks' change) or
  ``R.inverse(R.forward(x) + w m * (G - R.forward(x)))`` (``full``), ``x`` the source's signal RGB
  from its planes, ``R`` the :class:`~vidinvert.video.rendering.Rendering` (the identity for SDR), and
  the RGB change ``x' - x`` enters the planes through the stream's matrix and range
  (:func:`~vidinvert.video.planes.add_rgb_delta`). With the identity and ``delta`` no conversion
  of the source is needed at all: a 10-bit sample gets the change added to its own value.

The 8-bit RGB copy of a composited frame (side-by-side panels, previews, 8-bit ``--frames-dir``) is
the planes converted like the reader converts a decoded frame, so it equals what a reader gets
back from a lossless output. Frames without planes (packed or unsupported formats, stand-ins for
damaged frames) keep the RGB paste (:func:`~vidinvert.face.paste.blend_rgb`).
"""

from __future__ import annotations

import numpy as np
import torch

from vidinvert.face import masks as face_masks
from vidinvert.face.paste import PasteField, blend_rgb, combine_masks, depth_fields, paste_fields
from vidinvert.imagefile import LUMA_WEIGHTS
from vidinvert.pipeline.video_config import SIDE_BY_SIDE
from vidinvert.video.colour import ColourSpec, RGBConverter
from vidinvert.video.hdr_frames import SdrRGBConverter, rgb_converter
from vidinvert.video.planes import Planes, add_rgb_delta, block_box
from vidinvert.video.rendering import SDR_IDENTITY, Rendering, is_identity


def composite_field(planes: Planes, fld: PasteField, rendering: Rendering = SDR_IDENTITY) -> None:
    """Composite one face's :class:`PasteField` into ``planes`` (modified in place; see the module doc)."""
    box = block_box(planes, fld.box)
    x0, y0, x1, y1 = box
    fx0, fy0, fx1, fy1 = fld.box
    h, w = y1 - y0, x1 - x0
    m = np.zeros((h, w))
    val = np.zeros((h, w, 3))
    sl = (slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0))
    m[sl] = _host(fld.weight)
    val[sl] = _host(fld.value).transpose(1, 2, 0)
    support = m > 0
    if not support.any():
        return
    if fld.mode == "delta" and is_identity(rendering):
        d = val * (0.5 * m[..., None])
    else:
        x = planes.to_rgb(box)
        r = rendering.forward(x)
        target = val * 0.5 if fld.mode == "delta" else (val + 1) * 0.5 - r
        d = rendering.inverse(r + m[..., None] * target) - x
        d[~support] = 0.0
    add_rgb_delta(planes, box, d, support)


def composite_grey_field(grey: np.ndarray, fld: PasteField) -> None:
    """Composite one face's :class:`PasteField` into a 16-bit greyscale photo's samples (uint16 ``[H,W]``,
    **in place**): the sample ``x`` (in [0, 1]) as three equal RGB channels, composited like
    :func:`composite_field` (SDR identity: ``x + m * delta / 2`` for ``delta``, ``x + m * ((G + 1) / 2 - x)``
    for ``full``, each channel clipped to [0, 1]) in float64, brought back to one channel with the Rec. 601
    luma weights of the 8-bit path (:data:`vidinvert.imagefile.LUMA_WEIGHTS`, summing to 1: a grey value
    maps to itself) and rounded once to 16 bits. Samples outside the field's support are left as they are."""
    x0, y0, x1, y1 = fld.box
    m = _host(fld.weight).astype(np.float64)
    support = m > 0
    if not support.any():
        return
    region = grey[y0:y1, x0:x1]
    x = region.astype(np.float64) / 65535
    val = _host(fld.value).astype(np.float64)  # [3,h,w], [-1,1] units
    rgb = x + m * (0.5 * val if fld.mode == "delta" else (val + 1) * 0.5 - x)
    k = np.asarray(LUMA_WEIGHTS, np.float64) / sum(LUMA_WEIGHTS)
    new = np.clip(np.rint(65535 * np.tensordot(k, np.clip(rgb, 0.0, 1.0), 1)), 0, 65535)
    region[support] = new[support]


def rgb16_planes(high: np.ndarray) -> Planes:
    """A 16-bit RGB image (uint16 ``[H,W,3]``, a photo's samples) as :class:`Planes` (``gbrp16le``
    order; the arrays are copies, to composite into)."""
    data = tuple(np.ascontiguousarray(high[..., c]) for c in (1, 2, 0))
    return Planes("gbrp16le", 16, (1, 1), data, ColourSpec("rgb", "full"), (2, 0, 1))


def _host(t: torch.Tensor) -> np.ndarray:
    """A tensor's values as a numpy array on the host (float32 views: torch's strided float64 copy is slow)."""
    t = t.detach()
    return (t if t.device.type == "cpu" else t.cpu()).float().numpy()


class Outputs(dict):
    """Each output's frames of a chunk, ``{name: [uint8 RGB HxWx3]}``, with the same frames' composited
    samples in :attr:`planes` (``{name: [Planes or None]}``; None: the frame has no planes)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.planes: dict[str, list[Planes | None]] = {}

    @classmethod
    def of_chunk(cls, chunk, names: list[str]) -> Outputs:
        """Each output's frames of ``chunk`` before any face is pasted: the source frames (and planes)."""
        out = cls({name: [ff.frame for ff in chunk.frames] for name in names})
        out.planes = {name: [getattr(ff, "planes", None) for ff in chunk.frames] for name in names}
        return out

    def put(self, name: str, pasted: dict[int, tuple[np.ndarray, Planes | None]]) -> None:
        """Replace frames of output ``name`` by ``{position: (rgb, planes)}``."""
        planes = self.planes.setdefault(name, [None] * len(self[name]))
        for p, (rgb, pl) in pasted.items():
            self[name][p] = rgb
            planes[p] = pl

    def planes_of(self, name: str) -> list[Planes | None]:
        return self.planes.get(name) or [None] * len(self[name])


class Compositor:
    """Pastes a batch's faces into its frames: planes (when the frame has them) and 8-bit RGB.

    ``rendering``: what the networks see of the source (:data:`~vidinvert.video.rendering.SDR_IDENTITY`
    for SDR; an HDR source's rendering plugs in here)."""

    def __init__(self, rendering: Rendering = SDR_IDENTITY) -> None:
        self.rendering = rendering
        self._to_rgb: RGBConverter | SdrRGBConverter | None = None

    def rgb8(self, planes: Planes) -> np.ndarray:
        """``planes`` as the reader's 8-bit RGB (HxWx3 uint8, full range), with the planes' matrix and range."""
        if self._to_rgb is None or self._to_rgb.spec != planes.spec:
            self._to_rgb = rgb_converter(planes.spec, self.rendering)  # R's 8-bit rendering for HDR
        return self._to_rgb(planes.to_frame())

    def frame(self, rgb: np.ndarray, planes: Planes | None,
              fields: list[PasteField]) -> tuple[np.ndarray, Planes | None]:
        """One frame's composite from its source ``rgb``/``planes`` and its faces' fields (in paste order)."""
        if not fields:
            return rgb, planes
        if planes is None or planes.width != rgb.shape[1] or planes.height != rgb.shape[0]:
            out = rgb.copy()
            for fld in fields:
                blend_rgb(out, fld)
            return out, None
        deep = planes.copy()
        for fld in fields:
            composite_field(deep, fld, self.rendering)
        out = rgb.copy()
        for fld in fields:  # only the faces' boxes changed: convert those (with a margin), as the reader would
            self.rgb8_into(out, deep, block_box(deep, fld.box))
        return out, deep

    def rgb8_into(self, out: np.ndarray, planes: Planes, box: tuple[int, int, int, int]) -> None:
        """Write ``box`` of ``planes`` as 8-bit RGB into ``out`` (uint8 HxWx3), converting a 16-pixel-aligned
        crop with a margin of 16: swscale then gives inside ``box`` exactly what it gives on the whole frame
        (checked for 4:2:0/4:2:2/4:4:4 at 8, 10 and 12 bits in tests/test_native_samples.py)."""
        x0, y0, x1, y1 = box
        a0, b0 = max(0, (x0 - 16) // 16 * 16), max(0, (y0 - 16) // 16 * 16)
        a1, b1 = min(planes.width, -(-(x1 + 16) // 16) * 16), min(planes.height, -(-(y1 + 16) // 16) * 16)
        sx, sy = planes.sub
        crop = [planes.data[0][b0:b1, a0:a1]] + [p[b0 // sy : -(-b1 // sy), a0 // sx : -(-a1 // sx)]
                                                 for p in planes.data[1:]]
        if planes.is_rgb:
            crop = [p[b0:b1, a0:a1] for p in planes.data]
        part = self.rgb8(planes.with_data(tuple(np.ascontiguousarray(c) for c in crop)))
        out[y0:y1, x0:x1] = part[y0 - b0 : y1 - b0, x0 - a0 : x1 - a0]

    def paste(self, chunk, sel: list, img: torch.Tensor, mask: torch.Tensor, *, mode: str,
              recon: torch.Tensor | None, weights: np.ndarray,
              color_reference: torch.Tensor | None) -> dict[int, tuple[np.ndarray, Planes | None]]:
        """Paste a batch's crops ``img [n,3,S,S]`` (RGB in [-1,1]) into their source frames -> ``{position:
        (rgb, planes)}`` (the fields: :meth:`fields`)."""
        fields = self.fields(chunk, sel, img, mask, mode=mode, recon=recon, weights=weights,
                             color_reference=color_reference)
        out = {}
        for p, flds in fields.items():
            ff = chunk.frames[p]
            out[p] = self.frame(ff.frame, getattr(ff, "planes", None), flds)
        return out

    @staticmethod
    def fields(chunk, sel: list, img: torch.Tensor, mask: torch.Tensor, *, mode: str, recon: torch.Tensor | None,
               weights: np.ndarray, color_reference: torch.Tensor | None) -> dict[int, list[PasteField]]:
        """Each frame's :class:`PasteField` s in paste order, ``{position: [fields]}``. Frames with one face
        of the batch: one batched computation; frames with several: the depth-ordered fields (farther
        faces first, masks cut by nearer faces)."""
        quads = np.stack([chunk.face(k).quad for k in sel])
        rows: dict[int, list[int]] = {}
        for j, (p, _) in enumerate(sel):
            rows.setdefault(p, []).append(j)
        single = [j for js in rows.values() if len(js) == 1 for j in js]

        def take(x, js):
            return rows_of(x, js, len(sel))

        hw = chunk.frames[sel[0][0]].frame.shape[:2]
        fields: dict[int, list[PasteField]] = {}
        if single:
            flds = paste_fields(hw, quads[single], take(img, single), take(mask, single), mode=mode,
                                recon=take(recon, single), weights=weights[single],
                                color_reference=take(color_reference, single))
            fields.update({sel[j][0]: [f] if f is not None else [] for j, f in zip(single, flds)})
        for p, js in rows.items():
            if len(js) > 1:
                fields[p] = depth_fields(hw, quads[js], take(img, js), take(mask, js), mode=mode,
                                         recon=take(recon, js), weights=weights[js],
                                         color_reference=take(color_reference, js))
        return fields


def rows_of(x: torch.Tensor | None, js: list[int], n: int) -> torch.Tensor | None:
    """Rows ``js`` of a batch tensor of ``n`` rows (the tensor itself when all rows are taken)."""
    if x is None or len(js) == n:
        return x
    return x[torch.as_tensor(js, device=x.device)]


def paste_batch(run, outputs: Outputs, chunk, sel: list, src, recon, edited, region) -> torch.Tensor:
    """Paste a batch's syntheses into its frames of every output of a :class:`~vidinvert.pipeline.video.VideoRun`:
    the inversion in full, edits by ``paste_mode`` (a delta only inside the region with ``--region``),
    and the side-by-side inversion. Returns the first output's paste masks ``[n,1,r,r]`` (the warping
    error's valid set)."""
    cfg, dev, comp = run.cfg, run.inv.compute.device, run.compositor
    items = [chunk.face(k) for k in sel]
    weights = np.array([it.edit_weight for it in items])
    base_mask = first_mask = None
    if run.masker is None:
        base_mask = face_masks.outline_masks([it.landmarks_crop for it in items], cfg.mask_size, device=dev)
    for o in run.job.outputs:
        is_edit = run._is_edit(o)
        img = edited[o.name] if is_edit else recon
        mode = cfg.paste_mode if is_edit else "full"
        mask = run.masker.masks(src, img, size=cfg.mask_size) if run.masker is not None else base_mask
        if is_edit and region is not None:
            mask = combine_masks(mask, region)
        first_mask = mask if first_mask is None else first_mask
        pasted = comp.paste(chunk, sel, img, mask, mode=mode, recon=recon, weights=weights,
                            color_reference=src if (cfg.color_match and mode == "full") else None)
        outputs.put(o.name, pasted)
    if cfg.side_by_side:
        first = run.job.outputs[0]
        if not run._is_edit(first):
            inv_frames = {p: (outputs[first.name][p], None) for p, _ in sel}
        else:
            mask = run.masker.masks(src, recon, size=cfg.mask_size) if run.masker else base_mask
            inv_frames = comp.paste(chunk, sel, recon, mask, mode="full", recon=None, weights=weights,
                                    color_reference=None)
        outputs.put(SIDE_BY_SIDE, inv_frames)
    return first_mask
