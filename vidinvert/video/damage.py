"""Damaged clips: what ``--on-damage`` means, the damaged frames a pass found, and the stand-ins.

``stop`` (the default): a packet the decoder rejects stops the pass with one line naming the
file, the frame and its time. ``conceal``: decoding goes on (see :mod:`vidinvert.video.reader`);
a frame that does not decode is replaced by a stand-in (:class:`StandIns`). Every damaged frame is
a :class:`DamagedFrame`; :func:`damage_message` is the pass's one notice, :func:`damage_report`
the report's ``decode_damage``.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from vidinvert.choices import OnDamage
from vidinvert.timespec import TimeRange
from vidinvert.video.index import PtsIndex


class DamagedFrame(NamedTuple):
    """A damaged frame of a pass: its index, time (seconds) and how it was repaired:
    ``concealed`` (decoded, the decoder hid the damage) or ``repeated`` (nothing decoded: the
    last good frame stands in)."""

    index: int
    time: float
    repair: str


def check_on_damage(on_damage) -> str:
    """``stop`` | ``conceal`` (:class:`~vidinvert.choices.OnDamage`), or one line naming the flag."""
    return str(OnDamage.parse(on_damage, "--on-damage"))


def damage_message(path, damaged: list[DamagedFrame]) -> str:
    """One line about the damaged frames of a pass (concealed by the decoder, or repeated)."""
    first = damaged[0]
    repeated = sum(d.repair == "repeated" for d in damaged)
    concealed = len(damaged) - repeated
    how = "the decoder concealed it, so those frames may show artefacts"
    if repeated:
        parts = [f"{concealed} concealed by the decoder"] if concealed else []
        how = ", ".join([*parts, f"{repeated} did not decode and repeat the last good frame"])
    return (f"{Path(path).name}: damaged video data in {len(damaged)} frame(s) (first at frame {first.index},"
            f" {first.time:.3f} s); {how}")


def damage_report(damaged: list[DamagedFrame]) -> dict:
    """The report's ``decode_damage``: how many frames were damaged, the first one's index, and
    each one (``frame``, ``time`` in seconds, ``repair``: ``concealed`` or ``repeated``)."""
    return {"frames": len(damaged), "first": damaged[0].index if damaged else None,
            "list": [{"frame": d.index, "time": round(d.time, 6), "repair": d.repair} for d in damaged]}


class StandIns:
    """``conceal``: the frames of the packet index that did not decode, as copies of a good frame.

    ``next`` is the index of the next frame due; :meth:`before` (called with each good frame, and
    at the end with ``len(index)`` and no image) returns ``(index, pts, seconds, rgb, duration)``
    for the frames due before ``idx`` that did not come: copies of the last good frame, or of
    ``rgb`` itself before the first. ``start_pts``/``time_base`` turn pts into seconds."""

    def __init__(self, index: PtsIndex, start_pts: int, time_base, start_idx: int,
                 damaged: list[DamagedFrame]) -> None:
        self.index, self.start_pts, self.time_base = index, start_pts, time_base
        self.next, self.damaged = start_idx, damaged
        self.last: np.ndarray | None = None

    def before(self, idx: int, rgb: np.ndarray | None, tr: TimeRange | None) -> list[tuple]:
        out = []
        source = self.last if self.last is not None else rgb
        for i in range(self.next, idx):
            pts = int(self.index.pts[i])
            time = float((pts - self.start_pts) * self.time_base)
            if tr is not None and (tr.is_past_end(i, time) or not tr.contains(i, time)):
                continue
            if source is None:  # nothing decoded at all
                break
            out.append((i, pts, time, source.copy(), int(self.index.durations[i]) or None))
            self.damaged.append(DamagedFrame(i, time, "repeated"))
        self.next = max(self.next, idx + 1)
        if rgb is not None:
            self.last = rgb
        return out
