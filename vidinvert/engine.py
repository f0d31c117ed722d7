"""The inversion engine: encoder + generator on one device, batched invert / edit / synthesize.

Shared by the image job, the video pipeline and ``eval``. All tensors are RGB NCHW float in
[-1,1]; latents are kept in float32 whatever the autocast dtype of the networks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vidinvert.device import Compute
from vidinvert.edit.latent import apply_edit, edit_feature_local
from vidinvert.edit.stylespace import feature_layers_mask
from vidinvert.errors import VidinvertError
from vidinvert.models.fs_encoder import prepare_encoder_input
from vidinvert.models.stylespace import StyleLayout, generator_layout
from vidinvert.weights import load_encoder, load_generator

log = logging.getLogger(__name__)


@dataclass
class Latents:
    """Per-frame codes. ``w``: ``[B, n_latent, style_dim]`` float32 (latent_avg included);
    ``f``: ``[B, C, 16, 16]`` float32, the feature code that replaces the generator's layer K;
    ``ds``: an S edit's style offset ``[B, N]`` float32 added to the styles of ``w`` (StyleSpace
    layout, :mod:`vidinvert.models.stylespace`), None for none (inverted latents have none)."""

    w: torch.Tensor
    f: torch.Tensor
    ds: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.w.shape[0])

    def cpu(self) -> Latents:
        return Latents(self.w.cpu(), self.f.cpu(), None if self.ds is None else self.ds.cpu())

    def slice(self, sl: slice) -> Latents:
        return Latents(self.w[sl], self.f[sl], None if self.ds is None else self.ds[sl])


@dataclass
class Inverter:
    """The encoder and the generator, ready on ``compute.device``, with one fixed noise set.

    ``noise`` defaults to the generator checkpoint's stored buffers: the same noise for every
    frame and every pass, which is what keeps a video temporally consistent.
    """

    encoder: torch.nn.Module
    generator: torch.nn.Module
    compute: Compute
    feature_index: int = 5
    noise: list[torch.Tensor] | None = None
    files: dict[str, Path | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.encoder = self.encoder.to(self.compute.device).eval().requires_grad_(False)
        self.generator = self.generator.to(self.compute.device).eval().requires_grad_(False)
        if self.noise is None:
            self.noise = [n.to(self.compute.device) for n in self.generator.stored_noise()]

    # ------------------------------------------------------------------------------------------
    @classmethod
    def from_files(cls, encoder: Path, generator: Path, compute: Compute) -> Inverter:
        """Load the official checkpoint files (any supported format) strictly."""
        gen, latent_avg = load_generator(generator)
        enc = load_encoder(encoder, latent_avg=latent_avg)
        _check_pair(enc, gen, encoder, generator)
        return cls(enc, gen, compute, files={"encoder": Path(encoder), "generator": Path(generator)})

    @property
    def size(self) -> int:
        return int(self.generator.size)

    @property
    def n_latent(self) -> int:
        return int(self.generator.n_latent)

    @property
    def style_dim(self) -> int:
        return int(self.generator.style_dim)

    @property
    def style_layout(self) -> StyleLayout:
        """The generator's StyleSpace layout (26 layers, 9088 channels at 1024)."""
        return generator_layout(self.generator)

    # ------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def invert(self, faces: torch.Tensor) -> Latents:
        """Aligned faces ``[B,3,S,S]`` in [-1,1] (S = generator size) -> :class:`Latents`."""
        _shape("Inverter.invert: faces", faces, (None, 3, self.size, self.size), "[B,3,S,S] RGB in [-1,1]")
        x = faces.to(self.compute.device, torch.float32)
        x256 = prepare_encoder_input(x)
        with self.compute.autocast():
            w, f = self.encoder(x256)
        return Latents(w.float(), f.float())

    @torch.inference_mode()
    def feature_at_k(self, w: torch.Tensor, ds: torch.Tensor | None = None) -> torch.Tensor:
        """G_K(w): the generator's activation at layer K from w alone (early exit); with ``ds`` (a
        style offset ``[B, N]``) G_K(s~) of the offset styles."""
        dev = self.compute.device
        with self.compute.autocast():
            g = self.generator.forward_until(w.to(dev), index=self.feature_index, noise=self.noise,
                                             style_offset=None if ds is None else ds.to(dev))
        return g.float()

    @torch.inference_mode()
    def edit(self, latents: Latents, delta: torch.Tensor | None, strength: torch.Tensor | float,
             g_k_w: torch.Tensor | None = None, *, mask16: torch.Tensor | None = None,
             keep: torch.Tensor | float = 1.0, rho: torch.Tensor | None = None,
             style_delta: torch.Tensor | None = None) -> Latents:
        """``w~ = w + strength * delta``, ``s~ = s(w~) + strength * style_delta``;
        ``F~ = F + G_K(w~, s~) - G_K(w, s)`` (eq. 1).

        delta: ``[n_latent, style_dim]`` (``EDIT_STEP * d``, or a sum of such for combined edits) or None
        for an S edit alone; style_delta: ``[N]`` in style units (StyleSpace layout) or None, added on
        top of the styles of the edited w (the w+ edit first, then S) and kept in ``ds``;
        strength: float or ``[B]``. Rows with strength 0 keep ``w``, ``F`` (and ``ds``) exactly.
        ``g_k_w`` may be passed when G_K(w, s) is already known (several edits of one inversion).
        An S edit that moves no conv layer before K (and no w+ part) leaves G_K unchanged, so F too.
        Local and stronger edits (:func:`~vidinvert.edit.latent.edit_feature_local`): ``mask16``
        ``[B,1,16,16]`` in [0,1] restricts the feature change to a region; ``keep`` (B, float or
        ``[B]``) below 1 pulls F towards G_K(w) by ``(1 - B) * rho`` (``rho`` ``[B]``, default 1).
        """
        self.check_latents("Inverter.edit", latents)
        if delta is None and style_delta is None:
            raise VidinvertError("Inverter.edit: give a w+ delta, a style delta or both")
        if delta is not None:
            _shape("Inverter.edit: delta", delta, (self.n_latent, self.style_dim), "[n_latent, style_dim]")
        s = torch.as_tensor(strength, dtype=torch.float32, device=latents.w.device)
        if s.ndim == 0:
            s = s.expand(len(latents))
        if s.shape != (len(latents),):
            raise VidinvertError(f"Inverter.edit: strength must be a number or [B={len(latents)}], got {list(s.shape)}")
        unchanged = s == 0
        if bool(unchanged.all()):
            return Latents(latents.w.clone(), latents.f.clone(), None if latents.ds is None else latents.ds.clone())
        w_edit = latents.w.clone() if delta is None else apply_edit(latents.w, delta, s)
        w_edit = torch.where(unchanged.view(-1, 1, 1), latents.w, w_edit)
        ds_edit = self._edited_offset(latents, style_delta, s, unchanged)
        early = feature_layers_mask(self.style_layout, self.feature_index)
        moves_g_k = delta is not None or bool(style_delta[early.to(style_delta.device)].any())
        if not moves_g_k:  # nothing before K moves: G_K, hence F, unchanged
            g_k_w = self.feature_at_k(latents.w, latents.ds) if g_k_w is None else g_k_w
            g_k_edit = g_k_w
        elif g_k_w is None:  # both in one batch
            pair = None
            if ds_edit is not None:
                base = torch.zeros_like(ds_edit) if latents.ds is None else latents.ds.to(ds_edit.device)
                pair = torch.cat([base, ds_edit])
            g_k_w, g_k_edit = self.feature_at_k(torch.cat([latents.w, w_edit]), pair).chunk(2)
        else:
            g_k_edit = self.feature_at_k(w_edit, ds_edit)
        f_edit = edit_feature_local(latents.f, g_k_w.to(latents.f.device), g_k_edit.to(latents.f.device), unchanged,
                                    mask16=mask16, keep=keep, rho=rho)
        return Latents(w_edit, f_edit, ds_edit)

    def _edited_offset(self, latents: Latents, style_delta: torch.Tensor | None, s: torch.Tensor,
                       unchanged: torch.Tensor) -> torch.Tensor | None:
        """``ds + strength * style_delta`` ``[B, N]`` (rows with strength 0 keep ``ds``; None stays None
        without a style delta)."""
        if style_delta is None:
            return None if latents.ds is None else latents.ds.clone()
        n = self.style_layout.total
        _shape("Inverter.edit: style_delta", style_delta, (n,), "[N] (the StyleSpace layout)")
        dev = latents.w.device
        base = torch.zeros(len(latents), n, device=dev) if latents.ds is None else latents.ds.to(dev)
        out = base + s.view(-1, 1) * style_delta.to(device=dev, dtype=torch.float32)
        return torch.where(unchanged.view(-1, 1), base, out)

    @torch.inference_mode()
    def synthesize(self, latents: Latents) -> torch.Tensor:
        """``G(w, F)``: images ``[B,3,S,S]`` float32, nominally [-1,1] (not clamped)."""
        self.check_latents("Inverter.synthesize", latents)
        with self.compute.autocast():
            img = self.generator(
                latents.w.to(self.compute.device),
                latents.f.to(self.compute.device),
                feature_index=self.feature_index,
                noise=self.noise,
                style_offset=None if latents.ds is None else latents.ds.to(self.compute.device),
            )
        return img.float()


    def check_latents(self, where: str, latents: Latents) -> None:
        """``w`` ``[B, n_latent, style_dim]`` and ``f`` ``[B, C, 16, 16]`` of this generator, the same B."""
        g = self.generator
        _shape(f"{where}: w", latents.w, (None, self.n_latent, self.style_dim), "[B, n_latent, style_dim]")
        _shape(f"{where}: f", latents.f, (latents.w.shape[0], g.channels[16], 16, 16), "[B, C, 16, 16]")
        if latents.ds is not None:
            _shape(f"{where}: ds", latents.ds, (latents.w.shape[0], self.style_layout.total), "[B, N]")


def _shape(what: str, t: torch.Tensor, want: tuple, meaning: str) -> None:
    """One line when ``t``'s shape is not ``want`` (None: any size)."""
    shape = tuple(getattr(t, "shape", ()))
    if len(shape) != len(want) or any(w is not None and s != w for s, w in zip(shape, want)):
        wanted = "[" + ",".join("*" if w is None else str(w) for w in want) + "]"
        raise VidinvertError(f"{what} must be {meaning} = {wanted}, got {list(shape)}")


def _check_pair(enc, gen, enc_path, gen_path) -> None:

    n_styles = getattr(enc, "n_styles", None)
    if n_styles is not None and n_styles != gen.n_latent:
        raise VidinvertError(
            f"encoder {enc_path} predicts {n_styles} style rows but generator {gen_path} "
            f"({gen.size} px) takes {gen.n_latent}: use an encoder trained for this generator"
        )
    fc = getattr(enc, "feature_channels", None)
    if fc is not None and fc != gen.channels[16]:
        raise VidinvertError(
            f"encoder {enc_path} predicts a {fc}-channel feature code but generator {gen_path} has "
            f"{gen.channels[16]} channels at 16x16: use an encoder trained for this generator"
        )
