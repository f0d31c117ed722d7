"""``run.json``: what produced an output (configuration, versions, weight files, timings)."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import platform
import sys
from pathlib import Path
from typing import Any

import av
import numpy
import torch

from vidinvert.version import __version__
from vidinvert.weights import REGISTRY, sha256_file

_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | Path) -> dict[str, Any]:
    """sha256, size and registry licence of a weight file (hashes cached per path/size/mtime)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, int(st.st_mtime_ns))
    if key not in _HASH_CACHE:
        _HASH_CACHE[key] = sha256_file(p)
    entry: dict[str, Any] = {"path": str(p), "size": st.st_size, "sha256": _HASH_CACHE[key]}
    for spec in REGISTRY.values():
        if spec.filename == p.name:
            entry.update(registry_name=spec.name, license=spec.license)
            break
    return entry


def versions() -> dict[str, str]:
    out = {
        "vidinvert": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
    }
    out["av"] = av.__version__
    if torch.cuda.is_available():
        out["cuda"] = str(torch.version.cuda)
        out["gpu"] = torch.cuda.get_device_name(0)
    return out


def to_jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def run_record(*, command: str, config: Any, weights: dict[str, str | Path | None],
               timings: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The content of ``run.json``."""
    rec: dict[str, Any] = {
        "command": command,
        "argv": sys.argv,
        "cwd": os.getcwd(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(),
        "config": to_jsonable(config),
        "weights": {k: (file_digest(v) if v else None) for k, v in weights.items()},
    }
    if timings:
        rec["timings"] = to_jsonable(timings)
    if extra:
        rec.update(to_jsonable(extra))
    return rec


def run_json_path(output: Path) -> Path:
    """``clip.smile.mp4`` -> ``clip.smile.run.json`` next to it."""
    output = Path(output)
    return output.with_name(output.stem + ".run.json")
