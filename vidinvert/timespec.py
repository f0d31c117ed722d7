"""The one time grammar of the CLI (trims, strength keyframes).

``12.5`` or ``12.5s`` is a time in seconds, ``300f`` is a frame index (0-based, in decode
order of the presented frames). Intervals are half-open: ``--end`` is exclusive.
A frame at (index ``i``, presentation time ``t`` seconds) is inside ``[start, end)`` when
it is at or after ``start`` and before ``end``, each bound compared in its own unit.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from vidinvert.errors import VidinvertError

_NUM = r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?"
_TIME_RE = re.compile(rf"^\s*(?P<num>{_NUM})\s*(?P<unit>s|f)?\s*$")


@dataclass(frozen=True)
class TimePoint:
    """A point on the clip's timeline, either in seconds or as a frame index."""

    seconds: float | None = None
    frame: int | None = None

    def __post_init__(self) -> None:
        if (self.seconds is None) == (self.frame is None):
            raise ValueError("TimePoint takes exactly one of seconds= or frame=")

    def at_or_before(self, index: int, time_s: float) -> bool:
        """True when this point is at or before the frame (index, time_s)."""
        if self.frame is not None:
            return self.frame <= index
        # A small tolerance absorbs time-base rounding (1/90000 s and the like).
        return self.seconds <= time_s + 1e-6

    def __str__(self) -> str:
        return f"{self.frame}f" if self.frame is not None else f"{self.seconds:g}s"


def parse_time(text: str | float | int, *, what: str = "time") -> TimePoint:
    """Parse ``12.5``, ``12.5s`` (seconds) or ``300f`` (frame index)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
        if not math.isfinite(value) or value < 0:
            raise VidinvertError(f"invalid {what} {text!r}: must be a non-negative number of seconds")
        return TimePoint(seconds=value)
    m = _TIME_RE.match(str(text))
    if not m:
        raise VidinvertError(
            f"invalid {what} {text!r}: use seconds (12.5 or 12.5s) or a frame index (300f)"
        )
    num, unit = m.group("num"), m.group("unit") or "s"
    if unit == "f":
        if not re.fullmatch(r"[0-9]+", num):
            raise VidinvertError(f"invalid {what} {text!r}: a frame index is a whole number, e.g. 300f")
        return TimePoint(frame=int(num))
    seconds = float(num)
    if not math.isfinite(seconds):
        raise VidinvertError(f"invalid {what} {text!r}: give a finite number of seconds")
    return TimePoint(seconds=seconds)


@dataclass(frozen=True)
class TimeRange:
    """Half-open ``[start, end)``; ``None`` means the clip's start / end."""

    start: TimePoint | None = None
    end: TimePoint | None = None

    def contains(self, index: int, time_s: float) -> bool:
        if self.start is not None and not self.start.at_or_before(index, time_s):
            return False
        if self.end is not None and self.end.at_or_before(index, time_s):
            return False
        return True

    def is_past_end(self, index: int, time_s: float) -> bool:
        """True once a frame is at or after ``end`` (decoding can stop)."""
        return self.end is not None and self.end.at_or_before(index, time_s)

    @classmethod
    def parse(cls, start: str | None, end: str | None) -> TimeRange:
        s = parse_time(start, what="--start") if start not in (None, "") else None
        e = parse_time(end, what="--end") if end not in (None, "") else None
        if s is not None and e is not None and (s.frame is None) == (e.frame is None):
            a = s.frame if s.frame is not None else s.seconds
            b = e.frame if e.frame is not None else e.seconds
            if b <= a:
                raise VidinvertError(f"--end {e} must be after --start {s}")
        return cls(s, e)


@dataclass(frozen=True)
class Keyframes:
    """A piecewise-linear value over time, e.g. ``0s:0,2s:3`` (constant outside the keys)."""

    keys: tuple[tuple[TimePoint, float], ...]

    def value_at(self, index: int, time_s: float) -> float:
        """Linear between keys, constant before the first and after the last.

        All keys share one unit (checked at parse time): frame keys are compared with the
        frame's index, second keys with its presentation time.
        """
        x = float(index) if self.keys[0][0].frame is not None else float(time_s)
        coords = [float(k.frame if k.frame is not None else k.seconds) for k, _ in self.keys]
        values = [v for _, v in self.keys]
        if x <= coords[0]:
            return values[0]
        for x0, x1, v0, v1 in zip(coords, coords[1:], values, values[1:]):
            if x <= x1:
                return v0 + (v1 - v0) * (x - x0) / (x1 - x0)
        return values[-1]


def _finite_strength(value: float, text) -> float:
    if not math.isfinite(value):
        raise VidinvertError(f"invalid --strength {text!r}: give finite numbers")
    return value


def parse_strength(text: str | float) -> float | Keyframes:
    """``3`` -> 3.0; ``0s:0,2s:3`` -> Keyframes (all keys in one unit, strictly increasing)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return _finite_strength(float(text), text)
    s = str(text).strip()
    if ":" not in s:
        try:
            return _finite_strength(float(s), text)
        except ValueError:
            raise VidinvertError(
                f"invalid --strength {text!r}: a number (3, -1.5) or keyframes like 0s:0,2s:3"
            ) from None
    keys: list[tuple[TimePoint, float]] = []
    for part in s.split(","):
        if ":" not in part:
            raise VidinvertError(f"invalid strength keyframe {part!r} in {text!r}: use TIME:VALUE, e.g. 2s:3")
        t, v = part.rsplit(":", 1)
        tp = parse_time(t, what="keyframe time")
        try:
            val = float(v)
        except ValueError:
            raise VidinvertError(f"invalid strength value {v!r} in keyframe {part!r}") from None
        _finite_strength(val, text)
        keys.append((tp, val))
    units = {k.frame is not None for k, _ in keys}
    if len(units) != 1:
        raise VidinvertError(f"strength keyframes {text!r} mix seconds and frames: use one unit")
    coords = [k.frame if k.frame is not None else k.seconds for k, _ in keys]
    if any(b <= a for a, b in zip(coords, coords[1:])):
        raise VidinvertError(f"strength keyframes {text!r} must be in strictly increasing time order")
    return Keyframes(tuple(keys))


def check_unit_schedule(flag: str, value: float | Keyframes) -> None:
    """A schedule of fractions (``--feature-keep``, ``--style-strength``): a finite number, or
    keyframe values, each within [0, 1]."""
    vals = [v for _, v in value.keys] if isinstance(value, Keyframes) else [value]
    for v in vals:
        v = float(v)
        if not math.isfinite(v) or not 0.0 <= v <= 1.0:
            raise VidinvertError(f"{flag} {v:g}: must be a finite number between 0 and 1")
