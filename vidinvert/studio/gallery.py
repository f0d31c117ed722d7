"""The studio's directions: the names that resolve, the discovered ``sefa_*`` files, the uploads; and
their gallery, a ``directions preview`` contact sheet (an existing one with its layout file, or one
built in the background) whose cells pick a direction and strength when clicked."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vidinvert.edit.discover import INDEX_FILE
from vidinvert.errors import VidinvertError
from vidinvert.pipeline.preview import PreviewRequest, run_preview
from vidinvert.pipeline.session import Media
from vidinvert.studio.controls import direction_value
from vidinvert.weights.directions import available_directions

__all__ = ["SHEET_SIZE", "Sheet", "build_sheet", "direction_choices", "find_sheet", "sefa_files"]

#: The cell size of a sheet the studio builds (``--preview-size``; the full size for smaller generators).
SHEET_SIZE = 256
#: The name ``directions discover --preview`` gives its sheet.
DISCOVER_SHEET = "preview.png"


def _folders(roots: list[Path]) -> list[Path]:
    """Each root and its sub-folders one level down (hidden ones left out)."""
    out = []
    for r in roots:
        if r.is_dir():
            out.append(r)
            out += sorted(d for d in r.iterdir() if d.is_dir() and not d.name.startswith("."))
    return out


def sefa_files(roots: list[Path]) -> list[Path]:
    """``sefa_*.npy`` files (``directions discover``) in ``roots`` and one level below, sorted."""
    found: list[Path] = []
    for d in _folders(roots):
        found += sorted(d.glob("sefa_*.npy"))
    return list(dict.fromkeys(p.resolve() for p in found))


def direction_choices(roots: list[Path], weights_dir: Path | None, uploads: Path) -> list[tuple[str, str]]:
    """``(label, value)`` of every direction the page offers: ``--attr`` names found in the weights
    folders, discovered ``sefa_*`` files under ``roots``, uploaded ``.npy`` / ``.npz`` files (values: see
    :func:`~vidinvert.studio.controls.direction_value`)."""
    names = available_directions(weights_dir)
    out = [(f"{name} (--attr)", direction_value("attr", name)) for name in sorted(names)]
    seen = {p.resolve() for p in names.values()}
    for p in sefa_files(roots):
        if p not in seen:
            out.append((f"{p.stem} ({p.parent.name}/)", direction_value("file", p)))
            seen.add(p)
    if uploads.is_dir():
        for p in sorted([*uploads.glob("*.npy"), *uploads.glob("*.npz")]):
            if p.resolve() not in seen:
                out.append((f"{p.stem} (uploaded)", direction_value("file", p.resolve())))
    return out


@dataclass
class Sheet:
    """A contact sheet: ``image`` (PNG), its ``layout`` (``directions preview``'s JSON) and the
    direction value of each row."""

    image: Path
    layout: dict
    rows: list[str]

    def pick(self, x: float, y: float) -> tuple[str, float] | None:
        """The (direction value, strength) of the cell at pixel ``(x, y)``, or None off the cells."""
        for cell in self.layout.get("cells", []):
            x0, y0, x1, y1 = cell["box"]
            if x0 <= x < x1 and y0 <= y < y1 and cell["row"] < len(self.rows):
                return self.rows[cell["row"]], float(cell["strength"])
        return None


def _rows_of(layout: dict) -> list[str]:
    """The direction value of each row of an existing sheet (its files, as the layout names them)."""
    rows = []
    for d in layout.get("directions", []):
        source = Path(str(d.get("source", "")))
        rows.append(direction_value("file", source.resolve()) if source.is_file() else "")
    return rows


def find_sheet(roots: list[Path]) -> Sheet | None:
    """An existing sheet: ``preview.png`` and ``preview.json`` beside a ``directions.json`` index
    (``directions discover --preview``) in ``roots`` or one level below."""
    for d in _folders(roots):
        png, layout = d / DISCOVER_SHEET, d / "preview.json"
        if (d / INDEX_FILE).is_file() and png.is_file() and layout.is_file():
            try:
                data = json.loads(layout.read_text())
            except ValueError:
                continue
            if isinstance(data, dict) and data.get("cells"):
                return Sheet(png, data, _rows_of(data))
    return None


def build_sheet(inverter, media: Media, frame: int, choices: list[tuple[str, str]], dest: Path, *, face: str,
                detector: str, weights_dir: Path | None,
                progress: Callable[[int, int], None] | None = None) -> Sheet:
    """A sheet of every direction in ``choices`` on ``frame``'s face (its rows in that order; cells at
    :data:`SHEET_SIZE` px), written to ``dest`` (and its layout beside it)."""
    attrs = [v.partition(":")[2] for _, v in choices if v.startswith("attr:")]
    files = [Path(v.partition(":")[2]) for _, v in choices if v.startswith("file:")]
    if not attrs and not files:
        raise VidinvertError("no directions to show: put NAME.npy in the weights folder, run `vidinvert directions "
                             "discover`, or upload a .npy")
    size = SHEET_SIZE if inverter.size > SHEET_SIZE else None
    req = PreviewRequest(input=media.path, output=dest, attrs=tuple(attrs), directions=tuple(files),
                         at=f"{int(frame)}f" if media.kind == "video" else None, preview_size=size,
                         face=face if face not in ("all",) else "largest", detector=str(detector),
                         weights_dir=weights_dir, overwrite=True)
    summary = run_preview(inverter, req, progress=progress)
    layout = json.loads(Path(summary["layout"]).read_text())
    rows = [direction_value("attr", a) for a in attrs] + [direction_value("file", p) for p in files]
    return Sheet(dest, layout, rows)
