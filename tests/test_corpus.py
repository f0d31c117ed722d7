"""Corpus library: input resolution, shards, the balanced split, manifests and the resumable runner."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest

from vidinvert.distributed import default_cpu_threads
from vidinvert.errors import VidinvertError
from vidinvert.inputs import resolve_inputs
from vidinvert.pipeline import manifest as mf
from vidinvert.pipeline.corpus import (
    CorpusInput,
    Shard,
    parse_shard,
    share_of,
    split_balanced,
)
from vidinvert.pipeline.corpus_run import run_corpus


def _touch(root: Path, *names: str) -> None:
    for n in names:
        (root / n).parent.mkdir(parents=True, exist_ok=True)
        (root / n).write_bytes(b"x")


# ---------------------------------------------------------------------------------- inputs
def test_folder_glob_list_and_file_sources_mirror_or_go_flat(tmp_path):
    c = tmp_path / "corpus"
    _touch(c, "a/x.mp4", "a/b/y.JPG", "z.mkv", ".hidden/h.mp4", "a/notes.md", "out/old.mp4")
    _touch(tmp_path, "single.png", "elsewhere/e.mov")
    items = resolve_inputs([c], exclude=[c / "out"])
    assert [it.relpath for it in items] == ["a/b/y.JPG", "a/x.mp4", "z.mkv"]
    out = tmp_path / "o"
    assert [it.output_dir(out) for it in items] == [out / "a" / "b", out / "a", out]
    # a file named directly goes flat; a glob's root is the matches' common folder
    assert resolve_inputs([tmp_path / "single.png"])[0].output_dir(out) == out
    assert [it.relpath for it in resolve_inputs([str(c / "**" / "*.mp4")], exclude=[c / "out"])] == ["x.mp4"]
    assert [it.relpath for it in resolve_inputs([str(c / "**" / "*.mp4")])] == ["a/x.mp4", "out/old.mp4"]
    lst = c / "list.txt"  # relative lines are relative to the list's folder; an outside path goes flat
    lst.write_text(f"# two\na/x.mp4\n\n{tmp_path / 'elsewhere/e.mov'}\n")
    assert [(it.relpath, it.output_dir(out)) for it in resolve_inputs([lst])] == [("a/x.mp4", out / "a"),
                                                                                  ("e.mov", out)]
    # the same file through two sources counts once
    assert len(resolve_inputs([c / "z.mkv", c], exclude=[c / "out"])) == 3


def test_colliding_outputs_and_bad_sources_are_one_line_errors(tmp_path):
    _touch(tmp_path, "a/x.mp4", "b/x.mp4", "empty/readme.md")
    with pytest.raises(VidinvertError, match="same outputs"):
        resolve_inputs([tmp_path / "a/x.mp4", tmp_path / "b/x.mp4"])
    with pytest.raises(VidinvertError, match="not found"):
        resolve_inputs([tmp_path / "nope"])
    with pytest.raises(VidinvertError, match="no video or photo files"):
        resolve_inputs([tmp_path / "empty"])


# ---------------------------------------------------------------------------------- split
def test_split_worked_example_ties_by_path_and_rank():
    items = [("e", 2), ("b", 7), ("a", 10), ("d", 4), ("c", 5), ("g", 1), ("f", 1)]
    # by hand: a->r0(10) b->r1(7) c->r1(12) d->r0(14) e->r1(14) f->r0 (tie 14/14: lowest rank) g->r1
    assert split_balanced(items, 2) == [[("a", 10), ("d", 4), ("f", 1)], [("b", 7), ("c", 5), ("e", 2), ("g", 1)]]
    assert split_balanced(items, 1) == [sorted(items, key=lambda x: (-x[1], x[0]))]
    assert split_balanced(items[:2], 3)[2] == []
    with pytest.raises(VidinvertError):
        split_balanced(items, 0)


def _optimal_makespan(sizes: list[int], world: int) -> int:
    best = None
    for assign in itertools.product(range(world), repeat=len(sizes)):
        loads = [0] * world
        for s, r in zip(sizes, assign):
            loads[r] += s
        best = max(loads) if best is None else min(best, max(loads))
    return best


@pytest.mark.parametrize("seed", range(12))
def test_split_is_a_deterministic_partition_within_the_lpt_bound_of_brute_force(seed):
    rng = random.Random(seed)
    world = rng.choice([2, 3])
    items = [(f"clip{i:02d}.mp4", rng.choice([1, 1, 3, 8, 20, 50, 120])) for i in range(rng.randint(3, 8))]
    shares = split_balanced(items, world)
    assert sorted(x for s in shares for x in s) == sorted(items)  # every item exactly once
    shuffled = items[:]
    rng.shuffle(shuffled)
    assert split_balanced(shuffled, world) == shares  # independent of the order found
    loads = [sum(f for _, f in s) for s in shares]
    opt = _optimal_makespan([f for _, f in items], world)
    assert max(loads) <= (4 / 3 - 1 / (3 * world)) * opt + 1e-9  # Graham's bound for longest-first
    assert max(loads) - min(loads) <= max(f for _, f in items)


def test_share_of_covers_the_corpus_once():
    items = [CorpusInput(Path(f"{k}.mp4"), f"{k}.mp4", n) for k, n in zip("abcde", [5, 9, 2, 2, 7])]
    shares = [share_of(items, Shard(r, 2, "shard")) for r in range(2)]
    assert sorted(it.key for s in shares for it in s) == [it.key for it in items]
    # by hand: b9->r0, e7->r1, a5->r1 (7<9), c2->r0 (9<12), d2->r0 (11<12)
    assert [[it.key for it in s] for s in shares] == [["b.mp4", "c.mp4", "d.mp4"], ["e.mp4", "a.mp4"]]


# ---------------------------------------------------------------------------------- shards
def test_shard_parsing():
    assert parse_shard(None, {}) == Shard()
    assert parse_shard("1/3", {}) == Shard(1, 3, "shard")
    for bad in ("3/3", "a/b", "2", "-1/2", "0/0", "1/"):
        with pytest.raises(VidinvertError, match="--shard"):
            parse_shard(bad, {})
    env = {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}
    assert parse_shard(None, env) == Shard(1, 2, "torchrun", 1)
    with pytest.raises(VidinvertError, match="torchrun"):
        parse_shard("0/2", env)


def _slurm(task, low, step, count):
    return {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_MIN": str(low),
            "SLURM_ARRAY_TASK_STEP": str(step), "SLURM_ARRAY_TASK_COUNT": str(count)}


def test_slurm_array_with_nonzero_min_and_step_two():
    # sbatch --array=3-9:2 -> tasks 3, 5, 7, 9: shards 0..3 of 4
    assert [parse_shard("slurm", _slurm(t, 3, 2, 4)).index for t in (3, 5, 7, 9)] == [0, 1, 2, 3]
    assert parse_shard("slurm", _slurm(7, 3, 2, 4)) == Shard(2, 4, "slurm")
    with pytest.raises(VidinvertError, match="multiple of STEP"):
        parse_shard("slurm", _slurm(4, 3, 2, 4))
    with pytest.raises(VidinvertError, match="past COUNT"):
        parse_shard("slurm", _slurm(11, 3, 2, 4))
    with pytest.raises(VidinvertError, match="SLURM_ARRAY_TASK_ID is not set"):
        parse_shard("slurm", {})
    # Slurm variables alone never shard
    assert parse_shard(None, _slurm(5, 3, 2, 4)) == Shard()


def test_cpu_threads_shared_by_local_processes(monkeypatch):
    import os

    cores = len(os.sched_getaffinity(0))
    assert default_cpu_threads({}) == cores
    assert default_cpu_threads({"LOCAL_WORLD_SIZE": str(cores * 4)}) == 1
    if cores >= 2:
        assert default_cpu_threads({"LOCAL_WORLD_SIZE": "2"}) == cores // 2


# ---------------------------------------------------------------------------------- manifests
def test_writer_repairs_a_torn_line_and_latest_record_wins(tmp_path):
    p = mf.rank_manifest(tmp_path, 0)
    p.write_text(json.dumps({"input": "a", "status": "failed", "time": 1.0}) + "\n" + '{"input": "b", "sta')
    w = mf.ManifestWriter(tmp_path, 0)
    w.append({"input": "a", "status": "done", "time": 3.0})
    mf.ManifestWriter(tmp_path, 1).append({"input": "a", "status": "failed", "time": 2.0})
    lines = p.read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[2])["status"] == "done"
    assert {k: r["status"] for k, r in mf.latest_records(tmp_path).items()} == {"a": "done"}


def test_skip_rules(tmp_path):
    (tmp_path / "o.png").write_bytes(b"12345")
    done = {"input": "x", "status": "done", "fingerprint": "f1", "outputs": ["o.png"], "output_bytes": [5]}
    assert mf.skip_reason(done, tmp_path, "f1", False) == "done"
    assert mf.skip_reason(done, tmp_path, "f2", False) is None  # another configuration
    (tmp_path / "o.png").write_bytes(b"123")  # changed
    assert mf.skip_reason(done, tmp_path, "f1", False) is None
    failed = {"input": "x", "status": "failed", "fingerprint": "f1", "error": "bad"}
    assert mf.skip_reason(failed, tmp_path, "f1", False) == "failed"
    assert mf.skip_reason(failed, tmp_path, "f1", True) is None
    assert mf.skip_reason(failed, tmp_path, "f2", False) is None
    assert mf.skip_reason(None, tmp_path, "f1", False) is None


# ---------------------------------------------------------------------------------- runner
class FakeJob:
    """Writes ``<stem>.out`` holding the input's bytes reversed; fails on names in ``broken``."""

    def __init__(self, out_dir: Path, broken=()):
        self.out_dir, self.broken, self.calls = out_dir, set(broken), []

    def __call__(self, item: CorpusInput) -> dict:
        self.calls.append(item.key)
        if item.path.name in self.broken:
            raise VidinvertError(f"{item.path}: cannot read it\nsecond line")
        out = item.output_dir(self.out_dir) / f"{item.path.stem}.out"
        out.write_bytes(item.path.read_bytes()[::-1])
        return {"outputs": [out], "frames": item.frames, "identity_consistency": 0.5}


