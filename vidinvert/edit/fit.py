"""Fit an InterFaceGAN edit direction (linear SVM normal) from saved latents and binary labels.

Latents come from ``--save-latents`` files: ``.npz`` with ``w`` [N, L, D] (w+ per frame) and,
when written by the video pipeline, ``index`` [N] (frame indices; also ``f`` and ``time``,
not used here). A single file or several chunk files (or a folder of them) are accepted; frames
are looked up by ``index`` when present, else by row.

Labels: a CSV with a header and the columns ``latent_file, frame_index, label`` (label 0/1,
also -1/1 or false/true). ``latent_file`` names one of the given latent files by its path as
given, its absolute path, its file name or its stem; for a folder of chunks, by the folder.

The direction is the unit normal of a linear SVM (scikit-learn ``LinearSVC``) separating label 1
from label 0, pointing towards label 1, as InterFaceGAN. ``space='wplus'`` fits on the flattened
w+ and gives the official boundary form (1, L*D) (1, 9216 at 1024 px); ``space='w'`` fits on
the mean over the L rows and gives (1, D), broadcast over all rows by ``vidinvert edit``.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from vidinvert.choices import FitSpace
from vidinvert.errors import VidinvertError
from vidinvert.fileio import atomic_path, check_output

log = logging.getLogger(__name__)

SPACES = FitSpace.values()
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "-1", "false", "no", "n", "f"}


@dataclass(frozen=True)
class FitResult:
    """``direction`` float32 (1, L*D) or (1, D), unit norm; training accuracy; counts per class."""

    direction: np.ndarray
    space: str
    accuracy: float
    n_positive: int
    n_negative: int
    shape_wplus: tuple[int, int]


class LatentStore:
    """Frames of one or more latent files, addressable by (file name, frame index)."""

    def __init__(self, paths: Sequence[str | Path]) -> None:
        if not paths:
            raise VidinvertError("no latent files given")
        self._arrays: list[np.ndarray] = []  # w per chunk file
        self._frames: dict[str, dict[int, tuple[int, int]]] = {}  # alias -> frame -> (chunk, row)
        self.shape: tuple[int, int] | None = None
        for given in paths:
            p = Path(given).expanduser()
            if not p.exists():
                raise VidinvertError(f"latent file not found: {p}")
            files = sorted(p.glob("*.npz")) if p.is_dir() else [p]
            if not files:
                raise VidinvertError(f"no .npz latent files in folder {p}")
            frames: dict[int, tuple[int, int]] = {}
            for f in files:
                for frame, row in self._read(f).items():
                    if frame in frames:
                        raise VidinvertError(f"frame {frame} appears twice in the latent files of {p}")
                    frames[frame] = (len(self._arrays) - 1, row)
            for alias in {str(given), str(p), str(p.resolve()), p.name, p.stem}:
                if alias in self._frames and self._frames[alias] is not frames:
                    self._frames[alias] = {}  # ambiguous short name: only full paths then
                    continue
                self._frames[alias] = frames

    def _read(self, f: Path) -> dict[int, int]:
        try:
            with np.load(f, allow_pickle=False) as z:
                if "w" not in z.files:
                    raise VidinvertError(f"latent file {f} has no 'w' array (keys: {', '.join(z.files)})")
                w = np.asarray(z["w"], dtype=np.float32)
                index = np.asarray(z["index"]).astype(np.int64) if "index" in z.files else None
        except VidinvertError:
            raise
        except Exception as exc:
            raise VidinvertError(f"cannot read latent file {f}: {type(exc).__name__}: {exc}") from None
        if w.ndim == 2:
            w = w[:, None, :]
        if w.ndim != 3:
            raise VidinvertError(f"latent file {f}: 'w' must be [N, L, D], got shape {w.shape}")
        if self.shape is None:
            self.shape = (w.shape[1], w.shape[2])
        elif self.shape != (w.shape[1], w.shape[2]):
            raise VidinvertError(f"latent file {f}: w rows {w.shape[1:]} differ from the other files' {self.shape}")
        if index is not None and index.shape != (w.shape[0],):
            raise VidinvertError(f"latent file {f}: 'index' has shape {index.shape}, expected ({w.shape[0]},)")
        self._arrays.append(w)
        frames = index if index is not None else np.arange(w.shape[0])
        return {int(fr): row for row, fr in enumerate(frames)}

    def get(self, name: str, frame: int) -> np.ndarray:
        """w+ [L, D] of ``frame`` in the latent file called ``name``."""
        frames = self._frames.get(name) or self._frames.get(Path(name).name) or self._frames.get(Path(name).stem)
        if frames is not None and not frames and name in self._frames:
            raise VidinvertError(f"latent file name {name!r} is ambiguous among the given files: use its path in the labels")
        if not frames:
            known = sorted(k for k, v in self._frames.items() if v and "/" not in k)
            raise VidinvertError(f"labels name latent file {name!r}, which is not among the given ones ({', '.join(known)})")
        if frame not in frames:
            raise VidinvertError(f"latent file {name!r} has no frame {frame}")
        chunk, row = frames[frame]
        return self._arrays[chunk][row]


def read_labels(path: str | Path) -> list[tuple[str, int, int]]:
    """CSV -> [(latent_file, frame_index, label 0/1)]; the header must name the three columns."""
    p = Path(path)
    if not p.exists():
        raise VidinvertError(f"labels file not found: {p}")
    rows: list[tuple[str, int, int]] = []
    with p.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        cols = [c.strip() for c in (reader.fieldnames or [])]
        need = ("latent_file", "frame_index", "label")
        if any(c not in cols for c in need):
            raise VidinvertError(f"labels file {p}: the header must have the columns {', '.join(need)}; found {cols}")
        for line, rec in enumerate(reader, start=2):
            rec = {k.strip(): (v or "").strip() for k, v in rec.items() if k is not None}
            try:
                frame = int(rec["frame_index"])
            except ValueError:
                raise VidinvertError(f"labels file {p} line {line}: frame_index {rec['frame_index']!r} is not an integer") from None
            lab = rec["label"].lower()
            if lab in _TRUE:
                label = 1
            elif lab in _FALSE:
                label = 0
            else:
                raise VidinvertError(f"labels file {p} line {line}: label {rec['label']!r} is not binary (0/1)")
            rows.append((rec["latent_file"], frame, label))
    if not rows:
        raise VidinvertError(f"labels file {p} has no rows")
    return rows


def fit_direction(w_plus: np.ndarray, labels: np.ndarray, space: str = "wplus", *, c: float = 1.0) -> FitResult:
    """Linear-SVM normal separating ``labels`` (0/1) over latents ``w_plus`` [N, L, D].

    ``c``: the SVM's C (1.0, as InterFaceGAN). With few labelled frames in W+ (N << L*D) a
    smaller C (0.01-0.1) regularises more and fits less of the frame-to-frame noise.

    Returns the unit normal (float32) pointing from label 0 towards label 1:
    (1, L*D) for ``space='wplus'``, (1, D) for ``space='w'`` (features: mean over the L rows).
    """
    from sklearn.svm import LinearSVC

    if space not in SPACES:
        raise VidinvertError(f"--space must be one of {', '.join(SPACES)}, got {space!r}")
    if not c > 0:
        raise VidinvertError(f"--svm-c must be positive, got {c}")
    w_plus = np.asarray(w_plus, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64)
    if w_plus.ndim != 3 or w_plus.shape[0] != y.shape[0]:
        raise VidinvertError(f"expected latents [N, L, D] and N labels, got {w_plus.shape} and {y.shape}")
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    if n_pos == 0 or n_neg == 0:
        raise VidinvertError(f"the labels need both classes: {n_pos} positive, {n_neg} negative")
    x = w_plus.reshape(len(w_plus), -1) if space == "wplus" else w_plus.mean(axis=1)
    svm = LinearSVC(C=c, dual="auto", max_iter=20_000, tol=1e-5)
    svm.fit(x, y)
    normal = svm.coef_.reshape(-1).astype(np.float64)
    norm = float(np.linalg.norm(normal))
    if not np.isfinite(norm) or norm == 0.0:
        raise VidinvertError("the SVM found no separating direction (all-zero normal)")
    direction = (normal / norm).astype(np.float32)[None, :]
    accuracy = float((svm.predict(x) == y).mean())
    return FitResult(direction, space, accuracy, n_pos, n_neg, (w_plus.shape[1], w_plus.shape[2]))


def fit_from_files(latents: Sequence[str | Path], labels_csv: str | Path, space: str = "wplus", *,
                   c: float = 1.0) -> FitResult:
    """Look up every labelled frame in ``latents`` and fit the direction (see :func:`fit_direction`)."""
    if space not in SPACES:
        raise VidinvertError(f"--space must be one of {', '.join(SPACES)}, got {space!r}")
    store = LatentStore(latents)
    rows = read_labels(labels_csv)
    w = np.stack([store.get(name, frame) for name, frame, _ in rows])
    y = np.array([lab for _, _, lab in rows])
    return fit_direction(w, y, space, c=c)


def save_direction(direction: np.ndarray, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write the direction as a float32 ``.npy`` (temp file + rename)."""
    dest = Path(out)
    if dest.suffix != ".npy":
        raise VidinvertError(f"--out must be a .npy file, got {dest}")
    check_output(dest, overwrite=overwrite)
    with atomic_path(dest, overwrite=overwrite) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.asarray(direction, dtype=np.float32))
    return dest


