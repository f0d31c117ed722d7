"""The work folder of a resumable run (``--resume``).

Next to the (first) output: ``.<output stem>.vidinvert-work/`` holds, per finished chunk, its
raw latents (``raw_NNNNNN.pt``) and one encoded segment per output (``seg_<name>_NNNNNN.<ext>``),
plus the report's running state after the last finished chunk and ``state.json`` (the run's
fingerprint and the finished chunks). No raw frames are stored. A stopped run started again with
``--resume`` skips the finished chunks' inversion, synthesis and encoding (decoding and the
face stage are replayed, they are cheap and keep tracking identical) and joins the segments at
the end. A work folder from a run with another configuration is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import torch

from vidinvert.engine import Latents
from vidinvert.errors import VidinvertError
from vidinvert.fileio import write_json
from vidinvert.runinfo import to_jsonable
from vidinvert.video import VideoWriter
from vidinvert.video.concat import concat_segments

log = logging.getLogger(__name__)

# Bump when the segments' encoding or the saved state changes: a work folder of another format
# is refused like one of another configuration (segments of both kinds cannot be joined).
WORK_FORMAT = 2  # 2: the running state carries the warping-error meter and the timeline


def _fingerprint(job, inverter) -> str:
    cfg = to_jsonable(job.config)
    for k in ("overwrite", "resume", "batch_size"):  # the batch is a ceiling (vidinvert.memory): resumable
        cfg.pop(k, None)
    src = Path(job.source).stat()
    files = {}
    for k, p in inverter.files.items():
        if p is not None:
            st = Path(p).stat()
            files[k] = [str(Path(p).resolve()), st.st_size, st.st_mtime_ns]
    edits = {}
    for o in job.outputs:
        if o.edit is not None:
            h = hashlib.sha256()
            for part in (o.edit.delta(), o.edit.style_delta()):
                if part is not None:
                    h.update(part.detach().to("cpu", torch.float32).numpy().tobytes())
            edits[o.name] = h.hexdigest()
    blob = {
        "format": WORK_FORMAT, "config": cfg, "face": to_jsonable(job.face), "range": str(job.time_range),
        "outputs": [[o.name, str(o.path)] for o in job.outputs], "edits": edits,
        "source": [str(Path(job.source).resolve()), src.st_size, src.st_mtime_ns], "models": files,
        "device": inverter.compute.device.type, "dtype": str(inverter.compute.dtype),
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()


class WorkDir:
    def __init__(self, path: Path, fingerprint: str, done: list[int]) -> None:
        self.path = path
        self.fingerprint = fingerprint
        self.done = set(done)

    @classmethod
    def open(cls, job, inverter) -> WorkDir:
        first = job.outputs[0].path
        path = first.parent / f".{first.stem}.vidinvert-work"
        fp = _fingerprint(job, inverter)
        state = path / "state.json"
        if state.exists():
            st = json.loads(state.read_text())
            if st.get("fingerprint") != fp:
                raise VidinvertError(
                    f"the work folder {path} belongs to a run with a different configuration, input or models; "
                    f"run the same command as before, or delete the folder to start over"
                )
            done = sorted(int(k) for k in st.get("done", []))
            if done:
                log.warning(f"resuming: {len(done)} finished chunk(s) found in {path}")
            return cls(path, fp, done)
        path.mkdir(parents=True, exist_ok=True)
        wd = cls(path, fp, [])
        wd._write_state()
        return wd

    # ------------------------------------------------------------------ chunks
    @property
    def last_done(self) -> int:
        return max(self.done) if self.done else -1

    def is_done(self, number: int) -> bool:
        return number in self.done

    def _raw(self, number: int) -> Path:
        return self.path / f"raw_{number:06d}.pt"

    def save_raw(self, chunk) -> None:
        """A chunk's raw latents: ``keys`` ``[n,2]`` (frame position in the chunk, track), ``w``, ``f``."""
        keys = sorted(chunk.latents)
        data = {"keys": torch.tensor(keys, dtype=torch.int64).reshape(-1, 2)}
        if keys:
            data["w"] = torch.cat([chunk.latents[k].w for k in keys])
            data["f"] = torch.cat([chunk.latents[k].f for k in keys])
        tmp = self._raw(chunk.number).with_suffix(".tmp")
        torch.save(data, tmp)
        tmp.replace(self._raw(chunk.number))

    def load_raw(self, chunk) -> None:
        p = self._raw(chunk.number)
        data = torch.load(p, map_location="cpu", weights_only=True)
        keys = [tuple(k) for k in data["keys"].tolist()]
        if keys != chunk.keys:
            raise VidinvertError(f"the work folder {self.path} does not match this clip's frames: delete it to start over")
        chunk.latents = {k: Latents(data["w"][j : j + 1], data["f"][j : j + 1]) for j, k in enumerate(keys)}

    # ------------------------------------------------------------------ running state
    def load_state(self):
        """The :meth:`~vidinvert.pipeline.state.RunState.snapshot` saved with the last finished chunk."""
        return torch.load(self.path / "running.pt", map_location="cpu", weights_only=True)

    def mark_done(self, number: int, snapshot: dict) -> None:
        """Called (in the writer thread) after the chunk's segments are written."""
        tmp = self.path / "running.tmp"
        torch.save(snapshot, tmp)
        tmp.replace(self.path / "running.pt")
        self.done.add(number)
        self._write_state()

    def _write_state(self) -> None:
        write_json(self.path / "state.json", {"fingerprint": self.fingerprint, "done": sorted(self.done)})

    # ------------------------------------------------------------------ outputs
    def sink(self, output, info, enc) -> SegmentSink:
        return SegmentSink(self, output, info, enc)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


class SegmentSink:
    """Frames of each chunk -> one encoded segment; ``close`` joins them into the output.

    ``enc``: the output's :class:`~vidinvert.pipeline.sinks.EncodeSettings` (segments carry no
    audio or other streams; the join adds them from ``enc.carry_from``).
    """

    def __init__(self, wd: WorkDir, output, info, enc) -> None:
        self.wd, self.output, self.info, self.enc = wd, output, info, enc
        self.suffix = output.path.suffix
        self.numbers: set[int] = set(wd.done)

    def _seg(self, number: int) -> Path:
        return self.wd.path / f"seg_{self.output.name}_{number:06d}{self.suffix}"

    def write_chunk(self, number: int, frames: list[np.ndarray], pts: list[int], durations: list,
                    planes: list | None = None) -> None:
        """``frames`` uint8 RGB; ``planes``: the same frames' samples (a frame's Planes is written instead
        of its RGB where given)."""
        enc = self.enc
        with VideoWriter(self._seg(number), like=self.info, codec=enc.codec, crf=enc.crf, preset=enc.preset,
                         overwrite=True, carry_from=None, time_range=None, planes=enc.planes) as w:
            for rgb, pl, p, d in zip(frames, planes or [None] * len(frames), pts, durations):
                w.write(rgb if pl is None else pl, p, d)
        self.numbers.add(number)

    def close(self) -> Path:
        enc = self.enc
        segments = [self._seg(n) for n in sorted(self.numbers)]
        return concat_segments(segments, self.output.path, like=self.info, carry_from=enc.carry_from,
                               trimmed=enc.trimmed, metadata=dict(enc.metadata), overwrite=enc.overwrite)

    def abort(self) -> None:
        """Keep the segments: they are what --resume continues from."""