@pytest.fixture()
def corpus(tmp_path):
    c = tmp_path / "corpus"
    items = []
    for key, n in [("a/one.mp4", 5), ("a/b/two.mp4", 9), ("three.png", 1), ("four.mp4", 3), ("five.jpg", 1)]:
        (c / key).parent.mkdir(parents=True, exist_ok=True)
        (c / key).write_bytes(key.encode() * n)
        items.append(CorpusInput(c / key, key, n, c))
    return items


_VOLATILE = ("seconds", "fps", "time", "finished_at", "rank", "world")


def _stable(path: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in _VOLATILE} for line in path.read_text().splitlines()]


def test_single_run_rerun_delete_one_and_failures(corpus, tmp_path):
    out = tmp_path / "out"
    job = FakeJob(out, broken={"four.mp4"})
    lines: list[str] = []
    res = run_corpus(corpus, job, shard=Shard(), out_dir=out, fingerprint="f1", progress=lines.append)
    assert (res.processed, res.failed, res.exit_code) == (5, 1, 1)
    assert (out / "a/b/two.out").read_bytes() == (b"a/b/two.mp4" * 9)[::-1]  # mirrored
    recs = [json.loads(x) for x in (out / mf.MANIFEST).read_text().splitlines()]
    assert [r["input"] for r in recs] == sorted(it.key for it in corpus)
    bad = next(r for r in recs if r["input"] == "four.mp4")
    assert bad["status"] == "failed" and "cannot read it" in bad["error"] and "\n" not in bad["error"]
    assert res.summary["done"] == 4 and res.summary["failed"] == 1 and res.summary["frames"] == 16
    assert any("FAILED" in x for x in lines) and sum("done" in x for x in lines) == 4
    # rerun: nothing to do; the failure stays failed (exit 1) until --retry-failed
    job.calls.clear()
    res = run_corpus(corpus, job, shard=Shard(), out_dir=out, fingerprint="f1")
    assert job.calls == [] and (res.skipped, res.exit_code) == (5, 1)
    # a deleted output is redone, exactly that input
    (out / "a" / "one.out").unlink()
    run_corpus(corpus, job, shard=Shard(), out_dir=out, fingerprint="f1")
    assert job.calls == ["a/one.mp4"]
    job.calls.clear()
    job.broken.clear()
    res = run_corpus(corpus, job, shard=Shard(), out_dir=out, fingerprint="f1", retry_failed=True)
    assert job.calls == ["four.mp4"] and (res.failed, res.exit_code) == (0, 0)
    assert mf.merge_manifests(out)["done"] == 5
    # another configuration redoes everything
    job.calls.clear()
    run_corpus(corpus, job, shard=Shard(), out_dir=out, fingerprint="f2")
    assert sorted(job.calls) == sorted(it.key for it in corpus)


