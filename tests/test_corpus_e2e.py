"""`vidinvert edit` over a corpus, end to end on tiny models: one process, torchrun with two gloo
ranks, and two job-array shards (``--shard 0/2`` and ``--shard slurm``) give bit-identical
outputs (PNG bytes; lossless ffv1 frames) and the same merged manifest; reruns do no work, a
deleted output redoes exactly its input, and an unreadable input is recorded as failed while the others complete.

Every process runs on one CPU thread with a fixed --batch-size, so the runs compute the same
arithmetic whatever the split."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.face_clips import face_frame, make_face_clip
from vidinvert.pipeline import manifest as mf

ROOT = Path(__file__).resolve().parents[1]
VOLATILE = ("seconds", "fps", "time", "finished_at", "rank", "world")
SIZE = (128, 112)


def _frame(i: int, x: int = 24, y: int = 16) -> np.ndarray:
    return face_frame(i, SIZE, face_px=80, faces=((x, y),))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Clips of 7, 4 and 3 frames (ffv1 .mkv and H.264 .mp4), two photos, one file that is no video."""
    c = tmp_path_factory.mktemp("corpus")
    for rel, n, codec in [("a/clip7.mkv", 7, "ffv1"), ("b/c/clip4.mp4", 4, "libx264"), ("clip3.mkv", 3, "ffv1")]:
        (c / rel).parent.mkdir(parents=True, exist_ok=True)
        make_face_clip(c / rel, n_frames=n, size=SIZE, codec=codec, frame_fn=_frame)
    Image.fromarray(_frame(0, 20, 12)).save(c / "a" / "face.png")
    Image.fromarray(_frame(3, 30, 20)).save(c / "photo.png")
    (c / "broken.mp4").write_bytes(b"this is not a video")
    return c


@pytest.fixture(scope="module")
def tw(tiny_weights, tmp_path_factory):
    d = tmp_path_factory.mktemp("direction") / "dir.npy"
    np.save(d, np.random.default_rng(0).standard_normal(64).astype(np.float32))
    return {**tiny_weights, "dir": d}


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
           and not k.startswith("SLURM_")}
    return {**env, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "VIDINVERT_CPU_THREADS": "1",
            "OMP_WAIT_POLICY": "PASSIVE", **extra}


def _cmd(tw, corpus, out, *extra, torchrun=False) -> list[str]:
    cli = ["-m", "vidinvert", "edit", str(corpus), "--out-dir", str(out), "--direction", str(tw["dir"]),
           "--encoder", str(tw["encoder"]), "--generator", str(tw["generator"]), "--device", "cpu",
           "--batch-size", "4", "--codec", "ffv1", *extra]
    head = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"] if torchrun \
        else [sys.executable]
    return head + cli


def _edit(tw, corpus, out, *extra, torchrun=False, **env):
    return subprocess.run(_cmd(tw, corpus, out, *extra, torchrun=torchrun), cwd=ROOT, env=_env(**env),
                          capture_output=True, text=True, timeout=600, check=False)


def _stable(out: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(x).items() if k not in VOLATILE}
            for x in (out / mf.MANIFEST).read_text().splitlines()]


def _content(p: Path) -> bytes:
    """A PNG's bytes; a clip's decoded frames and timestamps (the container holds a random segment id)."""
    if p.suffix == ".png":
        return p.read_bytes()
    from vidinvert.video import open_video

    return b"".join(f.rgb.tobytes() + str(f.pts).encode() for f in open_video(p))


def _outs(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): _content(p) for p in out.rglob("*") if p.suffix in (".mkv", ".mp4", ".png")}


def _times(out: Path) -> dict[str, float]:
    return {r["input"]: r["time"] for r in mf.read_records(out / mf.MANIFEST)}


