"""A corpus over real processes on tiny models: one process, two ``--shard`` processes, and
``torchrun`` with two gloo ranks give bit-identical outputs and the same merged manifest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.video_fixtures import make_clip
from vidinvert.pipeline import manifest as mf

ROOT = Path(__file__).resolve().parents[1]
VOLATILE = ("seconds", "fps", "time", "finished_at", "rank", "world")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Three clips (9, 5, 2 frames; ffv1 and H.264), two photos, one file that is not a video."""
    c = tmp_path_factory.mktemp("corpus")
    for rel, n, codec in [("a/clip9.mkv", 9, "ffv1"), ("b/c/clip5.mp4", 5, "libx264"), ("clip2.mkv", 2, "ffv1")]:
        (c / rel).parent.mkdir(parents=True, exist_ok=True)
        make_clip(c / rel, size=(48, 40), n_frames=n, codec=codec, crf=None if codec == "ffv1" else 12)
    rng = np.random.default_rng(0)
    for rel in ("a/face.png", "photo2.png"):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(c / rel)
    (c / "broken.mp4").write_bytes(b"this is not a video")
    return c


def _env(**extra) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", **extra}
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return {**env, **extra}


def _worker_args(out: Path, corpus: Path, tw: dict, *extra: str) -> list[str]:
    return ["-m", "tests.corpus_worker", str(out), str(corpus), "--encoder", str(tw["encoder"]),
            "--generator", str(tw["generator"]), *extra]


def _last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def _stable(out: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(x).items() if k not in VOLATILE}
            for x in (out / mf.MANIFEST).read_text().splitlines()]


def _outputs(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.recon.png")}


def test_one_process_two_shards_and_torchrun_agree(corpus, tiny_weights, tmp_path):
    single, sharded, tr = tmp_path / "single", tmp_path / "sharded", tmp_path / "torchrun"
    r = subprocess.run([sys.executable, *_worker_args(single, corpus, tiny_weights)], check=False, cwd=ROOT, env=_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr  # broken.mp4 failed, the rest were done
    assert _last_json(r.stdout)["processed"] == 6
    recs = {x["input"]: x for x in map(json.loads, (single / mf.MANIFEST).read_text().splitlines())}
    assert {k: v["status"] for k, v in recs.items()} == {
        "a/clip9.mkv": "done", "a/face.png": "done", "b/c/clip5.mp4": "done", "broken.mp4": "failed",
        "clip2.mkv": "done", "photo2.png": "done"}
    assert [recs[k]["frames"] for k in ("a/clip9.mkv", "b/c/clip5.mp4", "clip2.mkv", "photo2.png")] == [9, 5, 2, 1]
    strip = np.asarray(Image.open(single / "a" / "clip9.recon.png"))
    assert strip.shape == (64, 64 * 9, 3)  # one reconstructed 64x64 frame per source frame, mirrored folder

    # two --shard processes at once, no process group; then `manifest merge`
    procs = [subprocess.Popen([sys.executable, *_worker_args(sharded, corpus, tiny_weights, "--shard", f"{i}/2")],
                              cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    codes = [p.wait(timeout=300) for p in procs]
    # by hand: clip9 -> 0; clip5 -> 1; clip2 -> 1 (7 < 9); a/face, broken -> 1 (8, 9); photo2 -> 0 (tie 9/9)
    by_rank = {i: {x["input"] for x in mf.read_records(mf.rank_manifest(sharded, i))} for i in range(2)}
    assert by_rank == {0: {"a/clip9.mkv", "photo2.png"},
                       1: {"b/c/clip5.mp4", "clip2.mkv", "a/face.png", "broken.mp4"}}
    assert codes == [0, 1]  # the shard holding broken.mp4 says so
    mf.merge_manifests(sharded)
    assert _stable(sharded) == _stable(single)
    assert _outputs(sharded) == _outputs(single) and len(_outputs(single)) == 5

    # torchrun, two gloo ranks; rank 1 is slow, and a stale marker of an earlier run must not fool rank 0
    tr.mkdir()
    (tr / "finished.rank-1.json").write_text(json.dumps({"run_id": "an-earlier-run", "failed": 0}))
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                        *_worker_args(tr, corpus, tiny_weights, "--delay", "0.7", "--delay-rank", "1")],
                       check=False, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode != 0  # rank 0 reports the corpus's failed input
    assert _stable(tr) == _stable(single), r.stdout + r.stderr  # merged by rank 0 after rank 1 finished
    assert _outputs(tr) == _outputs(single)
    assert "corpus: 6/6 inputs" in r.stdout

    # a rerun does no work
    r = subprocess.run([sys.executable, *_worker_args(single, corpus, tiny_weights)], check=False, cwd=ROOT, env=_env(),
                       capture_output=True, text=True, timeout=300)
    assert _last_json(r.stdout)["processed"] == 0 and _last_json(r.stdout)["skipped"] == 6
