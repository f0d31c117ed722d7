"""How the CLI reports failures: one red line and exit code 1, the traceback only with --debug."""

from __future__ import annotations

import errno

import pytest
import torch

import vidinvert.cli.jobs as jobs
from vidinvert.cli.app import main


def _raising(monkeypatch, exc):
    def boom(kind, options):
        raise exc

    monkeypatch.setattr(jobs, "_run", boom)


@pytest.mark.parametrize("exc, words", [
    (ValueError("bad thing\nsecond line"), "internal error: ValueError: bad thing second line (run with --debug"),
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore"),
     "the GPU ran out of memory (CUDA out of memory. Tried to allocate 2.00 GiB): pass a smaller --batch-size"),
    (RuntimeError("CUDA error: out of memory"), "the GPU ran out of memory"),
    (MemoryError(), "the machine ran out of memory: pass a smaller --batch-size"),
    (OSError(errno.ENOSPC, "No space left on device", "/data/out.mp4"),
     "no space left on the disk writing /data/out.mp4: free some space and run again"),
])
def test_failures_are_one_line(monkeypatch, capsys, exc, words):
    _raising(monkeypatch, exc)
    assert main(["invert", "clip.mp4"]) == 1
    err = capsys.readouterr().err
    assert words in " ".join(err.split())
    assert err.count("\n") == 1 and "Traceback" not in err


def test_debug_shows_the_traceback(monkeypatch):
    _raising(monkeypatch, ValueError("bad thing"))
    with pytest.raises(ValueError, match="bad thing"):
        main(["--debug", "invert", "clip.mp4"])
