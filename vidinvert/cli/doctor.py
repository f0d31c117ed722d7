"""``vidinvert doctor``: what this machine can do (Python, torch, CUDA, codecs, face tools, weights)."""

from __future__ import annotations

import importlib.util
import platform
import sys
from pathlib import Path

import typer

from vidinvert.cli import common
from vidinvert.version import __version__

CODECS = {"encoders": ("libx264", "libx265", "ffv1", "aac"), "decoders": ("h264", "hevc", "vp9", "av1", "prores", "ffv1")}


def collect(weights_dir: Path | None = None) -> dict:
    """Everything ``doctor`` reports, as a JSON-able dict."""
    import torch

    rep: dict = {
        "vidinvert": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "cuda_version": torch.version.cuda,
        "devices": [],
        "threads": torch.get_num_threads(),
    }
    rep["cpu_dtype"] = cpu_dtype()
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            rep["devices"].append({"index": i, "name": p.name, "memory_gib": round(p.total_memory / 2**30, 1),
                                   "bf16": torch.cuda.is_bf16_supported()})
    try:
        import av

        rep["pyav"] = av.__version__
        codecs = {}
        for kind, names in CODECS.items():
            for n in names:
                try:
                    av.codec.Codec(n, "w" if kind == "encoders" else "r")
                    codecs[f"{n} ({kind[:-1]})"] = True
                except Exception:
                    codecs[f"{n} ({kind[:-1]})"] = False
        rep["codecs"] = codecs
    except Exception as exc:  # pragma: no cover - av is a hard dependency
        rep["pyav"] = f"unavailable: {exc}"
    rep["face_tools"] = {
        "dlib": importlib.util.find_spec("dlib") is not None,
        "face_recognition_models": importlib.util.find_spec("face_recognition_models") is not None,
        "facexlib": importlib.util.find_spec("facexlib") is not None,
        "decord": importlib.util.find_spec("decord") is not None,
    }
    from vidinvert.weights import REGISTRY, find, search_dirs

    rep["weights_dirs"] = [str(d) for d in search_dirs(weights_dir)]
    rep["weights"] = {name: (str(find(name, weights_dir)) if find(name, weights_dir) else None) for name in REGISTRY}
    return rep


def cpu_dtype() -> dict:
    """What ``--dtype auto`` picks on this CPU and why (its bf16 matrix units), and ``$VIDINVERT_DTYPE``."""
    import os

    from vidinvert.device import ENV_DTYPE, auto_cpu_dtype, cpu_bf16_units, dtype_name

    dtype, reason = auto_cpu_dtype()
    return {"bf16_units": list(cpu_bf16_units()), "auto": dtype_name(dtype), "reason": reason,
            "env": os.environ.get(ENV_DTYPE) or None}


def register(app: typer.Typer) -> None:
    def doctor(weights_dir: common.WeightsDirOpt = None) -> common.Shown:
        """Check the machine: Python, torch, CUDA and GPUs, PyAV codecs, face tools, weight files."""
        rep = collect(weights_dir)
        return common.Shown(rep, lambda: _render(rep))

    common.command(app, "doctor")(doctor)


def _render(rep: dict) -> None:
    from rich.table import Table

    t = Table(title="vidinvert doctor", show_header=False)
    t.add_column("what", style="bold")
    t.add_column("status")
    ok, bad = "[green]yes[/green]", "[red]no[/red]"
    t.add_row("vidinvert", rep["vidinvert"])
    t.add_row("python", f"{rep['python']} ({rep['platform']})")
    t.add_row("torch", f"{rep['torch']} (CUDA {rep['cuda_version'] or 'none'}, {rep['threads']} CPU threads)")
    cd = rep["cpu_dtype"]
    env = f"; {cd['env']} from $VIDINVERT_DTYPE" if cd["env"] else ""
    t.add_row("CPU precision", f"{cd['reason']}{env}")
    if rep["devices"]:
        for d in rep["devices"]:
            t.add_row(f"cuda:{d['index']}", f"{d['name']}, {d['memory_gib']} GiB, bf16 {'yes' if d['bf16'] else 'no'}")
    else:
        t.add_row("GPU", "[yellow]none: networks run on the CPU (slow)[/yellow]")
    t.add_row("PyAV", str(rep.get("pyav")))
    for name, has in rep.get("codecs", {}).items():
        t.add_row(f"  {name}", ok if has else bad)
    for name, has in rep["face_tools"].items():
        t.add_row(name, ok if has else bad)
    t.add_row("weights folders", "\n".join(rep["weights_dirs"]))
    for name, path in rep["weights"].items():
        t.add_row(f"  {name}", f"[green]{path}[/green]" if path else "[dim]missing[/dim]")
    common.out.print(t)
    common.out.print("Missing weights: `vidinvert weights` shows where to place each file.")
