"""What to evaluate: videos from a RAVDESS folder, any folder, a glob or a list file; aligned images.

RAVDESS names its clips ``MM-VV-EE-II-SS-RR-AA.mp4`` (modality, vocal channel, emotion, intensity,
statement, repetition, actor) under ``Actor_AA/``. Modality ``01`` (audio-video) and ``02``
(video-only) hold the same recording, so each clip is counted once: the preferred modality's
file when present, else the other one. Files that do not follow the pattern are kept as they are.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidinvert.errors import VidinvertError
from vidinvert.inputs import collect_files
from vidinvert.inputs import relative_key as _relative_key
from vidinvert.mediatypes import IMAGE_SUFFIXES, VIDEO_SUFFIXES

MODALITIES = {"video-only": "02", "audio-video": "01"}
_RAVDESS = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")


@dataclass(frozen=True)
class MediaItem:
    """One input: ``path`` as found, ``key`` a stable unique name (the path relative to the
    source when possible, POSIX style) used in reports and cache file names."""

    path: Path
    key: str

    @property
    def cache_name(self) -> str:
        """A flat file-name-safe version of ``key`` (with a short hash against collisions)."""
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", self.key).strip("_")[-80:] or "item"
        return f"{safe}-{hashlib.sha1(self.key.encode()).hexdigest()[:8]}"


def ravdess_fields(path: Path) -> tuple[str, ...] | None:
    """The seven two-digit fields of a RAVDESS file name, or None if it does not follow the pattern."""
    m = _RAVDESS.match(Path(path).stem)
    return m.groups() if m else None


def dedupe_ravdess(paths: Iterable[Path], modality: str = "video-only") -> list[Path]:
    """Keep one file per RAVDESS recording: the ``modality`` file, else the other one.

    Recordings are identified by the folder and every field but the modality. Files that are
    not RAVDESS-named (or audio-only, modality 03) pass through unchanged.
    """
    if modality not in MODALITIES:
        raise VidinvertError(f"unknown --modality {modality!r}: choose one of {', '.join(MODALITIES)}")
    want = MODALITIES[modality]
    chosen: dict[tuple, Path] = {}
    order: list[tuple] = []
    for p in paths:
        f = ravdess_fields(p)
        if f is None or f[0] not in MODALITIES.values():
            key: tuple = ("file", str(p))
        else:
            key = ("ravdess", str(Path(p).parent.resolve()), f[1:])
        if key not in chosen:
            chosen[key] = p
            order.append(key)
        elif key[0] == "ravdess" and ravdess_fields(p)[0] == want:
            chosen[key] = p
    return [chosen[k] for k in order]


def sample_items(items: Sequence[MediaItem], n: int | None, seed: int = 0) -> list[MediaItem]:
    """``n`` items drawn without replacement by a numpy Generator seeded with ``seed``, in key order.

    The draw depends only on the sorted keys, ``n`` and ``seed``, so it is the same on every
    machine and for every rank. ``n`` None or >= len: all items.
    """
    ordered = sorted(items, key=lambda it: it.key)
    if n is None or n >= len(ordered):
        return ordered
    if n < 1:
        raise VidinvertError(f"--sample must be at least 1, got {n}")
    picked = np.random.default_rng(seed).choice(len(ordered), size=n, replace=False)
    return [ordered[i] for i in sorted(int(i) for i in picked)]


def discover_videos(source: str | Path, modality: str = "video-only", sample: int | None = None,
                    seed: int = 0) -> tuple[list[MediaItem], dict]:
    """Videos to evaluate and a description of the selection (counts for the summary).

    ``source``: a folder (RAVDESS or any layout, searched recursively), a glob, or a list file.
    """
    files, root = collect_files(source, VIDEO_SUFFIXES, "video")
    kept = dedupe_ravdess(files, modality)
    items = [MediaItem(p, _relative_key(p, root)) for p in kept]
    if len({it.key for it in items}) != len(items):  # the same file listed twice
        seen: dict[str, MediaItem] = {}
        for it in items:
            seen.setdefault(it.key, it)
        items = list(seen.values())
    chosen = sample_items(items, sample, seed)
    ravdess = sum(ravdess_fields(it.path) is not None for it in items)
    info = {
        "source": str(source),
        "files_found": len(files),
        "clips": len(items),
        "ravdess_clips": ravdess,
        "modality": modality,
        "duplicates_dropped": len(files) - len(items),
        "sample": sample,
        "seed": seed,
        "selected": len(chosen),
    }
    return chosen, info


def discover_images(source: str | Path, sample: int | None = None, seed: int = 0,
                    limit: int | None = None) -> tuple[list[MediaItem], dict]:
    """Aligned face images: the first ``limit`` in name order, then ``sample`` of them at random."""
    files, root = collect_files(source, IMAGE_SUFFIXES, "image")
    items = sorted((MediaItem(p, _relative_key(p, root)) for p in files), key=lambda it: it.key)
    if limit is not None:
        if limit < 1:
            raise VidinvertError(f"--limit must be at least 1, got {limit}")
        items = items[:limit]
    chosen = sample_items(items, sample, seed)
    return chosen, {"source": str(source), "files_found": len(files), "limit": limit,
                    "sample": sample, "seed": seed, "selected": len(chosen)}
