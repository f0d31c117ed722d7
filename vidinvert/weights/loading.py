"""Build the networks from the official checkpoint files, strictly.

Each loader reads the file safely (:func:`~vidinvert.weights.checkpoint.read_checkpoint`),
recognises its layout, infers the architecture from the tensor shapes (so 512 px car generators
and tiny test models load too), checks every key and shape against the model it builds and only
then calls ``load_state_dict(strict=True)``. A file of another kind (an encoder given as the
generator, ...) or one that does not fit gets a one-line VidinvertError naming the file, the
kind expected, the missing/unexpected keys and the first shape mismatch.

The networks are built on the ``meta`` device (no throw-away random initialisation, no memory)
and the file's tensors are assigned to them (``load_state_dict(assign=True)``): a ``.pt``/``.pth``
zip file is memory-mapped by :func:`read_checkpoint`, so loading reads nothing up front; pages are
read on first use. The models hold the same values (same dtype, contiguous) as a copy into a
randomly initialised module would; buffers that are not in the file are rebuilt as their
constructors make them (see :func:`_materialize_rest`).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vidinvert.errors import VidinvertError
from vidinvert.models.fs_encoder import FeatureStyleEncoder
from vidinvert.models.iresnet import IResNet
from vidinvert.models.stylegan2 import Generator, default_channels
from vidinvert.models.stylespace import layout_for
from vidinvert.weights.checkpoint import read_checkpoint

log = logging.getLogger(__name__)

__all__ = ["build_on_meta", "classify_state_dict", "load_arcface", "load_encoder", "load_generator",
           "read_generator_layout", "strict_load"]

MEAN_LATENT_SAMPLES = 10_000
_SHOW_KEYS = 3

_KIND_NAMES = {
    "generator": "a StyleGAN2 generator",
    "psp": "a pSp checkpoint (pSp encoder + StyleGAN2 generator)",
    "encoder": "a Feature-Style encoder",
    "arcface": "an ArcFace IResNet",
    "discriminator": "a StyleGAN2 discriminator",
    "bisenet": "a BiSeNet face-parsing model",
    "retinaface": "a RetinaFace detector",
    "irse50": "an IR-SE50 face-recognition model",
    "torchvision": "a torchvision classification network",
    "unknown": "an unrecognised state dict",
}
_HINTS = {
    "generator": "pass it as --generator",
    "psp": "pass it as --generator (its 'decoder.' part is the generator)",
    "encoder": "pass it as --encoder",
    "arcface": "it is the identity network used for metrics and training",
}


# ---------------------------------------------------------------------------------------------
# Recognising what a file holds
# ---------------------------------------------------------------------------------------------
def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, Tensor) for v in obj.values())


def classify_state_dict(sd: Mapping[str, Any]) -> str:
    """Guess which network a flat state dict belongs to: one of the keys of ``_KIND_NAMES``."""
    keys = [k for k in sd if isinstance(k, str)]
    has = set(keys).__contains__

    def starts(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in keys)

    if starts("decoder.") and starts("encoder."):
        return "psp"
    if has("input.input") or has("to_rgb1.conv.weight") or (starts("style.1.") and starts("to_rgbs.")):
        return "generator"
    if starts("content_layer.") or (starts("styles.") and starts("block_1.")):
        return "encoder"
    if has("fc.weight") and has("features.weight") and starts("layer1."):
        return "arcface"
    if starts("final_linear.") or starts("convs.0.0."):
        return "discriminator"
    if starts("cp.") or starts("ffm."):
        return "bisenet"
    if starts("ClassHead.") or starts("BboxHead.") or starts("body.conv1"):
        return "retinaface"
    if starts("input_layer.") and starts("body."):
        return "irse50"
    if has("features.0.weight") and starts("classifier."):
        return "torchvision"
    return "unknown"


def _strip_common_prefix(sd: Mapping[str, Any], prefixes=("module.",)) -> dict:
    for p in prefixes:
        if sd and all(k.startswith(p) for k in sd):
            return {k[len(p):]: v for k, v in sd.items()}
    return dict(sd)


def _wrong_kind(path: Path, found: str, expected: str) -> VidinvertError:
    hint = _HINTS.get(found)
    tail = f"; {hint}" if hint else ""
    return VidinvertError(
        f"{path} holds {_KIND_NAMES[found]}, not {_KIND_NAMES[expected]} checkpoint{tail}"
    )


def _not_a_dict(path: Path, obj: Any, expected: str) -> VidinvertError:
    return VidinvertError(
        f"{path} holds a {type(obj).__name__}, not {_KIND_NAMES[expected]} checkpoint (a dict of tensors)"
    )


# ---------------------------------------------------------------------------------------------
# Strict loading with readable errors
# ---------------------------------------------------------------------------------------------
def _shape(t: Any) -> str:
    return str(list(t.shape)) if isinstance(t, Tensor) else type(t).__name__


def _keys_text(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOW_KEYS])
    more = f", ... {len(keys) - _SHOW_KEYS} more" if len(keys) > _SHOW_KEYS else ""
    return f"{shown}{more}"


def strict_load(model: nn.Module, sd: Mapping[str, Any], path: Path | str, kind: str, arch: str = "") -> None:
    """Load ``sd`` into ``model`` with ``strict=True`` after checking every key and shape.

    Missing ``num_batches_tracked`` counters alone (unused in eval mode) are filled with zeros.
    A model built on the ``meta`` device (see :func:`build_on_meta`) gets the file's tensors
    assigned (cast to the module's dtype, made contiguous) instead of copied.
    Raises VidinvertError naming the file, the kind, missing/unexpected keys (first few + count)
    and the first shape mismatch (key, expected, found).
    """
    expected = model.state_dict()
    sd = dict(sd)
    missing = [k for k in expected if k not in sd]
    if missing and all(k.endswith("num_batches_tracked") for k in missing):
        for k in missing:
            e = expected[k]
            sd[k] = torch.zeros(e.shape, dtype=e.dtype, device="cpu" if e.is_meta else e.device)
        log.info("%s: filled %d missing BatchNorm counters", path, len(missing))
        missing = []
    unexpected = [k for k in sd if k not in expected]
    mismatch = next(
        (k for k in expected if k in sd and (not isinstance(sd[k], Tensor) or sd[k].shape != expected[k].shape)),
        None,
    )
    if missing or unexpected or mismatch:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({_keys_text(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({_keys_text(unexpected)})")
        if mismatch:
            parts.append(
                f"first shape mismatch {mismatch}: expected {_shape(expected[mismatch])}, found {_shape(sd[mismatch])}"
            )
        arch_text = f" ({arch})" if arch else ""
        raise VidinvertError(f"{path} does not fit {_KIND_NAMES[kind]}{arch_text}: " + "; ".join(parts))
    assign = any(t.is_meta for t in (*model.parameters(), *model.buffers()))
    if assign:
        sd = _assignable(sd, expected)
    try:
        model.load_state_dict(sd, strict=True, assign=assign)
    except RuntimeError as exc:  # pragma: no cover - the checks above cover what strict loading checks
        raise VidinvertError(f"{path} does not fit {_KIND_NAMES[kind]}: {' '.join(str(exc).split())[:300]}") from exc
    if assign:
        _materialize_rest(model)


def build_on_meta(factory: Any, **config: Any) -> nn.Module:
    """``factory(**config)`` built on the ``meta`` device: shapes only, no initialisation, no memory.

    Give it to :func:`strict_load`, which assigns the file's tensors and rebuilds the buffers
    that are not in the file.
    """
    with torch.device("meta"):
        return factory(**config)


def _assignable(sd: Mapping[str, Any], expected: Mapping[str, Tensor]) -> dict:
    """The tensors of ``sd`` as a copy into ``expected`` would leave them: the module's dtype,
    contiguous, detached, and no two entries sharing memory (a shared one is cloned)."""
    out, seen = {}, set()
    for k, v in sd.items():
        t = v.detach().to(expected[k].dtype).contiguous()
        if t.numel() and t.data_ptr() in seen:
            t = t.clone()
        elif t.numel():
            seen.add(t.data_ptr())
        out[k] = t
    return out


def _materialize_rest(model: nn.Module) -> None:
    """Rebuild the tensors still on ``meta`` after an assigning load: the non-persistent buffers.

    A module that owns such buffers rebuilds them in ``reset_non_persistent_buffers(device)``
    (as its constructor does); a meta tensor left after that is a programming error.
    """
    device = next((t.device for t in (*model.parameters(), *model.buffers()) if not t.is_meta), None)
    device = device or torch.device("cpu")
    for m in model.modules():
        if any(b is not None and b.is_meta for b in m._buffers.values()):
            reset = getattr(m, "reset_non_persistent_buffers", None)
            if reset is not None:
                reset(device)
    left = [n for n, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
    if left:
        raise RuntimeError(f"{type(model).__name__}: tensors not in the file are left uninitialised: {left[:3]}")


def _device(map_location: Any) -> torch.device | None:
    if map_location is None or callable(map_location) or isinstance(map_location, dict):
        return None
    return torch.device(map_location)


def _finish(model: nn.Module, map_location: Any) -> nn.Module:
    dev = _device(map_location)
    if dev is not None and dev.type != "cpu":
        model = model.to(dev)
    return model.eval()


def _count(sd: Mapping[str, Any], pattern: str) -> int:
    """1 + the largest integer N among keys matching ``pattern`` (with one (\\d+) group), or 0."""
    rx = re.compile(pattern)
    best = -1
    for k in sd:
        m = rx.match(k)
        if m:
            best = max(best, int(m.group(1)))
    return best + 1


def _dim(sd: Mapping[str, Any], key: str, axis: int, default: int) -> int:
    t = sd.get(key)
    if isinstance(t, Tensor) and t.ndim > axis:
        return int(t.shape[axis])
    return default


# ---------------------------------------------------------------------------------------------
# Generator
# ---------------------------------------------------------------------------------------------
_ROSINALITY_BASE = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}


def _rosinality_channels(cm: int, size: int) -> dict[int, int]:
    return {r: (c if r <= 32 else c * cm) for r, c in _ROSINALITY_BASE.items() if r <= size}


def infer_generator_config(sd: Mapping[str, Any]) -> dict:
    """Generator(**config) arguments read from a rosinality-layout state dict's shapes.

    size from the number of ToRGB layers (or convs, or noises); style_dim from the mapping network;
    n_mlp from the number of mapping layers; the channel table from the conv widths, given as a
    ``channel_multiplier`` when it matches rosinality's table, else as explicit ``channels``.
    """
    n_rgb = _count(sd, r"to_rgbs\.(\d+)\.")
    n_convs = _count(sd, r"convs\.(\d+)\.")
    n_noise = _count(sd, r"noises\.noise_(\d+)$")
    if n_rgb:
        log_size = n_rgb + 2
    elif n_convs:
        log_size = n_convs // 2 + 2
    elif n_noise:
        log_size = (n_noise - 1) // 2 + 2
    else:
        log_size = 10
    size = 2**log_size
    n_mlp = _count(sd, r"style\.(\d+)\.weight$") - 1
    n_mlp = n_mlp if n_mlp > 0 else 8
    style_dim = _dim(sd, "style.1.weight", 1, _dim(sd, "conv1.conv.modulation.weight", 1, 512))
    channels = {4: _dim(sd, "input.input", 1, _dim(sd, "conv1.conv.weight", 1, 512))}
    for i in range(log_size - 2):
        res = 2 ** (i + 3)
        default = _ROSINALITY_BASE.get(res, 16) * (1 if res <= 32 else 2)
        channels[res] = _dim(
            sd, f"convs.{2 * i}.conv.weight", 1, _dim(sd, f"to_rgbs.{i}.conv.weight", 2, default)
        )
    config: dict[str, Any] = {"size": size, "style_dim": style_dim, "n_mlp": n_mlp}
    for cm in (2, 1, 4):
        if channels == _rosinality_channels(cm, size):
            config["channel_multiplier"] = cm
            return config
    config["channels"] = channels
    return config


def _generator_parts(obj: Any, path: Path) -> tuple[dict, Tensor | None, str]:
    """(state dict, stored latent_avg or None, layout name) from any supported generator file."""
    if not isinstance(obj, Mapping):
        raise _not_a_dict(path, obj, "generator")
    if "g_ema" in obj and isinstance(obj["g_ema"], Mapping):
        return _strip_common_prefix(obj["g_ema"]), obj.get("latent_avg"), "rosinality"
    if "enc_state_dict" in obj:
        raise _wrong_kind(path, "encoder", "generator")
    if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        inner = obj["state_dict"]
        if any(k.startswith("decoder.") for k in inner):
            sd = {k[len("decoder."):]: v for k, v in inner.items() if k.startswith("decoder.")}
            return sd, obj.get("latent_avg"), "psp"
        return _strip_common_prefix(inner), obj.get("latent_avg"), "state dict"
    flat = dict(obj)
    latent_avg = flat.pop("latent_avg", None)
    for prefix, layout in (("g_ema.", "flat rosinality"), ("decoder.", "flat pSp")):
        if any(k.startswith(prefix) for k in flat):
            sd = {k[len(prefix):]: v for k, v in flat.items() if k.startswith(prefix)}
            return sd, latent_avg, layout
    return _strip_common_prefix(flat), latent_avg, "bare state dict"


def _broadcast_latent_avg(latent_avg: Any, n_latent: int, style_dim: int, path: Path) -> Tensor:
    t = torch.as_tensor(latent_avg).detach().to(torch.float32)
    if t.numel() == style_dim:
        t = t.reshape(1, style_dim)
    elif t.ndim >= 1 and t.shape[-1] == style_dim and t.numel() == n_latent * style_dim:
        t = t.reshape(n_latent, style_dim)
    else:
        raise VidinvertError(
            f"{path}: latent_avg has shape {list(t.shape)}, expected [{style_dim}] or [{n_latent}, {style_dim}]"
        )
    return t.expand(n_latent, style_dim).clone(memory_format=torch.contiguous_format)


def load_generator(path: Path | str, map_location: Any = "cpu"):
    """Load a StyleGAN2 generator and its average latent from any supported file.

    Layouts: rosinality ``{'g_ema', 'latent_avg' (512,)}`` (also with ``'g'``, ``'d'``, optimizer
    states and ``'args'``), pSp ``{'state_dict' with 'decoder.' keys, 'latent_avg' (18,512)}``, a
    bare ``g_ema`` state dict, a ``.safetensors`` file (optionally with a ``latent_avg`` entry).
    Without a stored latent_avg it is computed as ``G.mean_latent(10_000, seed=0)`` (a warning says so).

    Returns ``(generator in eval mode, latent_avg [n_latent, style_dim] float32)`` on the device
    named by ``map_location`` (CPU by default).
    """
    path = Path(path).expanduser()
    obj = read_checkpoint(path, map_location="cpu")
    sd, latent_avg, layout = _generator_parts(obj, path)
    kind = classify_state_dict(sd)
    if kind not in ("generator", "unknown"):
        raise _wrong_kind(path, kind, "generator")
    config = infer_generator_config(sd)
    arch = ", ".join(f"{k}={v}" for k, v in config.items() if k != "channels")
    try:
        generator = build_on_meta(Generator, **config)
    except (ValueError, TypeError, KeyError, AssertionError) as exc:
        raise VidinvertError(f"{path}: cannot build a generator with {config} ({exc})") from exc
    strict_load(generator, sd, path, "generator", f"{layout}, {arch}")
    if latent_avg is None:
        log.warning(
            "%s has no latent_avg: computing it as the mean of the mapping network over %d seeded z",
            path.name,
            MEAN_LATENT_SAMPLES,
        )
        with torch.no_grad():
            latent_avg = generator.mean_latent(MEAN_LATENT_SAMPLES, seed=0)
    latent_avg = _broadcast_latent_avg(latent_avg, generator.n_latent, generator.style_dim, path)
    generator = _finish(generator, map_location)
    return generator, latent_avg.to(next(generator.parameters()).device)


def read_generator_layout(path: Path | str):
    """The StyleSpace layout (:class:`~vidinvert.models.stylespace.StyleLayout`) of the generator in
    ``path``, read from its state dict's shapes without building the network (checks that need the
    layout run before the models load)."""
    path = Path(path).expanduser()
    sd, _, _ = _generator_parts(read_checkpoint(path, map_location="cpu"), path)
    config = infer_generator_config(sd)
    channels = config.get("channels") or default_channels(config["size"], config["channel_multiplier"])
    return layout_for(config["size"], channels, config["style_dim"])


# ---------------------------------------------------------------------------------------------
# Feature-Style encoder
# ---------------------------------------------------------------------------------------------
def infer_encoder_config(sd: Mapping[str, Any]) -> dict:
    """FeatureStyleEncoder(**config) arguments read from an official-layout state dict's shapes."""
    layers = tuple(_count(sd, rf"block_{b}\.(\d+)\.") or d for b, d in zip(range(1, 5), (3, 4, 14, 3)))
    widths = tuple(
        _dim(sd, f"block_{b}.0.conv1.weight", 0, d) for b, d in zip(range(1, 5), (64, 128, 256, 512))
    )
    return {
        "n_styles": _count(sd, r"styles\.(\d+)\.weight$") or 18,
        "style_dim": _dim(sd, "styles.0.weight", 0, 512),
        "feature_channels": _dim(sd, "content_layer.1.weight", 0, 512),
        "layers": layers,
        "widths": widths,
    }


