"""Compute device and dtype resolution (``--device auto|cuda|cpu``, ``--dtype auto|fp32|bf16|fp16``)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

from vidinvert.errors import VidinvertError

DEVICE_CHOICES = ("auto", "cuda", "cpu")
DTYPE_CHOICES = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
#: Environment variable that sets ``--dtype`` when it is not given (``VIDINVERT_DTYPE=fp32``: exact fp32).
ENV_DTYPE = "VIDINVERT_DTYPE"
#: /proc/cpuinfo flags of the CPU bf16 matrix units ``--dtype auto`` picks bf16 for (see :func:`resolve_compute`).
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
CPUINFO = "/proc/cpuinfo"  # where :func:`cpu_bf16_units` reads the CPU flags (Linux)


@dataclass(frozen=True)
class Compute:
    """Where and in which precision the networks run.

    ``dtype`` is the autocast dtype for the networks; float32 means no autocast.
    ``fell_back`` is True when CUDA was asked for (or ``auto`` expected one) but the CPU is used.
    """

    device: torch.device
    dtype: torch.dtype
    fell_back: bool = False
    reason: str = ""  # why this dtype (``--dtype auto``'s rule, the option, or VIDINVERT_DTYPE)

    @property
    def autocast_enabled(self) -> bool:
        return self.dtype != torch.float32

    def autocast(self):
        """A context manager: autocast to ``dtype`` on ``device``, or nothing in float32."""
        return torch.autocast(
            device_type=self.device.type, dtype=self.dtype, enabled=self.autocast_enabled
        )

    def describe(self) -> str:
        name = str(self.device)
        if self.device.type == "cuda":
            name += f" ({torch.cuda.get_device_name(self.device)})"
        return f"{name}, {dtype_name(self.dtype)}"


def dtype_name(dtype: torch.dtype) -> str:
    return {v: k for k, v in _DTYPES.items()}.get(dtype, str(dtype))


def cpu_bf16_units() -> tuple[str, ...]:
    """The bf16 matrix units of this CPU: the :data:`CPU_BF16_FLAGS` among the ``flags`` of
    ``/proc/cpuinfo`` (elsewhere: torch's own AMX / AVX512-BF16 probes). () when it has none."""
    try:
        with open(CPUINFO, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return tuple(x for x in CPU_BF16_FLAGS if x in flags)
    except OSError:
        pass
    probes = {"amx_bf16": "_is_amx_tile_supported", "avx512_bf16": "_is_avx512_bf16_supported"}
    return tuple(x for x, fn in probes.items() if getattr(torch.cpu, fn, lambda: False)())


def auto_cpu_dtype() -> tuple[torch.dtype, str]:
    """``--dtype auto`` on the CPU: bf16 where the CPU has bf16 matrix units (AMX-BF16, or AVX512-BF16:
    measured 1.75x faster per edited 1024 frame than fp32 on a 2-core AMD EPYC with AVX512-BF16 and no
    AMX, docs/benchmarks.md), fp32 elsewhere (bf16 is emulated there, slower than fp32)."""
    units = cpu_bf16_units()
    if units:
        names = " and ".join(x.replace("_", "-").upper() for x in units)
        return torch.bfloat16, f"auto: bf16 on this CPU ({names} units); --dtype fp32 for exact fp32"
    return torch.float32, "auto: fp32 on this CPU (no AMX-BF16 or AVX512-BF16 units, bf16 would be emulated)"


def resolve_compute(device: str = "auto", dtype: str = "auto") -> Compute:
    """Resolve ``--device`` and ``--dtype``.

    auto device: CUDA when available, else CPU (``fell_back`` set so the CLI can say so loudly).
    ``cuda`` without CUDA falls back to the CPU with ``fell_back`` set, rather than failing a long job.
    auto dtype: ``$VIDINVERT_DTYPE`` when set, else bf16 on CUDA, and on the CPU bf16 where it has
    bf16 matrix units (:func:`auto_cpu_dtype`), fp32 elsewhere. fp16/bf16 are allowed on any CPU
    (slow without those units, for tests). fp32 is the precision whose outputs match the official code.
    ``Compute.reason`` says why the dtype was chosen.
    """
    device = (device or "auto").lower()
    dtype = (dtype or "auto").lower()
    env = os.environ.get(ENV_DTYPE, "").strip().lower()
    if dtype == "auto" and env and env != "auto":
        if env not in DTYPE_CHOICES:
            raise VidinvertError(f"{ENV_DTYPE}={env!r}: choose one of {', '.join(DTYPE_CHOICES)}")
        dtype, reason = env, f"{ENV_DTYPE}={env}"
    else:
        reason = f"--dtype {dtype}"
    if device not in DEVICE_CHOICES and not device.startswith("cuda:"):
        raise VidinvertError(f"unknown --device {device!r}: choose one of {', '.join(DEVICE_CHOICES)} or cuda:N")
    if dtype not in DTYPE_CHOICES:
        raise VidinvertError(f"unknown --dtype {dtype!r}: choose one of {', '.join(DTYPE_CHOICES)}")
    has_cuda = torch.cuda.is_available()
    fell_back = False
    if device == "auto":
        dev = torch.device("cuda") if has_cuda else torch.device("cpu")
        fell_back = not has_cuda
    elif device.startswith("cuda"):
        if has_cuda:
            dev = torch.device(device)
            if dev.index is not None and dev.index >= torch.cuda.device_count():
                raise VidinvertError(
                    f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) are visible"
                )
        else:
            dev, fell_back = torch.device("cpu"), True
    else:
        dev = torch.device("cpu")
    if dtype == "auto" and dev.type == "cuda":
        dt, reason = torch.bfloat16, "auto: bf16 on CUDA"
    elif dtype == "auto":
        dt, reason = auto_cpu_dtype()
    else:
        dt = _DTYPES[dtype]
    return Compute(device=dev, dtype=dt, fell_back=fell_back, reason=reason)


def dtype_notice(compute: Compute) -> str:
    """The run's one line on its precision: the dtype and why (``Compute.reason``)."""
    text = f"precision: {dtype_name(compute.dtype)} ({compute.reason or 'as asked'})"
    if compute.device.type == "cpu" and compute.dtype == torch.bfloat16:
        text += "; bf16 outputs are close to, not equal to, fp32 ones (parity with the official code is fp32's)"
    return text


def compute_record(compute: Compute) -> dict:
    """What ``run.json`` and the reports say of the compute: device, dtype and the dtype's reason."""
    return {"device": compute.describe(), "dtype": dtype_name(compute.dtype), "dtype_reason": compute.reason}


def free_memory(device: torch.device) -> int:
    """Bytes of free memory on a CUDA ``device`` (``torch.cuda.mem_get_info``)."""
    free, _ = torch.cuda.mem_get_info(device)
    return int(free)


def cpu_fallback_message(compute: Compute, device: str) -> str | None:
    """The line to say when ``compute`` fell back to the CPU although ``device`` did not ask for it."""
    if not compute.fell_back or str(device) == "cpu":
        return None
    asked = " although --device cuda was asked for" if str(device).startswith("cuda") else ""
    return f"running on the CPU: CUDA is not available{asked} (this is slow; pass --device cpu to silence this)"


def warn_cpu_fallback(compute: Compute, device: str) -> None:
    """Log :func:`cpu_fallback_message` as a loud warning (the CLI shows it even with ``--quiet``)."""
    msg = cpu_fallback_message(compute, device)
    if msg is not None:
        logging.getLogger("vidinvert").warning(msg, extra={"loud": True})


def to_device(t: torch.Tensor, device: torch.device | str | None) -> torch.Tensor:
    """``t`` on ``device`` (None: where it is). A host tensor bound for CUDA goes through pinned
    memory with a non-blocking copy (the host works on while it travels; PyTorch keeps the pinned
    block until the copy is done); every other case is a plain ``t.to(device)``, so the CPU path
    is unchanged (no copy when ``t`` is already there)."""
    if device is None:
        return t
    device = torch.device(device)
    if device.type != "cuda" or t.device.type != "cpu":
        return t.to(device)
    if not t.is_pinned():
        t = t.pin_memory()
    return t.to(device, non_blocking=True)
