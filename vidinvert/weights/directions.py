"""Where ``--attr NAME`` finds its direction file (torch-free: names are resolved before models load).

A name is looked up, with friendly aliases (``smile`` -> ``Smiling``), as ``NAME.npy`` or
``NAME_boundary.npy`` in each weights folder and its ``directions/`` and ``boundaries/`` subfolders.
"""

from __future__ import annotations

from pathlib import Path

from vidinvert.errors import VidinvertError
from vidinvert.weights.registry import REGISTRY, direction_sources_short, search_dirs

# Official boundaries shipped with the Feature-Style encoder (CelebA attribute names).
OFFICIAL_BOUNDARIES = ("Smiling", "Eyeglasses", "Heavy_Makeup")
# Friendly names -> candidates in order of preference (file stems, case-insensitive).
ALIASES: dict[str, tuple[str, ...]] = {
    "smile": ("Smiling", "smile"),
    "smiling": ("Smiling", "smile"),
    "glasses": ("Eyeglasses", "glasses", "eyeglasses"),
    "eyeglasses": ("Eyeglasses", "eyeglasses", "glasses"),
    "makeup": ("Heavy_Makeup", "makeup"),
    "heavy_makeup": ("Heavy_Makeup", "makeup"),
    "age": ("age", "Age"),
    "pose": ("pose", "Pose"),
    "gender": ("gender", "Gender", "Male"),
}


def registry_name(attr: str) -> str | None:
    """The registry entry that downloads ``--attr`` ``attr``'s file (``smile`` -> ``boundary-smiling``), if any."""
    for c in ALIASES.get(attr.lower(), ()) + (attr,):
        name = "boundary-" + c.lower().replace("_", "-")
        if name in REGISTRY:
            return name
    return None


def direction_dirs(weights_dir: Path | None) -> list[Path]:
    """The folders direction files are searched in, in order (each weights folder, then its
    ``directions/`` and ``boundaries/``)."""
    dirs: list[Path] = []
    for d in search_dirs(weights_dir):
        dirs += [d, d / "directions", d / "boundaries"]
    return dirs


def available_directions(weights_dir: Path | None = None) -> dict[str, Path]:
    """Direction files found in the weights folders: ``{attribute name: path}`` (first found wins).

    ``Smiling_boundary.npy`` is listed as ``Smiling``; ``smile.npy`` as ``smile``.
    """
    found: dict[str, Path] = {}
    for d in direction_dirs(weights_dir):
        if not d.is_dir():
            continue
        for f in sorted(d.glob("*.npy")):
            stem = f.stem
            name = stem[: -len("_boundary")] if stem.endswith("_boundary") else stem
            found.setdefault(name, f)
    return found


def resolve_attr(attr: str, weights_dir: Path | None = None) -> tuple[str, Path]:
    """``--attr NAME`` -> (canonical name, file). Friendly aliases (``smile`` -> ``Smiling``).

    An unknown or absent name raises an error listing what is available and where files go.
    """
    avail = available_directions(weights_dir)
    lower = {k.lower(): k for k in avail}
    candidates = ALIASES.get(attr.lower(), ()) + (attr,)
    for c in candidates:
        if c.lower() in lower:
            key = lower[c.lower()]
            return key, avail[key]
    where = ", ".join(str(d) for d in direction_dirs(weights_dir)[:1])
    have = ", ".join(sorted(avail)) if avail else "none"
    aliases = sorted(a for a, cands in ALIASES.items()
                     if a.lower() not in lower and any(c.lower() in lower for c in cands))
    also = f" (also by the names {', '.join(aliases)})" if aliases else ""
    raise VidinvertError(
        f"unknown or missing direction {attr!r}: names with a file here: {have}{also}; put NAME.npy in {where}"
        f" or pass --direction FILE.npy. Known sources: {direction_sources_short()}"
    )