@dataclass(frozen=True)
class FitRequest:
    """``directions fit``: latents (``.npz`` files or chunk folders), a labels CSV, the output ``.npy``,
    the space (``wplus`` or ``w``) and the SVM's C."""

    latents: tuple[Path, ...]
    labels: Path
    out: Path
    space: str = FitSpace.WPLUS.value
    svm_c: float = 1.0
    overwrite: bool = False

    def check(self) -> None:
        FitSpace.parse(self.space, "--space")
        if not math.isfinite(float(self.svm_c)) or float(self.svm_c) <= 0:
            raise VidinvertError(f"--svm-c {self.svm_c}: give a finite number above 0")
        check_output(Path(self.out), overwrite=self.overwrite, inputs=[*self.latents, self.labels])


def run_fit(request: FitRequest) -> dict:
    """Fit and write the direction; the summary (output, space, shape, training accuracy, counts). A
    poor separation (training accuracy under 0.75) is logged as a warning."""
    request.check()
    space = str(FitSpace.parse(request.space, "--space"))
    res = fit_from_files(request.latents, request.labels, space, c=float(request.svm_c))
    save_direction(res.direction, request.out, overwrite=request.overwrite)
    if res.accuracy < 0.75:
        log.warning(f"the SVM separates the labels poorly (training accuracy {res.accuracy:.2f}): check the labels")
    return {"output": str(request.out), "space": space, "shape": list(res.direction.shape),
            "train_accuracy": res.accuracy, "positive": res.n_positive, "negative": res.n_negative}


__all__ = ["FitRequest", "FitResult", "LatentStore", "SPACES", "fit_direction", "fit_from_files", "read_labels", "run_fit",
           "save_direction"]
