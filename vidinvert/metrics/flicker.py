"""Temporal flicker of aligned face crops."""

from __future__ import annotations

import torch


class FlickerMeter:
    """Streaming mean absolute difference between consecutive aligned crops.

    Feed crops ``[B,3,S,S]`` in [-1,1] in frame order (chunks may have any size); ``value`` is
    the mean over all consecutive pairs of ``mean |x_t - x_{t-1}|`` measured in [0,1] units.
    ``reset()`` starts a new run (e.g. after a gap without a face, so a cut is not counted).
    ``per_frame``: one value per crop fed, the pair ending there (None at a run's first crop).
    """

    def __init__(self) -> None:
        self._last: torch.Tensor | None = None
        self._sum = 0.0
        self._n = 0
        self.per_frame: list[float | None] = []

    def reset(self) -> None:
        self._last = None

    def update(self, crops: torch.Tensor) -> None:
        x = crops.detach().float()
        if x.shape[0] == 0:
            return
        if self._last is not None:
            x = torch.cat([self._last.to(x.device), x])
        else:
            self.per_frame.append(None)  # a run's first crop ends no pair
        if x.shape[0] >= 2:
            d = (x[1:] - x[:-1]).abs().mean(dim=(1, 2, 3)) / 2.0  # [-1,1] -> [0,1] units
            self._sum += float(d.sum())
            self._n += int(d.numel())
            self.per_frame += [float(v) for v in d.double()]
        self._last = x[-1:].clone()

    @property
    def value(self) -> float | None:
        return self._sum / self._n if self._n else None

    @property
    def pairs(self) -> int:
        return self._n

    def state(self) -> dict:
        """The running state as tensors (saved by resumable runs)."""
        return {"sum": torch.tensor(self._sum, dtype=torch.float64), "n": torch.tensor(self._n),
                "last": self._last if self._last is not None else torch.zeros(0),
                "per_frame": torch.tensor([float("nan") if v is None else v for v in self.per_frame],
                                          dtype=torch.float64)}

    def load(self, st: dict) -> None:
        """Restore what :meth:`state` returned."""
        self._sum = float(st["sum"])
        self._n = int(st["n"])
        self._last = st["last"] if st["last"].numel() else None
        self.per_frame = [None if v != v else float(v) for v in st["per_frame"].tolist()]
