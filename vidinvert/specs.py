"""The small grammars of option values, torch-free (the request checks them before anything loads).

- ``--layers`` / ``--style-layers``: ``all | coarse | middle | fine | A-B | A,B,C`` -> w+ rows;
- ``--region``: face parts, comma-separated or repeated -> names;
- ``--text``: a prompt -> its output tag.

The implementations (:mod:`vidinvert.edit.layers`, :mod:`vidinvert.face.regions`) use these same
functions, so a spec the request accepts is one the job understands.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from vidinvert.choices import LayerPreset
from vidinvert.errors import VidinvertError

LAYER_GROUPS = LayerPreset.values()
#: Face parts ``--region`` names (``hair`` and ``neck`` need the parsing weights).
REGIONS = ("mouth", "eyes", "brows", "nose", "skin", "face", "hair", "neck")


def group_rows(group: str, n_latent: int) -> list[int]:
    """Rows of a named group for a generator with ``n_latent`` w+ rows: coarse 0-3 (4-8 px),
    middle 4-7 (16-32 px), fine 8 to the last."""
    if group == LayerPreset.ALL:
        return list(range(n_latent))
    lo, hi = {"coarse": (0, 3), "middle": (4, 7), "fine": (8, n_latent - 1)}[str(group)]
    return [r for r in range(lo, min(hi, n_latent - 1) + 1)]


def parse_layers(spec: str, n_latent: int, *, what: str = "--layers") -> list[int]:
    """A layer spec -> the sorted, distinct rows it names. Raises VidinvertError on a bad spec
    (unknown word, reversed or out-of-range row, nothing selected)."""
    text = str(spec).strip().lower().replace(" ", "")
    if not text:
        raise VidinvertError(f"empty {what}: give all, coarse, middle, fine, A-B or A,B,C")
    rows: set[int] = set()
    for item in text.split(","):
        if item in LAYER_GROUPS:
            rows.update(group_rows(item, n_latent))
            continue
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if m is None:
            raise VidinvertError(
                f"bad {what} item {item!r} in {spec!r}: use all, coarse, middle, fine, A-B or A,B,C"
                f" (rows 0..{n_latent - 1})")
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) is not None else a
        if a > b:
            raise VidinvertError(f"bad {what} range {item!r}: the first row must not exceed the last")
        if b >= n_latent:
            raise VidinvertError(f"{what} {spec!r} names row {b}, but this generator has rows 0..{n_latent - 1}")
        rows.update(range(a, b + 1))
    if not rows:
        raise VidinvertError(f"{what} {spec!r} selects no row of this generator")
    return sorted(rows)


def parse_regions(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"mouth,eyes"`` (or a list of such strings, e.g. a repeated option) -> ``("mouth", "eyes")``.

    Case-insensitive, duplicates dropped (first order kept); None or empty -> ``()``.
    An unknown name raises :class:`VidinvertError` listing the valid ones.
    """
    if text is None:
        return ()
    items = [text] if isinstance(text, str) else list(text)
    out: list[str] = []
    for item in items:
        for name in str(item).split(","):
            name = name.strip().lower()
            if not name:
                continue
            if name not in REGIONS:
                raise VidinvertError(f"unknown --region {name!r}: choose from {', '.join(REGIONS)} (comma-separated)")
            if name not in out:
                out.append(name)
    return tuple(out)


#: ``--text``: the neutral phrase a prompt is measured against, and the channel threshold β (StyleCLIP's defaults).
TEXT_NEUTRAL = "a face"
TEXT_BETA = 0.15
#: Output tags from prompts: at most this many characters.
TAG_CHARS = 40


def prompt_tag(prompt: str, others: Sequence[str] = ()) -> str:
    """An output tag from a prompt: lowercase ``[a-z0-9-]``, at most :data:`TAG_CHARS` characters, plus a
    short hash of the whole prompt when shortened or when another prompt of ``others`` would give the
    same tag (``"a face with a beard"`` -> ``a-face-with-a-beard``)."""
    def slug(p: str) -> str:
        return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", p.lower())).strip("-") or "text"

    base = slug(prompt)
    short = base[:TAG_CHARS].rstrip("-")
    collides = any(slug(o)[:TAG_CHARS].rstrip("-") == short and o != prompt for o in others)
    if short == base and not collides:
        return base
    digest = hashlib.sha1(prompt.encode("utf-8")).hexdigest()[:6]
    return f"{short[:TAG_CHARS - 7].rstrip('-')}-{digest}"
