"""Shared fixtures and paths.

The official reference folder (``../shared/reference`` beside the repository, or
``$VIDINVERT_REFERENCE``) holds large golden files; tests that need it skip with a reason
when it is absent. Small manifests are copied into ``tests/data/manifests`` so key/shape
tests run from a plain clone.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
MANIFESTS = DATA / "manifests"
REFERENCE = Path(os.environ.get("VIDINVERT_REFERENCE", ROOT.parent / "shared" / "reference"))
GOLDEN = REFERENCE / "golden"

requires_golden = pytest.mark.skipif(
    not (GOLDEN / "golden_1024.npz").exists(),
    reason=f"official golden outputs not found at {GOLDEN} (set VIDINVERT_REFERENCE to the reference folder)",
)

# Keep the suite deterministic and polite on a 2-core machine.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Never read or write the user's ~/.cache/vidinvert from tests."""
    home = tmp_path_factory.mktemp("vidinvert_home")
    monkeypatch.setenv("VIDINVERT_HOME", str(home))
    monkeypatch.setenv("VIDINVERT_NO_USER_CACHE", "1")
    yield