def _encoder_parts(obj: Any, path: Path) -> tuple[dict, Any]:
    if not isinstance(obj, Mapping):
        raise _not_a_dict(path, obj, "encoder")
    for key in ("enc_state_dict", "encoder"):  # official Trainer / vidinvert training checkpoints
        if key in obj and _is_state_dict(obj[key]):
            return _strip_common_prefix(obj[key], ("module.", "_orig_mod.")), obj.get("latent_avg")
    if "g_ema" in obj:
        raise _wrong_kind(path, "generator", "encoder")
    if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        inner = obj["state_dict"]
        if any(k.startswith("decoder.") for k in inner):
            raise _wrong_kind(path, "psp", "encoder")
        return _strip_common_prefix(inner, ("module.", "enc.")), obj.get("latent_avg")
    flat = dict(obj)
    latent_avg = flat.pop("latent_avg", None)
    return _strip_common_prefix(flat, ("module.", "enc.")), latent_avg


def load_encoder(path: Path | str, latent_avg: Tensor | None = None, map_location: Any = "cpu"):
    """Load a Feature-Style encoder (eval mode) from a bare state dict or a training checkpoint.

    Accepts ``143_enc.pth`` / ``enc.pth.tar`` (bare state dicts), ``checkpoint.pth``
    (``{'enc_state_dict', 'enc_opt_state_dict', ...}``), vidinvert training checkpoints
    (``{'encoder', ...}``) and ``.safetensors``. The architecture
    (n_styles, style_dim, feature_channels, trunk layers and widths) comes from the shapes.
    ``latent_avg`` ((style_dim,), (1, style_dim) or (n_styles, style_dim), from the generator
    file) is added to the offsets; without it a latent_avg stored in the file is used, if any.
    """
    path = Path(path).expanduser()
    obj = read_checkpoint(path, map_location="cpu")
    sd, stored = _encoder_parts(obj, path)
    kind = classify_state_dict(sd)
    if kind not in ("encoder", "unknown"):
        raise _wrong_kind(path, kind, "encoder")
    config = infer_encoder_config(sd)
    arch = f"n_styles={config['n_styles']}, style_dim={config['style_dim']}, layers={config['layers']}"
    try:
        encoder = build_on_meta(FeatureStyleEncoder, **config)
    except (ValueError, TypeError) as exc:
        raise VidinvertError(f"{path}: cannot build an encoder with {config} ({exc})") from exc
    strict_load(encoder, sd, path, "encoder", arch)
    chosen = latent_avg if latent_avg is not None else stored
    if chosen is not None:
        try:
            encoder.set_latent_avg(torch.as_tensor(chosen).detach().to(torch.float32).cpu())
        except ValueError as exc:
            raise VidinvertError(f"latent_avg does not fit the encoder in {path}: {exc}") from exc
    return _finish(encoder, map_location)


