"""A labelled grid of equally sized images (uint8 RGB) and its layout as plain data."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)


def _font(px: int):
    try:
        return ImageFont.load_default(size=px)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def strength_label(s: float) -> str:
    return "S=0" if s == 0 else f"S={s:+g}"


def compose_sheet(rows: Sequence[np.ndarray], row_names: Sequence[str], strengths: Sequence[float], *,
                  title: str = "", gap: int = 4) -> tuple[np.ndarray, dict]:
    """Lay out ``rows`` (each uint8 ``[C, R, R, 3]``, C = len(strengths)) as a labelled grid.

    A title line on top, a header row of strength labels, a label column of ``row_names`` on the left;
    cells are ``R x R`` with ``gap`` pixels between them. Returns (sheet uint8 ``[H, W, 3]`` RGB,
    layout dict: ``image_size`` [W, H], ``cell_size``, ``rows`` (names), ``columns`` (labels),
    ``strengths``, ``cells`` (row, col, strength, box ``[x0, y0, x1, y1)``), ``row_label_boxes``,
    ``column_label_boxes``, ``title``).
    """
    if len(rows) != len(row_names) or not rows:
        raise ValueError("compose_sheet: one name per row, at least one row")
    c, r = len(strengths), int(rows[0].shape[1])
    if any(a.shape != (c, r, r, 3) for a in rows):
        raise ValueError(f"compose_sheet: every row must be [{c}, {r}, {r}, 3]")
    px = max(11, min(32, r // 12))
    font = _font(px)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def width(text: str) -> int:
        box = probe.textbbox((0, 0), text, font=font)
        return int(box[2] - box[0])

    col_labels = [strength_label(s) for s in strengths]
    line = px + 2 * gap
    label_w = min(max(width(n) for n in row_names) + 2 * gap, max(r, 8 * px))
    x_cells = label_w + gap
    y_title = gap
    y_header = y_title + (line if title else 0)
    y_cells = y_header + line
    w = x_cells + c * (r + gap)
    h = y_cells + len(rows) * (r + gap)
    if title:
        w = max(w, width(title) + 2 * gap)
    sheet = Image.new("RGB", (w, h), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((gap, y_title), title, fill=INK, font=font)
    cells, col_boxes, row_boxes = [], [], []
    for j, text in enumerate(col_labels):
        x0 = x_cells + j * (r + gap)
        draw.text((x0 + max(0, (r - width(text)) // 2), y_header + gap // 2), text, fill=INK, font=font)
        col_boxes.append([x0, y_header, x0 + r, y_cells])
    for i, (name, imgs) in enumerate(zip(row_names, rows)):
        y0 = y_cells + i * (r + gap)
        shown = _fit(name, label_w - 2 * gap, width)
        draw.text((gap, y0 + max(0, (r - px) // 2)), shown, fill=INK, font=font)
        row_boxes.append([0, y0, label_w, y0 + r])
        for j in range(c):
            x0 = x_cells + j * (r + gap)
            sheet.paste(Image.fromarray(np.ascontiguousarray(imgs[j])), (x0, y0))
            cells.append({"row": i, "col": j, "strength": float(strengths[j]), "box": [x0, y0, x0 + r, y0 + r]})
    layout = {"image_size": [w, h], "cell_size": r, "rows": list(row_names), "columns": col_labels,
              "strengths": [float(s) for s in strengths], "cells": cells, "row_label_boxes": row_boxes,
              "column_label_boxes": col_boxes, "title": title}
    return np.asarray(sheet), layout


def _fit(text: str, max_w: int, width) -> str:
    """``text`` shortened with an ellipsis until it fits ``max_w`` pixels."""
    if width(text) <= max_w:
        return text
    while len(text) > 1 and width(text + "...") > max_w:
        text = text[:-1]
    return text + "..."


__all__ = ["compose_sheet", "strength_label"]
