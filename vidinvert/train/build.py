"""Resolve the files a training configuration needs and build its networks.

:func:`resolve_files` runs before anything else (before the run folder is touched): every
network with a non-zero loss weight must have its weights, else a
:class:`~vidinvert.errors.VidinvertError` names the file, where to put it and how to get it.
A loss weight of 0 never resolves nor builds its network (training on cars needs no face models).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from vidinvert.errors import VidinvertError
from vidinvert.models import fs_encoder, stylegan2
from vidinvert.train.config import TrainConfig
from vidinvert.train.losses import (
    IdentityLoss,
    MultiScaleLPIPS,
    ParsingLoss,
    build_bisenet,
    build_lpips,
    freeze,
    tiny_identity_network,
)
from vidinvert.weights import load_arcface, load_generator, read_checkpoint, resolve_file

log = logging.getLogger(__name__)

RANDOM_IDENTITY = "random-tiny"
RANDOM = "random"


@dataclass
class Networks:
    """Everything a training step uses. Only ``encoder`` trains."""

    generator: nn.Module
    latent_avg: Tensor  # [n_latent, style_dim] or [style_dim]
    encoder: nn.Module
    lpips: MultiScaleLPIPS | None = None
    identity: IdentityLoss | None = None
    parsing: ParsingLoss | None = None
    files: dict[str, Path | None] = field(default_factory=dict)


def _resolve(arg: str, default_name: str, key: str, weights_dir: Path | None) -> Path:
    """A registry name, a path or a bare file name in the weights folders -> an existing file."""
    try:
        return resolve_file(arg, default_name, weights_dir)
    except VidinvertError as exc:
        raise VidinvertError(f"config key {key}={arg}: {exc.message}") from None


def resolve_files(cfg: TrainConfig, weights_dir: Path | None = None) -> dict[str, Path | None]:
    """Paths of every weights file the configuration needs (None: built at random or not needed).

    Every missing file is reported at once, in one error (each with where to place it).
    """
    m, lo = cfg.model, cfg.loss
    if m.encoder_init == "arcface" and m.encoder != "iresnet50":
        raise VidinvertError("config key model.encoder_init=arcface needs model.encoder=iresnet50 (use random for tiny)")
    if lo.lpips > 0 and lo.lpips_net not in ("alex", RANDOM):
        raise VidinvertError(f"config key loss.lpips_net: choose alex or random, got {lo.lpips_net!r}")
    wanted: dict[str, tuple[str, str, str] | None] = {
        "generator": None if m.generator == "tiny" else (m.generator, "stylegan2-ffhq", "model.generator"),
        "encoder_init": (
            None if m.encoder_init == RANDOM
            else ("arcface", "arcface", "model.encoder_init") if m.encoder_init == "arcface"
            else (m.encoder_init, "fs-encoder", "model.encoder_init")
        ),
        "lpips": (("lpips-alexnet", "lpips-alexnet", "loss.lpips_net (loss.lpips > 0)")
                  if lo.lpips > 0 and lo.lpips_net == "alex" else None),
        "identity": ((lo.identity_net, "arcface", "loss.identity_net (loss.identity > 0)")
                     if lo.identity > 0 and lo.identity_net != RANDOM_IDENTITY else None),
        "parsing": ((lo.parsing_net, "bisenet-official", "loss.parsing_net (loss.parsing > 0)")
                    if lo.parsing > 0 and lo.parsing_net != RANDOM else None),
    }
    files: dict[str, Path | None] = {}
    missing: dict[str, tuple[list[str], str]] = {}  # arg -> (config keys, message)
    for name, want in wanted.items():
        files[name] = None
        if want is None:
            continue
        arg, default, key = want
        try:
            files[name] = _resolve(arg, default, key, weights_dir)
        except VidinvertError as exc:
            keys, message = missing.setdefault(arg, ([], exc.message.split(": ", 1)[-1]))
            keys.append(f"{key}={arg}")
    if missing:
        raise VidinvertError(
            f"{len(missing)} weights file(s) missing for this configuration (a loss weight of 0 needs none): "
            + " | ".join(f"{', '.join(keys)}: {message}" for keys, message in missing.values())
        )
    return files


def arcface_to_encoder_trunk(arcface_sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """ArcFace IResNet keys -> encoder trunk keys (conv1/bn1/prelu -> conv.0/1/2, layerN -> block_N)."""
    stem = {"conv1.": "conv.0.", "bn1.": "conv.1.", "prelu.": "conv.2."}
    out = {}
    for k, v in arcface_sd.items():
        for a, b in stem.items():
            if k.startswith(a):
                out[b + k[len(a):]] = v
        if k.startswith("layer"):
            out["block_" + k[len("layer"):]] = v
    return out


def _state_dict(obj, path: Path) -> dict[str, Tensor]:
    if isinstance(obj, dict) and all(isinstance(v, Tensor) for v in obj.values()):
        return obj
    for key in ("state_dict", "enc_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            return obj[key]
    raise VidinvertError(f"{path} does not hold a state dict")


def build_generator(cfg: TrainConfig, path: Path | None, device: torch.device) -> tuple[nn.Module, Tensor]:
    if path is None:
        gen = stylegan2.tiny(cfg.model.generator_seed)
        latent_avg = gen.mean_latent(2000, seed=cfg.model.generator_seed)
    else:
        gen, latent_avg = load_generator(path)
    k = cfg.model.feature_index
    if 4 * 2 ** (k // 2) != 16:
        raise VidinvertError(f"config key model.feature_index={k}: F is 16x16 and inference injects it at K=5: use 5")
    return freeze(gen).to(device), latent_avg.float().to(device)


def build_encoder(cfg: TrainConfig, generator: nn.Module, latent_avg: Tensor, path: Path | None) -> nn.Module:
    """The trainable encoder matched to ``generator`` (CPU, train mode, latent_avg set)."""
    dims = {"n_styles": generator.n_latent, "style_dim": generator.style_dim,
            "feature_channels": generator.channels[16]}
    if cfg.model.encoder == "tiny":
        enc = fs_encoder.tiny(cfg.seed, **dims)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            enc = fs_encoder.FeatureStyleEncoder(**dims)
    if path is not None:
        sd = _state_dict(read_checkpoint(path), path)
        if cfg.model.encoder_init == "arcface":
            trunk = arcface_to_encoder_trunk(sd)
            missing, unexpected = enc.load_state_dict(trunk, strict=False)
            bad = [k for k in missing if k.startswith(("conv.", "block_"))]
            if bad or unexpected:
                raise VidinvertError(f"{path} is not an ArcFace IResNet-50 backbone (missing {bad[:3]}, unexpected {unexpected[:3]})")
        else:
            try:
                enc.load_state_dict(sd, strict=True)
            except RuntimeError as exc:
                raise VidinvertError(f"encoder file {path} does not fit this generator's encoder: {str(exc).splitlines()[0]}") from None
    enc.set_latent_avg(latent_avg.detach().cpu())
    return enc.train()


def build_loss_networks(cfg: TrainConfig, files: dict[str, Path | None], device: torch.device) -> dict[str, nn.Module | None]:
    lo = cfg.loss
    nets: dict[str, nn.Module | None] = {"lpips": None, "identity": None, "parsing": None}
    if lo.lpips > 0:
        nets["lpips"] = build_lpips(lo.lpips_net, files.get("lpips"), lo.lpips_scales, seed=cfg.seed).to(device)
    if lo.identity > 0:
        if lo.identity_net == RANDOM_IDENTITY:
            arc = tiny_identity_network(cfg.seed, lo.identity_size)
        else:
            arc = load_arcface(files["identity"])
            if getattr(arc, "input_size", lo.identity_size) != lo.identity_size:
                raise VidinvertError(
                    f"config key loss.identity_size={lo.identity_size}: {files['identity']} takes {arc.input_size} px input"
                )
        nets["identity"] = IdentityLoss(arc, lo.identity_size).to(device)
    if lo.parsing > 0:
        nets["parsing"] = ParsingLoss(build_bisenet(files.get("parsing"), seed=cfg.seed), lo.parsing_size).to(device)
    return nets


def build_networks(cfg: TrainConfig, files: dict[str, Path | None], device: torch.device) -> Networks:
    gen, latent_avg = build_generator(cfg, files.get("generator"), device)
    enc = build_encoder(cfg, gen, latent_avg, files.get("encoder_init")).to(device)
    loss_nets = build_loss_networks(cfg, files, device)
    if loss_nets["lpips"] is not None:
        loss_nets["lpips"].check_size(gen.size)
    return Networks(generator=gen, latent_avg=latent_avg, encoder=enc, files=files, **loss_nets)


__all__ = [
    "Networks",
    "arcface_to_encoder_trunk",
    "build_encoder",
    "build_generator",
    "build_loss_networks",
    "build_networks",
    "resolve_files",
]
