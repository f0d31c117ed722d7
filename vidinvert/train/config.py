"""Training configuration: frozen dataclasses, YAML files and dotted ``--set`` overrides.

A configuration has six sections (``data``, ``model``, ``loss``, ``optim``, ``schedule``,
``log``) plus a few top-level keys (``seed``, ``device``, ``dtype``, ``compile``). A YAML file
names only what differs from the defaults below (which are the paper's FFHQ recipe);
``apply_overrides(cfg, ["optim.lr=5e-5"])`` changes single values with the value parsed as
YAML and checked against the field's type. Unknown keys and wrong types are a
:class:`~vidinvert.errors.VidinvertError` naming the key and the valid choices.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Union

import yaml

from vidinvert.errors import VidinvertError

RECIPES = ("paper", "official")
OPTIMIZERS = ("ranger", "adamw")


@dataclass(frozen=True)
class DataConfig:
    """Where the training images come from and how each batch is composed.

    ``batch_real`` and ``batch_synthetic`` are GLOBAL counts per optimiser step (summed over
    processes and accumulation steps); each must divide by ``world_size * optim.accumulate``.
    """

    real_dir: str | None = None  # folder of aligned faces (resized to the generator size); None: synthetic only
    val_fraction: float = 0.02  # held out from real_dir (at least 1 image when real_dir is set)
    batch_real: int = 2
    batch_synthetic: int = 2
    synthetic_pool: int = 0  # > 0: synthetic samples cycle over this many (a fixed set)
    real_limit: int = 0  # > 0: use only this many training images
    workers: int = 2  # image-decoding worker processes (0: in the main process)


FEATURE_INDEX = 5  # the layer K where F replaces the generator's activation (what inference uses)


@dataclass(frozen=True)
class ModelConfig:
    """The frozen generator and the trained encoder."""

    generator: str = "stylegan2-ffhq"  # registry name, a file, or "tiny" (random, seeded)
    generator_seed: int = 0  # for generator "tiny"
    encoder: str = "iresnet50"  # architecture: iresnet50 (official) | tiny
    encoder_init: str = "arcface"  # arcface (trunk from backbone.pth) | random | an encoder file
    feature_index: int = 5  # the generator layer F replaces (K); only 5: inference injects at K=5


@dataclass(frozen=True)
class LossConfig:
    """Recipe and loss weights. A weight of 0 skips that loss and never builds its network."""

    recipe: str = "paper"  # paper | official (see vidinvert.train.loop)
    l2: float = 1.0
    lpips: float = 0.2
    identity: float = 0.1
    parsing: float = 0.1
    feature: float = 0.01
    lpips_net: str = "alex"  # alex (ImageNet AlexNet, registry lpips-alexnet) | random
    lpips_scales: int = 3  # full, 1/2, 1/4
    identity_net: str = "arcface"  # registry name or file (IResNet-50 backbone.pth) | random-tiny
    identity_size: int = 112
    parsing_net: str = "bisenet-official"  # registry name or file (19-class BiSeNet) | random
    parsing_size: int = 512


@dataclass(frozen=True)
class OptimConfig:
    name: str = "ranger"  # ranger (RAdam + Lookahead, pytorch-optimizer) | adamw
    lr: float = 1e-4
    betas: tuple[float, float] = (0.95, 0.999)
    weight_decay: float = 0.0
    lr_step: int = 100_000  # iterations between learning-rate decays (StepLR)
    lr_gamma: float = 0.1
    accumulate: int = 1  # gradient-accumulation micro-steps per optimiser step
    grad_clip: float = 0.0  # max gradient norm; 0: off


@dataclass(frozen=True)
class ScheduleConfig:
    iterations: int = 120_000  # optimiser steps in total (12 epochs of 10,000)
    fade_in: int = 0  # F blended in as (1-s) x + s F, s = min(1, it / fade_in); 0: s = 1
    checkpoint_every: int = 2_000
    keep_checkpoints: int = 3
    stop_at: int = 0  # > 0: stop (with a checkpoint) at this iteration; --resume continues


@dataclass(frozen=True)
class LogConfig:
    every: int = 10  # scalars to losses.jsonl and TensorBoard
    image_every: int = 1_000  # training reconstruction grids
    val_every: int = 5_000  # validation losses and reconstructions
    val_images: int = 8
    tensorboard: bool = True


@dataclass(frozen=True)
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    log: LogConfig = field(default_factory=LogConfig)
    seed: int = 0
    device: str = "auto"  # auto | cuda | cpu (under torchrun: cuda:LOCAL_RANK)
    dtype: str = "auto"  # auto (see vidinvert.device.resolve_compute) | fp32 | bf16
    compile: bool = False  # torch.compile the encoder


# Fields that may change when a run is resumed (they do not change the optimisation itself).
RESUMABLE_CHANGES = frozenset(
    {
        "schedule.iterations",
        "schedule.stop_at",
        "schedule.checkpoint_every",
        "schedule.keep_checkpoints",
        "data.workers",
        "compile",
        "device",
    }
)
_LOG_PREFIX = "log."


# ----------------------------------------------------------------------------------------------
# Conversion helpers
# ----------------------------------------------------------------------------------------------
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert it (int -> float, list -> tuple)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except VidinvertError:
                pass
        raise VidinvertError(f"config key {key}: expected {_type_name(tp)}, got {value!r}")
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise VidinvertError(f"config key {key}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise VidinvertError(f"config key {key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise VidinvertError(f"config key {key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads "1e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise VidinvertError(f"config key {key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise VidinvertError(f"config key {key}: expected a string, got {value!r}")
    raise VidinvertError(f"config key {key}: unsupported type {_type_name(tp)}")  # pragma: no cover


def _build(cls: type, data: Any, prefix: str = "") -> Any:
    """A dataclass of type ``cls`` from a (possibly partial) mapping, every key checked."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        where = prefix.rstrip(".") or "the configuration"
        raise VidinvertError(f"config section {where}: expected a mapping, got {data!r}")
    hints = _type_hints(cls)
    names = [f.name for f in fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        raise VidinvertError(
            f"unknown config key {prefix}{unknown[0]}: valid keys here are {', '.join(prefix + n for n in names)}"
        )
    kwargs = {}
    for name in names:
        if name not in data:
            continue
        tp = hints[name]
        if is_dataclass(tp):
            kwargs[name] = _build(tp, data[name], f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(data[name], tp, prefix + name)
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict (tuples as lists) for YAML/JSON."""

    def plain(v: Any) -> Any:
        if is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in fields(v)}
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        return v

    return plain(cfg)


def flatten(cfg: Any) -> dict[str, Any]:
    """``{"optim.lr": 1e-4, ...}`` for every leaf."""
    out: dict[str, Any] = {}

    def walk(d: dict, prefix: str) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                out[prefix + k] = v

    walk(to_dict(cfg), "")
    return out


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------
def from_dict(data: dict[str, Any] | None) -> TrainConfig:
    """Build and validate a :class:`TrainConfig` from a nested mapping (defaults for what is absent)."""
    cfg = _build(TrainConfig, data or {})
    validate(cfg)
    return cfg


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read a YAML file, apply ``key=value`` overrides, validate. Errors name the file and key."""
    p = Path(path)
    if not p.exists():
        raise VidinvertError(f"config file not found: {p}")
    if p.is_dir():
        raise VidinvertError(f"config path is a directory, expected a .yaml file: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise VidinvertError(f"cannot parse config {p}: {' '.join(str(exc).split())}") from None
    try:
        cfg = _build(TrainConfig, data or {})
    except VidinvertError as exc:
        raise VidinvertError(f"{p}: {exc.message}") from None
    cfg = apply_overrides(cfg, overrides)
    validate(cfg)
    return cfg


def apply_overrides(cfg: TrainConfig, overrides: list[str] | tuple[str, ...]) -> TrainConfig:
    """Return ``cfg`` with each ``section.key=value`` applied (value parsed as YAML, type-checked)."""
    for item in overrides or ():
        if "=" not in item:
            raise VidinvertError(f"--set {item!r}: expected KEY=VALUE, e.g. optim.lr=5e-5")
        key, raw = item.split("=", 1)
        key = key.strip()
        try:
            value = yaml.safe_load(raw) if raw.strip() != "" else ""
        except yaml.YAMLError:
            value = raw
        cfg = set_value(cfg, key, value)
    return cfg


def set_value(cfg: Any, key: str, value: Any) -> Any:
    """A copy of ``cfg`` with the dotted ``key`` set to ``value`` (checked against the field type)."""
    parts = key.split(".")
    hints = _type_hints(type(cfg))
    names = [f.name for f in fields(cfg)]
    head = parts[0]
    if head not in names:
        raise VidinvertError(f"unknown config key {key!r}: valid keys are {', '.join(flatten(cfg))}")
    tp = hints[head]
    if is_dataclass(tp):
        if len(parts) == 1:
            raise VidinvertError(f"config key {key!r} is a section: set one of its keys, e.g. {key}.{fields(tp)[0].name}=...")
        try:
            sub = set_value(getattr(cfg, head), ".".join(parts[1:]), value)
        except VidinvertError as exc:
            if exc.message.startswith("unknown config key"):
                valid = [f"{head}.{n}" for n in flatten(getattr(cfg, head))]
                raise VidinvertError(f"unknown config key {key!r}: valid keys in {head} are {', '.join(valid)}") from None
            raise VidinvertError(exc.message.replace("config key ", f"config key {head}.", 1)) from None
        return replace(cfg, **{head: sub})
    if len(parts) > 1:
        raise VidinvertError(f"unknown config key {key!r}: {head} is a value, not a section")
    return replace(cfg, **{head: _coerce(value, tp, head)})


def validate(cfg: TrainConfig) -> None:
    """Value checks that the types cannot express."""

    def bad(key: str, why: str) -> VidinvertError:
        return VidinvertError(f"config key {key}: {why}")

    if cfg.loss.recipe not in RECIPES:
        raise bad("loss.recipe", f"choose one of {', '.join(RECIPES)}, got {cfg.loss.recipe!r}")
    if cfg.optim.name not in OPTIMIZERS:
        raise bad("optim.name", f"choose one of {', '.join(OPTIMIZERS)}, got {cfg.optim.name!r}")
    if cfg.model.feature_index != FEATURE_INDEX:
        raise bad("model.feature_index", f"must be {FEATURE_INDEX} (inversion and editing inject F at layer "
                  f"K={FEATURE_INDEX} and the exported encoder cannot say otherwise), got {cfg.model.feature_index}")
    if cfg.model.encoder not in ("iresnet50", "tiny"):
        raise bad("model.encoder", f"choose iresnet50 or tiny, got {cfg.model.encoder!r}")
    for name in ("l2", "lpips", "identity", "parsing", "feature"):
        if getattr(cfg.loss, name) < 0:
            raise bad(f"loss.{name}", "a loss weight cannot be negative")
    if cfg.data.batch_real < 0 or cfg.data.batch_synthetic < 0:
        raise bad("data.batch_real", "batch sizes cannot be negative")
    if cfg.data.batch_real + cfg.data.batch_synthetic < 1:
        raise bad("data.batch_synthetic", "the batch is empty: set batch_real and/or batch_synthetic")
    if not 0.0 <= cfg.data.val_fraction < 1.0:
        raise bad("data.val_fraction", "must be in [0, 1)")
    if cfg.optim.lr <= 0:
        raise bad("optim.lr", "must be positive")
    if cfg.optim.accumulate < 1:
        raise bad("optim.accumulate", "must be at least 1")
    if cfg.optim.lr_step < 1:
        raise bad("optim.lr_step", "must be at least 1")
    if cfg.schedule.iterations < 1:
        raise bad("schedule.iterations", "must be at least 1")
    if cfg.schedule.checkpoint_every < 1:
        raise bad("schedule.checkpoint_every", "must be at least 1")
    if cfg.schedule.keep_checkpoints < 1:
        raise bad("schedule.keep_checkpoints", "must be at least 1")
    for name in ("every", "image_every", "val_every"):
        if getattr(cfg.log, name) < 1:
            raise bad(f"log.{name}", "must be at least 1")
    if cfg.loss.lpips_scales < 1:
        raise bad("loss.lpips_scales", "must be at least 1")
    if cfg.dtype not in ("auto", "fp32", "bf16"):
        raise bad("dtype", f"choose auto, fp32 or bf16, got {cfg.dtype!r}")


def dump_config(cfg: TrainConfig) -> str:
    """The resolved configuration as YAML text (every key, in declaration order)."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def resume_differences(saved: TrainConfig, new: TrainConfig) -> list[str]:
    """Keys whose change would make a resumed run differ from the saved one (``log.*`` is free)."""
    a, b = flatten(saved), flatten(new)
    return [
        k
        for k in a
        if a[k] != b.get(k) and k not in RESUMABLE_CHANGES and not k.startswith(_LOG_PREFIX)
    ]


__all__ = [
    "DataConfig",
    "LogConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "ScheduleConfig",
    "TrainConfig",
    "apply_overrides",
    "dump_config",
    "flatten",
    "from_dict",
    "load_config",
    "resume_differences",
    "set_value",
    "to_dict",
    "validate",
]
