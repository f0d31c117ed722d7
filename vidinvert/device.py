"""Compute device and dtype resolution (``--device auto|cuda|cpu``, ``--dtype auto|fp32|bf16|fp16``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from vidinvert.errors import VidinvertError

DEVICE_CHOICES = ("auto", "cuda", "cpu")
DTYPE_CHOICES = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Compute:
    """Where and in which precision the networks run.

    ``dtype`` is the autocast dtype for the networks; float32 means no autocast.
    ``fell_back`` is True when CUDA was asked for (or ``auto`` expected one) but the CPU is used.
    """

    device: torch.device
    dtype: torch.dtype
    fell_back: bool = False

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


def resolve_compute(device: str = "auto", dtype: str = "auto") -> Compute:
    """Resolve ``--device`` and ``--dtype``.

    auto device: CUDA when available, else CPU (``fell_back`` set so the CLI can say so loudly).
    ``cuda`` without CUDA falls back to the CPU with ``fell_back`` set, rather than failing a long job.
    auto dtype: bf16 on CUDA, fp32 on CPU. fp16/bf16 on the CPU are allowed (slow, for tests).
    """
    device = (device or "auto").lower()
    dtype = (dtype or "auto").lower()
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
    if dtype == "auto":
        dt = torch.bfloat16 if dev.type == "cuda" else torch.float32
    else:
        dt = _DTYPES[dtype]
    return Compute(device=dev, dtype=dt, fell_back=fell_back)


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
