"""Shared fixtures and paths.

The official reference folder (``../shared/reference`` beside the repository, or
``$VIDINVERT_REFERENCE``) holds large golden files; tests that need it skip with a reason
when it is absent. Small manifests are copied into ``tests/data/manifests`` so key/shape
tests run from a plain clone.
"""

from __future__ import annotations

import os
from pathlib import Path

# Idle OpenMP threads sleep instead of spinning: on a small shared CPU spinning threads slow every
# other process (and the 2-process training tests) by up to 10x.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# ``--dtype auto`` picks bf16 on CPUs with bf16 matrix units (AMX-BF16, AVX512-BF16); the suite's
# outputs and golden comparisons are fp32 on every machine (tests of the auto rule unset this).
os.environ.setdefault("VIDINVERT_DTYPE", "fp32")

import pytest  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
MANIFESTS = DATA / "manifests"
REFERENCE = Path(os.environ.get("VIDINVERT_REFERENCE", ROOT.parent / "shared" / "reference"))
GOLDEN = REFERENCE / "golden"

requires_golden = pytest.mark.skipif(
    not (GOLDEN / "golden_1024.npz").exists(),
    reason=f"official golden outputs not found at {GOLDEN} (set VIDINVERT_REFERENCE to the reference folder)",
)

def load_make_weights():
    """The reference folder's ``make_weights.py`` (rebuilds the golden weights bit for bit), as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("golden_make_weights", GOLDEN / "make_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rel_l2(ours: torch.Tensor, ref) -> float:
    """Relative L2 error ``|ours - ref| / |ref|`` computed in float64."""
    import numpy as np

    ref_t = torch.from_numpy(np.asarray(ref, dtype=np.float64))
    return float((ours.detach().double() - ref_t).norm() / ref_t.norm())


# Keep the suite deterministic and polite on a 2-core machine.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module (``pytestmark = pytest.mark.usefixtures("one_thread")``):
    on a shared, oversubscribed CPU two OpenMP threads made the tiny training steps ~10x slower
    (measured 4 s vs 0.35 s per step); results do not depend on it."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same random state, so a failure reproduces exactly."""
    import random

    import numpy as np

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Never read or write the user's ~/.cache/vidinvert from tests."""
    home = tmp_path_factory.mktemp("vidinvert_home")
    monkeypatch.setenv("VIDINVERT_HOME", str(home))
    monkeypatch.setenv("VIDINVERT_NO_USER_CACHE", "1")
    yield


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    """Tiny random models saved in the official file formats (rosinality generator, bare encoder).

    Random weights: outputs are meaningless; tests use them for plumbing and invariants.
    Returns a dict with ``generator``/``encoder`` paths and the in-memory models.
    """
    from vidinvert.models import tiny_pair

    d = tmp_path_factory.mktemp("tiny_weights")
    gen, enc = tiny_pair(0)
    gen_path, enc_path = d / "tiny-generator.pt", d / "tiny-encoder.pth"
    torch.save({"g_ema": gen.state_dict(), "latent_avg": enc.latent_avg[0].clone()}, gen_path)
    torch.save(enc.state_dict(), enc_path)
    return {"dir": d, "generator": gen_path, "encoder": enc_path, "gen": gen, "enc": enc}


@pytest.fixture()
def direction(tmp_path):
    """A random direction for the tiny generator (64-d W, broadcast over its rows) as ``smile.npy``."""
    import numpy as np

    p = tmp_path / "smile.npy"
    np.save(p, np.random.default_rng(3).standard_normal((64,)).astype(np.float32))
    return p


@pytest.fixture(scope="session")
def astronaut_face(tmp_path_factory):
    """A 64x64 square crop around the astronaut's face (uint8 RGB) saved as PNG."""
    import numpy as np
    from PIL import Image
    from skimage import data

    img = data.astronaut()[20:220, 130:330]  # roughly the face, square
    small = np.asarray(Image.fromarray(img).resize((64, 64), Image.BICUBIC))
    p = tmp_path_factory.mktemp("faces") / "face.png"
    Image.fromarray(small).save(p)
    return p