def test_shards_merge_to_the_single_run_manifest(corpus, tmp_path):
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    run_corpus(corpus, FakeJob(single, {"one.mp4"}), shard=Shard(), out_dir=single, fingerprint="f")
    for r in (1, 0):
        res = run_corpus(corpus, FakeJob(sharded, {"one.mp4"}), shard=Shard(r, 2, "shard"), out_dir=sharded,
                         fingerprint="f")
        assert res.exit_code == int(r == 1)  # the broken one.mp4 is shard 1's
    summary = mf.merge_manifests(sharded)
    assert _stable(sharded / mf.MANIFEST) == _stable(single / mf.MANIFEST)
    assert summary["rank_files"] == ["manifest.rank-0.jsonl", "manifest.rank-1.jsonl"]
    by_rank = {r: {x["input"] for x in mf.read_records(mf.rank_manifest(sharded, r))} for r in (0, 1)}
    # by hand: two9->r0, one5->r1, four3->r1, five1->r1 (8<9), three1->r0 (loads tie at 9: the lower rank)
    assert by_rank == {0: {"a/b/two.mp4", "three.png"}, 1: {"a/one.mp4", "four.mp4", "five.jpg"}}
    for p in single.rglob("*.out"):
        assert p.read_bytes() == (sharded / p.relative_to(single)).read_bytes()


