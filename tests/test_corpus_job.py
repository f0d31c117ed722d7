"""Corpus mode of edit/invert without models: when it applies, the configuration fingerprint, CPU
threads, per-kind options of a mixed corpus, refusals (one line, before any model loads)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vidinvert.errors import VidinvertError
from vidinvert.pipeline.corpus_job import config_fingerprint, corpus_mode, cpu_threads, requests_by_kind
from vidinvert.pipeline.request import PHOTO, VIDEO, EditRequest


@pytest.fixture()
def tree(tmp_path, monkeypatch):
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    (tmp_path / "c" / "sub").mkdir(parents=True)
    for rel in ("c/a.mp4", "c/sub/b.png"):
        (tmp_path / rel).write_bytes(b"x")
    (tmp_path / "list.txt").write_text("c/a.mp4\n")
    return tmp_path


def test_corpus_mode_only_with_out_dir_and_a_collection_shard_or_torchrun(tree, monkeypatch):
    out = tree / "out"
    files = (tree / "c/a.mp4", tree / "c/sub/b.png")
    assert not corpus_mode(EditRequest(inputs=files, out_dir=out, attr=("smile",)))   # flat, as before
    assert not corpus_mode(EditRequest(inputs=files[:1], attr=("smile",)))
    (tree / "clips.mp4").mkdir()  # a folder named like a video file
    kinds = {tree / "c": "a folder", tree / "clips.mp4": "a folder", tree / "list.txt": "a list file",
             Path(str(tree / "c" / "**" / "*.mp4")): "a glob"}
    for src, kind in kinds.items():
        assert corpus_mode(EditRequest(inputs=(src,), out_dir=out, attr=("smile",)))
        with pytest.raises(VidinvertError, match="needs --out-dir") as err:
            corpus_mode(EditRequest(inputs=(files[0], src), attr=("smile",)))
        assert str(err.value).startswith(f"{src} is {kind}: "), err.value  # the input is named
    assert corpus_mode(EditRequest(inputs=files, out_dir=out, attr=("smile",), shard="0/2"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert corpus_mode(EditRequest(inputs=files, out_dir=out, attr=("smile",)))
    with pytest.raises(VidinvertError, match="torchrun"):
        corpus_mode(EditRequest(inputs=files, attr=("smile",)))


def test_fingerprint_ignores_where_and_which_share_but_not_settings_or_models(tree):
    enc, gen = tree / "enc.pt", tree / "gen.pt"
    enc.write_bytes(b"e")
    gen.write_bytes(b"g")
    base = EditRequest(inputs=(tree / "c",), out_dir=tree / "o", attr=("smile",), strength="2")
    fp = config_fingerprint(base, (enc, gen))
    same = EditRequest(inputs=(tree / "list.txt",), out_dir=tree / "p", attr=("smile",), strength="2", shard="1/3",
                       retry_failed=True, overwrite=True, resume=True, explicit={"strength"})
    assert config_fingerprint(same, (enc, gen)) == fp and len(fp) == 16
    assert config_fingerprint(EditRequest(inputs=(tree / "c",), out_dir=tree / "o", attr=("smile",), strength="3"),
                              (enc, gen)) != fp
    gen.write_bytes(b"g2")                                    # a different generator file
    assert config_fingerprint(base, (enc, gen)) != fp


def test_cpu_threads():
    assert cpu_threads({"VIDINVERT_CPU_THREADS": "3", "OMP_NUM_THREADS": "5"}) == 3
    assert cpu_threads({"OMP_NUM_THREADS": "5"}) == 5
    cores = len(os.sched_getaffinity(0))
    # under torchrun its OMP_NUM_THREADS=1 default gives way to cores / local processes
    assert cpu_threads({"OMP_NUM_THREADS": "1", "LOCAL_WORLD_SIZE": "2"}) == max(1, cores // 2)
    with pytest.raises(VidinvertError, match="VIDINVERT_CPU_THREADS"):
        cpu_threads({"VIDINVERT_CPU_THREADS": "zero"})


def test_mixed_corpus_options_apply_per_kind(tree):
    req = EditRequest(inputs=(tree / "c",), out_dir=tree / "o", attr=("smile",), codec="ffv1", min_face=20.0)
    by_kind = requests_by_kind(req, {VIDEO: tree / "c/a.mp4", PHOTO: tree / "c/sub/b.png"})
    assert by_kind[VIDEO].codec == "ffv1" and by_kind[VIDEO].min_face == 0.0
    assert by_kind[PHOTO].codec == "libx264" and by_kind[PHOTO].min_face == 20.0
    with pytest.raises(VidinvertError, match="--codec does not apply to photos"):  # no clip in this corpus
        requests_by_kind(req, {PHOTO: tree / "c/sub/b.png"})


def test_corpus_refusals_before_models_load(tree):
    from vidinvert.pipeline.job import run_edit

    with pytest.raises(VidinvertError, match="--output names one file"):
        run_edit(EditRequest(inputs=(tree / "c",), out_dir=tree / "o", output=tree / "x.mp4", attr=("smile",)))
    with pytest.raises(VidinvertError, match="contains the input folder"):
        run_edit(EditRequest(inputs=(tree / "c",), out_dir=tree, attr=("smile",)))
