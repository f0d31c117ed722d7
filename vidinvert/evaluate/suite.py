"""The metric suite of the benchmark and one evaluated item's record.

Between an aligned source crop and its reconstruction ``G(w, F)``, both converted to [0,1]
(clamped and rounded to 8-bit levels, as the saved images would be): SSIM, PSNR, MSE, LPIPS and
ID (cosine of the ArcFace embeddings of the two crops; with dlib, whether the two descriptors lie
within 0.6, the same person). Identity embeddings are also kept per frame for the identity
consistency of a video (the paper's eq. 9; with dlib, the share of frames within 0.6 of the first).

Ranges follow the paper's tables, which only agree with themselves this way: SSIM and PSNR on
images in [0,1], MSE on the same images mapped to [-1,1] (4x the [0,1] MSE), so per image
``PSNR = 10 log10(4 / MSE)`` (Table 3: 26.64 dB with MSE 0.009). :meth:`MetricSuite.conventions`
states them in ``summary.json``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vidinvert.errors import VidinvertError
from vidinvert.metrics.identity import (
    DLIB_SAME_PERSON,
    IdentityEmbedder,
    make_identity_embedder,
    measure_label,
    paired_identity,
)
from vidinvert.metrics.image import LPIPSMetric, load_lpips, mse, psnr, ssim, to_unit_interval
from vidinvert.metrics.warping import LABEL as WARP_LABEL

log = logging.getLogger(__name__)

PAIR_METRICS = ("ssim", "psnr", "mse", "lpips", "id")
VIDEO_METRICS = ("ic_source", "ic_inversion", "tl_id", "tg_id", "warp_source", "warp_inversion")
HIGHER_IS_BETTER = {"ssim": True, "psnr": True, "mse": False, "lpips": False, "id": True,
                    "ic_source": True, "ic_inversion": True, "tl_id": True, "tg_id": True,
                    "warp_source": False, "warp_inversion": False}


@dataclass
class MetricSuite:
    """SSIM/PSNR/MSE always; LPIPS and ID when their networks are available (None otherwise).

    ``metric_size``: when set, both images are resized (antialiased bilinear) to this size
    before SSIM/PSNR/MSE/LPIPS; the identity network always sees the full crops.
    """

    lpips: LPIPSMetric | None
    identity: IdentityEmbedder | None
    metric_size: int | None = None
    quantize: bool = True

    @classmethod
    def load(cls, weights_dir: Path | str | None, device: torch.device, *, metric_size: int | None = None,
             lpips: bool = True, identity: bool = True) -> MetricSuite:
        """LPIPS from ``lpips-alexnet`` and the identity embedder (ArcFace, else dlib), when found."""
        lp = load_lpips(weights_dir, device) if lpips else None
        emb = None
        if identity:
            try:
                emb = make_identity_embedder(Path(weights_dir) if weights_dir else None, device)
            except (ImportError, VidinvertError) as exc:
                log.warning(f"ID and identity consistency are left out: no identity network ({exc})")
        return cls(lp, emb, metric_size)

    def describe(self) -> dict[str, Any]:
        return {
            "lpips": self.lpips.name if self.lpips is not None else None,
            "identity": self.identity.name if self.identity is not None else None,
            "identity_measure": measure_label(self.identity.measure) if self.identity is not None else None,
            "metric_size": self.metric_size,
            "quantize_8bit": self.quantize,
            "ssim": "gaussian sigma 1.5, 11x11, K1 0.01, K2 0.03, population covariance, data range 1",
            "mse": "images in [-1,1]",
        }

    def conventions(self) -> dict[str, str]:
        """The range or network behind each metric (``summary.json``'s ``conventions`` block)."""
        size = f", resized to {self.metric_size} px" if self.metric_size else ""
        levels = "8-bit levels" if self.quantize else "unrounded"
        out = {
            "ssim": f"images in [0,1] ({levels}{size}), data range 1",
            "psnr": f"images in [0,1] ({levels}{size}): 10 log10(1 / MSE[0,1]) = 10 log10(4 / mse)",
            "mse": f"images in [-1,1] ({levels}{size}), mean over pixels and channels",
            "lpips": (f"{self.lpips.name} (AlexNet trunk, v0.1 heads) on images in [-1,1]{size}"
                      if self.lpips is not None else "not computed"),
        }
        if self.identity is None:
            out["id"] = "not computed"
        elif self.identity.measure == "distance":
            out["id"] = (f"share of frames whose {self.identity.name} descriptors of source and reconstruction "
                         f"lie within {DLIB_SAME_PERSON} (same person)")
            out["identity_consistency"] = (f"share of frames within {DLIB_SAME_PERSON} of the first frame's "
                                           f"{self.identity.name} descriptor (eq. 9 with dlib's same-person test)")
        else:
            out["id"] = f"cosine of {self.identity.name} embeddings of source and reconstruction (full crops)"
            out["identity_consistency"] = "mean cosine to the first frame's embedding (eq. 9)"
        if self.identity is None or self.identity.measure != "cosine":
            out["tl_id"] = out["tg_id"] = "not computed (needs ArcFace weights)"
        else:
            out["tl_id"] = out["tg_id"] = ("STIT TL-ID / TG-ID of the inversion relative to the source (ArcFace "
                                           "cosines; pairs with a source cosine at most 0.1 skipped and counted; "
                                           "pairs within runs of consecutive frames)")
        out["warping_error"] = (f"{WARP_LABEL}: Lai et al.'s warping error with DIS flow on the source crops and the "
                                "landmark outline mask as the valid set; not comparable to published figures")
        if self.identity is not None:
            out["identity_network"] = self.identity.name
            out["identity_measure"] = measure_label(self.identity.measure)
        return out

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        if self.metric_size is None or x.shape[-1] == self.metric_size:
            return x
        return F.interpolate(x, size=(self.metric_size, self.metric_size), mode="bilinear",
                             antialias=x.shape[-1] > self.metric_size, align_corners=False).clamp(0, 1)

    @torch.inference_mode()
    def compare(self, source: torch.Tensor, recon: torch.Tensor) -> tuple[dict[str, np.ndarray], torch.Tensor | None]:
        """Source crops and reconstructions ``[B,3,S,S]`` in [-1,1] -> per-image metric arrays ``[B]``
        (float64; ``lpips``/``id`` missing when unavailable) and the source embeddings ``[B,D]``
        (None without an identity network). The reconstructions' embeddings are in ``values['_emb_recon']``.
        """
        a = to_unit_interval(source, quantize=self.quantize)
        b = to_unit_interval(recon.to(source.device), quantize=self.quantize)
        a_m, b_m = self._resize(a), self._resize(b)
        out: dict[str, Any] = {
            "ssim": _host(ssim(a_m, b_m)),
            "psnr": _host(psnr(a_m, b_m)),
            "mse": _host(mse(a_m.double() * 2 - 1, b_m.double() * 2 - 1)),  # the paper's MSE: images in [-1,1]
        }
        if self.lpips is not None:
            out["lpips"] = _host(self.lpips(a_m, b_m))
        emb_src = None
        if self.identity is not None:
            # the embedder takes [-1,1]; give it the same 8-bit images the other metrics saw
            emb_src = self.identity.embed(a * 2 - 1)
            emb_rec = self.identity.embed(b * 2 - 1)
            out["id"] = _host(paired_identity(emb_src, emb_rec, self.identity.measure))
            out["_emb_recon"] = emb_rec
        return out, emb_src


def _host(t: torch.Tensor) -> np.ndarray:
    """Per-image values on the compute device (any dtype) -> float64 numpy array on the host."""
    return t.detach().to("cpu", torch.float64).numpy()


def _clean(v: float | None) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


@dataclass
class ItemResult:
    """One evaluated video or image.

    status: ``ok`` | ``no-face`` (no frame had a face) | ``unreadable`` (``error`` says why).
    ``metrics``: per-item means of the pair metrics (None when not computed; PSNR of identical
    images is inf and averaged as such). ``per_frame``: the per-frame values, in frame order,
    for the frames in ``frame_indices``. ``ic_source``/``ic_inversion``: identity consistency.
    ``tl_id``/``tg_id``: the inversion's TL-ID / TG-ID (ArcFace only); ``warp_source``/
    ``warp_inversion``: warping errors; ``temporal``: the video's report (per-frame lists, pair
    counts; :func:`~vidinvert.pipeline.report.build_report`), drawn as the video's figure.
    """

    key: str
    path: str
    kind: str = "video"
    status: str = "ok"
    error: str | None = None
    frames: int = 0
    evaluated: int = 0
    detected: int = 0
    interpolated: int = 0
    passthrough: int = 0
    metrics: dict[str, float | None] = field(default_factory=dict)
    per_frame: dict[str, list[float]] = field(default_factory=dict)
    frame_indices: list[int] = field(default_factory=list)
    ic_source: float | None = None
    ic_inversion: float | None = None
    tl_id: float | None = None
    tg_id: float | None = None
    warp_source: float | None = None
    warp_inversion: float | None = None
    temporal: dict | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["metrics"] = {k: _clean(v) for k, v in self.metrics.items()}
        d["per_frame"] = {k: [_clean(x) for x in v] for k, v in self.per_frame.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ItemResult:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def row(self) -> dict[str, Any]:
        """The flat CSV row."""
        r: dict[str, Any] = {"key": self.key, "path": self.path, "status": self.status, "error": self.error or "",
                             "frames": self.frames, "evaluated": self.evaluated, "detected": self.detected,
                             "interpolated": self.interpolated, "passthrough": self.passthrough}
        for m in PAIR_METRICS:
            r[m] = _fmt(self.metrics.get(m))
        if self.kind == "video":
            for m in VIDEO_METRICS:
                r[m] = _fmt(getattr(self, m))
        r["seconds"] = f"{self.seconds:.3f}"
        return r


def _fmt(v: float | None) -> str:
    if v is None:
        return ""
    return repr(float(v)) if math.isfinite(v) else str(float(v))


class MetricAccumulator:
    """Per-frame values of one item, appended batch by batch, in frame order."""

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = {}
        self.emb_src: list[torch.Tensor] = []
        self.emb_rec: list[torch.Tensor] = []

    def add(self, values: dict[str, Any], emb_src: torch.Tensor | None) -> None:
        for k, v in values.items():
            if k.startswith("_"):
                continue
            self.values.setdefault(k, []).extend(float(x) for x in np.asarray(v).reshape(-1))
        if emb_src is not None:
            self.emb_src.append(emb_src.float().cpu())
            self.emb_rec.append(values["_emb_recon"].float().cpu())

    def means(self) -> dict[str, float | None]:
        return {k: (float(np.mean(v)) if v else None) for k, v in self.values.items()}

    def embeddings(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if not self.emb_src:
            return None, None
        return torch.cat(self.emb_src), torch.cat(self.emb_rec)