def test_edit_corpus_torchrun_shards_and_one_process_agree(corpus, tw, tmp_path):
    one, two, sh = tmp_path / "one", tmp_path / "two", tmp_path / "sh"
    r = _edit(tw, corpus, one)
    assert r.returncode == 1, r.stderr                             # broken.mp4 failed, the rest done
    recs = {x["input"]: x for x in mf.read_records(one / mf.MANIFEST)}
    assert {k: v["status"] for k, v in recs.items()} == {
        "a/clip7.mkv": "done", "a/face.png": "done", "b/c/clip4.mp4": "done", "broken.mp4": "failed",
        "clip3.mkv": "done", "photo.png": "done"}
    assert "broken.mp4" in recs["broken.mp4"]["error"]
    assert [recs[k]["frames"] for k in ("a/clip7.mkv", "b/c/clip4.mp4", "clip3.mkv", "photo.png")] == [7, 4, 3, 1]
    # outputs mirror the corpus tree (ffv1 in the inputs' containers, PNG for photos)
    assert sorted(_outs(one)) == ["a/clip7.dir.mkv", "a/face.dir.png", "b/c/clip4.dir.mp4", "clip3.dir.mkv",
                                  "photo.dir.png"]

    r = _edit(tw, corpus, two, torchrun=True)
    assert r.returncode != 0, r.stdout + r.stderr                  # rank 0 reports the failed input
    assert "corpus: 6/6 inputs" in r.stdout + r.stderr
    assert _stable(two) == _stable(one) and _outs(two) == _outs(one)
    assert not (two / "manifest.jsonl.partial").exists() and len(mf.rank_files(two)) == 2
    # balanced by frames by hand: clip7 (7) -> 0; clip4 (4) -> 1; clip3 (3) -> 1 (4 < 7); the ones by path:
    # a/face.png -> 0 (tie 7/7), broken.mp4 -> 1 (8 > 7), photo.png -> 0 (tie 8/8)
    by_rank = {i: {x["input"] for x in mf.read_records(mf.rank_manifest(two, i))} for i in range(2)}
    assert by_rank == {0: {"a/clip7.mkv", "a/face.png", "photo.png"}, 1: {"b/c/clip4.mp4", "clip3.mkv", "broken.mp4"}}

    # a job array: --shard 0/2 and --shard slurm as task 7 of --array=5-7:2 (shard 1), at once; then merge
    procs = [subprocess.Popen(_cmd(tw, corpus, sh, "--shard", "0/2"), cwd=ROOT, env=_env(), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE),
             subprocess.Popen(_cmd(tw, corpus, sh, "--shard", "slurm"), cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=_env(SLURM_ARRAY_TASK_ID="7", SLURM_ARRAY_TASK_MIN="5", SLURM_ARRAY_TASK_STEP="2",
                                       SLURM_ARRAY_TASK_COUNT="2"))]
    codes = [p.wait(timeout=600) for p in procs]
    assert codes == [0, 1]                                         # the shard holding broken.mp4 says so
    assert {i: {x["input"] for x in mf.read_records(mf.rank_manifest(sh, i))} for i in range(2)} == by_rank
    m = subprocess.run([sys.executable, "-m", "vidinvert", "manifest", "merge", str(sh)], cwd=ROOT, env=_env(),
                       capture_output=True, text=True, check=False)
    assert m.returncode == 0, m.stderr
    assert _stable(sh) == _stable(two) and _outs(sh) == _outs(one)

    # a rerun does no work
    before = _times(one)
    r = _edit(tw, corpus, one)
    assert r.returncode == 1 and "6 of 6 inputs already recorded" in r.stdout + r.stderr
    assert _times(one) == before and len(mf.read_records(mf.rank_manifest(one, 0))) == 6

    # one output deleted: exactly its input is redone (and, with --retry-failed, the failed one retried)
    victim = one / "a" / "clip7.dir.mkv"
    kept = _outs(one)
    victim.unlink()
    r = _edit(tw, corpus, one, "--retry-failed")
    assert r.returncode == 1, r.stderr
    after = _times(one)
    assert sorted(k for k in before if before[k] != after[k]) == ["a/clip7.mkv", "broken.mp4"]
    assert _outs(one) == kept                                      # redone bit-identically