# ---------------------------------------------------------------------------------------------
# ArcFace IResNet
# ---------------------------------------------------------------------------------------------
def infer_iresnet_config(sd: Mapping[str, Any]) -> dict:
    """IResNet(**config) arguments read from an arcface_torch-layout state dict's shapes."""
    layers = tuple(_count(sd, rf"layer{b}\.(\d+)\.") or d for b, d in zip(range(1, 5), (3, 4, 14, 3)))
    widths = tuple(
        _dim(sd, f"layer{b}.0.conv1.weight", 0, d) for b, d in zip(range(1, 5), (64, 128, 256, 512))
    )
    fc_in = _dim(sd, "fc.weight", 1, widths[3] * 49)
    side = math.isqrt(max(1, fc_in // max(1, widths[3])))
    return {
        "layers": layers,
        "widths": widths,
        "embedding_size": _dim(sd, "fc.weight", 0, 512),
        "input_size": 16 * side,
    }


def load_arcface(path: Path | str, map_location: Any = "cpu"):
    """Load the ArcFace IResNet (eval mode) from a bare state dict such as ``backbone.pth``."""
    path = Path(path).expanduser()
    obj = read_checkpoint(path, map_location="cpu")
    if not isinstance(obj, Mapping):
        raise _not_a_dict(path, obj, "arcface")
    if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if "g_ema" in obj:
        raise _wrong_kind(path, "generator", "arcface")
    if "enc_state_dict" in obj:
        raise _wrong_kind(path, "encoder", "arcface")
    sd = _strip_common_prefix(obj)
    kind = classify_state_dict(sd)
    if kind not in ("arcface", "unknown"):
        raise _wrong_kind(path, kind, "arcface")
    config = infer_iresnet_config(sd)
    try:
        model = build_on_meta(IResNet, **config)
    except (ValueError, TypeError) as exc:
        raise VidinvertError(f"{path}: cannot build an IResNet with {config} ({exc})") from exc
    strict_load(model, sd, path, "arcface", f"layers={config['layers']}")
    return _finish(model, map_location)
