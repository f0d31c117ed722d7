"""Which files a command works on: files, folders (recursive), quoted globs and list files.

Shared by ``eval`` (:mod:`vidinvert.evaluate.datasets`) and the corpus form of ``edit`` /
``invert`` (:mod:`vidinvert.pipeline.corpus`), so a source means the same thing everywhere:

* a **folder** is searched recursively for files with the wanted suffixes (hidden files and
  folders are skipped), sorted by path; its root is the folder;
* a **glob** (``'clips/**/*.mp4'``, quoted so the shell leaves it alone) gives the matching files
  with a wanted suffix, sorted; its root is the matches' common parent folder;
* a **list file** (``.txt``, ``.lst``, ``.list``) names one path a line (blank lines and ``#``
  comments skipped; relative lines are relative to the list's folder), in file order; its root
  is the list's folder;
* a **file** named directly is itself, with its own folder as root (so its output goes flat).

Each input keeps its root: outputs mirror the input's path relative to it (:meth:`InputFile.relpath`).
"""

from __future__ import annotations

import glob as _glob
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from vidinvert.errors import VidinvertError
from vidinvert.mediatypes import IMAGE_SUFFIXES, VIDEO_SUFFIXES

PHOTO_SUFFIXES = frozenset(IMAGE_SUFFIXES)
MEDIA_SUFFIXES = VIDEO_SUFFIXES | PHOTO_SUFFIXES
LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})
_GLOB_CHARS = set("*?[")


def is_glob(text: str) -> bool:
    """True when ``text`` holds a glob character (``*``, ``?``, ``[``)."""
    return any(c in text for c in _GLOB_CHARS)


def is_photo(path: str | os.PathLike) -> bool:
    """True for a still-image suffix (a photo is a one-frame clip)."""
    return Path(path).suffix.lower() in PHOTO_SUFFIXES


def relative_key(path: Path, root: Path | None) -> str:
    """``path`` relative to ``root`` (POSIX style) when it lies under it, else its absolute path."""
    if root is not None:
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return path.resolve().as_posix()


def read_list(list_file: Path) -> list[Path]:
    """The paths a list file names, in order (relative lines are relative to the list's folder)."""
    paths = []
    try:
        text = list_file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise VidinvertError(f"cannot read the list file {list_file}: {exc}") from None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        p = Path(line).expanduser()
        paths.append(p if p.is_absolute() else list_file.parent / p)
    return paths


def _common_parent(files: Sequence[Path]) -> Path:
    return Path(os.path.commonpath([str(f.resolve().parent) for f in files]))


def _walk(folder: Path, suffixes: Iterable[str], exclude: Sequence[Path]) -> list[Path]:
    excluded = [e.resolve() for e in exclude]
    found = []
    for f in folder.rglob("*"):
        if not f.is_file() or f.suffix.lower() not in suffixes:
            continue
        if any(part.startswith(".") for part in f.relative_to(folder).parts):
            continue
        if excluded and any(f.resolve().is_relative_to(e) for e in excluded):
            continue
        found.append(f)
    return sorted(found)


def collect_files(source: str | Path, suffixes: Iterable[str], what: str,
                  exclude: Sequence[Path] = ()) -> tuple[list[Path], Path | None]:
    """Files named by ``source``: a folder (searched recursively), a glob, a list file or one file.

    Returns the paths (sorted for folders and globs, in file order for lists) and their root.
    Files under a folder in ``exclude`` (e.g. the output folder inside the input folder) are left
    out of folders and globs. A source that names nothing usable is a one-line VidinvertError.
    """
    suffixes = {s.lower() for s in suffixes}
    text = str(source)
    p = Path(text).expanduser()
    if p.is_dir():
        files, root = _walk(p, suffixes, exclude), p
    elif p.is_file() and p.suffix.lower() in LIST_SUFFIXES:
        files, root = read_list(p), p.parent
    elif p.is_file() and p.suffix.lower() in suffixes:
        files, root = [p], p.parent
    elif is_glob(text):
        excluded = [e.resolve() for e in exclude]
        files = sorted(Path(f) for f in _glob.glob(str(p), recursive=True)
                       if Path(f).is_file() and Path(f).suffix.lower() in suffixes
                       and not any(Path(f).resolve().is_relative_to(e) for e in excluded))
        root = _common_parent(files) if files else None
    elif p.exists():
        raise VidinvertError(f"{p} is neither a folder, a list file ({', '.join(sorted(LIST_SUFFIXES))}) "
                             f"nor a {what} file")
    else:
        raise VidinvertError(f"{what} source not found: {p}")
    if not files:
        raise VidinvertError(f"no {what} files found in {p} (looked for {', '.join(sorted(suffixes))})")
    return files, root


@dataclass(frozen=True)
class InputFile:
    """One input and the root it was found under (its folder when named directly)."""

    path: Path
    root: Path | None

    @property
    def relpath(self) -> str:
        """The input's path relative to its root (POSIX style); its file name when it lies outside
        the root (an absolute line of a list file). Outputs mirror it under the output folder."""
        if self.root is not None:
            try:
                return self.path.resolve().relative_to(self.root.resolve()).as_posix()
            except ValueError:
                pass
        return self.path.name

    def output_dir(self, out_dir: Path) -> Path:
        """The folder this input's outputs go to: ``out_dir`` / the relative path's folder."""
        parent = PurePosixPath(self.relpath).parent
        return Path(out_dir) if str(parent) == "." else Path(out_dir).joinpath(*parent.parts)


def resolve_inputs(sources: Sequence[str | Path], suffixes: Iterable[str] = MEDIA_SUFFIXES,
                   what: str = "video or photo", exclude: Sequence[Path] = ()) -> list[InputFile]:
    """Every input of several sources, in source order; the same file twice is kept once (first).

    Two different files whose outputs would mirror to the same relative path (``a/x.mp4`` named
    directly and ``b/x.mp4`` named directly) are refused with a one-line VidinvertError.
    """
    if not sources:
        raise VidinvertError("no inputs given")
    suffixes = frozenset(s.lower() for s in suffixes)
    out: list[InputFile] = []
    seen: set[str] = set()
    by_rel: dict[str, Path] = {}
    for source in sources:
        files, root = collect_files(source, suffixes, what, exclude)
        for f in files:
            real = str(f.resolve())
            if real in seen:
                continue
            seen.add(real)
            item = InputFile(f, root)
            other = by_rel.setdefault(item.relpath, f)
            if other is not f:
                raise VidinvertError(f"{other} and {f} would write to the same outputs ({item.relpath}): "
                                     "rename one, or give their common folder as the input")
            out.append(item)
    return out
