"""Safe outputs: temp file next to the destination, renamed when complete.

Nothing is lost: an existing output is only replaced with ``overwrite=True``, an output path
that is one of the inputs is refused, and a failure removes the temp file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from vidinvert.errors import VidinvertError


def check_output(dest: Path, *, overwrite: bool, inputs: Iterable[Path] = ()) -> Path:
    """Validate an output path before any work is done; returns it resolved."""
    dest = Path(dest).expanduser()
    for src in inputs:
        try:
            if Path(src).exists() and dest.exists() and os.path.samefile(src, dest):
                raise VidinvertError(f"refusing to write over the input file {src}: choose another output")
        except OSError:
            pass
        if Path(src).resolve() == dest.resolve():
            raise VidinvertError(f"refusing to write over the input file {src}: choose another output")
    if dest.is_dir():
        raise VidinvertError(f"output {dest} is a directory: give a file name")
    if dest.exists() and not overwrite:
        raise VidinvertError(f"output {dest} already exists: pass --overwrite to replace it")
    parent = dest.parent if str(dest.parent) else Path(".")
    if not parent.exists():
        raise VidinvertError(f"output folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise VidinvertError(f"output folder {parent} is not writable")
    return dest


@contextlib.contextmanager
def atomic_path(dest: Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary path next to ``dest`` (same suffix); rename it to ``dest`` on success."""
    dest = Path(dest)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.stem}.partial-", suffix=dest.suffix, dir=dest.parent or ".")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if dest.exists() and not overwrite:
            raise VidinvertError(f"output {dest} appeared while working: pass --overwrite to replace it")
        publish(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish(tmp: Path, dest: Path) -> None:
    """Rename a finished temp file into place with the permissions a new file would get.

    ``mkstemp`` creates files readable by their owner only; outputs are meant to be shared like
    any file the user creates (0666 minus the umask).
    """
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, dest)


def write_json(dest: Path, obj: Any, *, allow_nan: bool = True) -> Path:
    """Write JSON atomically (always replaces: metadata files follow their output).

    ``allow_nan=False`` refuses NaN/inf (strict JSON, for files other programs parse)."""
    with atomic_path(Path(dest), overwrite=True) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=str, allow_nan=allow_nan) + "\n")
    return Path(dest)