def test_an_input_that_failed_to_probe_is_recorded_without_processing(corpus, tmp_path):
    out = tmp_path / "out"
    items = [*corpus, CorpusInput(tmp_path / "bad.mp4", "bad.mp4", 1, tmp_path, "bad.mp4 is not a video")]
    job = FakeJob(out)
    res = run_corpus(items, job, shard=Shard(), out_dir=out, fingerprint="f")
    assert "bad.mp4" not in job.calls and res.failed == 1
    assert mf.latest_records(out)["bad.mp4"]["error"] == "bad.mp4 is not a video"


def test_manifest_merge_command(corpus, tmp_path):
    """``vidinvert manifest merge`` (registered here on a bare app until app.py registers it)."""
    from typer.testing import CliRunner

    from vidinvert.cli import common, manifest_cmd

    out = tmp_path / "out"
    for r in (0, 1):
        run_corpus(corpus, FakeJob(out, {"five.jpg"}), shard=Shard(r, 2, "shard"), out_dir=out, fingerprint="f")
    (out / mf.MANIFEST).unlink()
    app = common.command_group(name="vidinvert")
    app.callback()(lambda: None)
    manifest_cmd.register(app)
    res = CliRunner().invoke(app, ["manifest", "merge", str(out)])
    assert res.exit_code == 0, res.output
    assert "5 inputs: 4 done, 1 failed" in res.output and "failed: five.jpg" in res.output
    assert len((out / mf.MANIFEST).read_text().splitlines()) == 5
    res = CliRunner().invoke(app, ["manifest", "merge", str(tmp_path / "corpus")])
    assert res.exit_code != 0 and "nothing to merge" in str(res.exception)
