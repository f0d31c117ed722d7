"""Out of memory inside a network batch: the batch is halved, the same rows run again, and the run
goes on (``vidinvert.memory``), in clips, photos, aligned images, eval, training and a corpus.

Out-of-memory errors are injected at chosen calls of the networks (CUDA's error class, which
exists on CPU builds too) or raised for real by the CPU allocator. References are independent of
the mechanism: a run started with the smaller batch, the unbatched computation, a training run
configured with the larger accumulation. CPU numerics change with batch composition, so images
are compared within the batch-composition tolerance: at most one level on at most 0.1% of the
face pixels.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from tests.face_clips import make_face_clip
from tests.video_fixtures import LogCapture
from vidinvert.cli.app import main
from vidinvert.engine import Inverter
from vidinvert.errors import VidinvertError
from vidinvert.memory import BatchSize, OutOfMemoryStop, batch_report, is_out_of_memory


def cuda_oom() -> Exception:
    return torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total)")


def real_cpu_oom() -> None:
    """The CPU allocator's own error (4 EiB cannot be had; nothing is touched)."""
    torch.empty(2**62, dtype=torch.uint8)


class Inject:
    """Wrap ``owner.name``: out-of-memory on the calls for which ``when(call number, args)`` holds."""

    def __init__(self, monkeypatch, owner, name: str, when) -> None:
        self.calls = 0
        self.raised = 0
        original = getattr(owner, name)

        def wrapped(*args, **kwargs):
            self.calls += 1
            if when(self.calls, args):
                self.raised += 1
                raise cuda_oom()
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapped)


def frames_of(path):
    from vidinvert.video import open_video

    fr = list(open_video(path))
    return np.stack([f.rgb for f in fr]), [round(f.time, 6) for f in fr]


def assert_within_batch_tolerance(got: np.ndarray, ref: np.ndarray, src: np.ndarray) -> None:
    """At most one level, on at most 0.1% of the face pixels (the pixels the edit changed)."""
    assert got.shape == ref.shape
    diff = np.abs(got.astype(np.int16) - ref.astype(np.int16))
    face = (ref != src).any(-1).sum()
    assert face > 0
    assert diff.max() <= 1, diff.max()
    assert (diff > 0).any(-1).sum() <= 0.001 * face, ((diff > 0).any(-1).sum(), face)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_face_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", n_frames=10)


def _models(tw):
    return ["--encoder", str(tw["encoder"]), "--generator", str(tw["generator"]), "--device", "cpu"]


# ------------------------------------------------------------------------------- the mechanism
def test_batches_halve_retry_the_same_rows_and_keep_the_smaller_size():
    capacity = {"rows": 5}
    seen: list[list[int]] = []

    def work(sel):
        if len(sel) > capacity["rows"]:
            real_cpu_oom()
        seen.append(list(sel))
        return [x * x for x in sel]

    size = BatchSize(16, "test stage", source="input.mp4")
    items = list(range(23))
    with LogCapture("vidinvert.memory") as logs:
        out = [r for _, part in size.batches(items, work) for r in part]
        assert out == [x * x for x in items]  # every row once, in order
        assert [x for s in seen for x in s] == items
        assert max(len(s) for s in seen) <= 4 and size.limit == 4  # 16 -> 8 -> 4, kept
        capacity["rows"] = 1  # memory gets tighter later in the input
        seen.clear()
        out = [r for _, part in size.batches(items, work) for r in part]
        assert out == [x * x for x in items] and all(len(s) == 1 for s in seen)
    notices = logs.messages(logging.WARNING)
    assert notices == ["memory: batch 16 → 4 (test stage, input.mp4; kept for the rest of the input)",
                       "memory: batch 4 → 1 (test stage, input.mp4; kept for the rest of the input)"]
    rep = batch_report([size])
    assert rep["start"] == {"test stage": 16} and rep["final"] == {"test stage": 1}
    assert [(r["from"], r["to"], r["memory"]) for r in rep["reductions"]] == [(16, 8, "host"), (8, 4, "host"),
                                                                              (4, 2, "host"), (2, 1, "host")]
    assert "DefaultCPUAllocator" in rep["reductions"][0]["error"]
    capacity["rows"] = 0
    with pytest.raises(OutOfMemoryStop) as e:
        list(size.batches(items, work))
    assert str(e.value).startswith("input.mp4: the machine ran out of memory at a batch of 1 (test stage: ")
    assert "\n" not in str(e.value)


def test_only_memory_errors_are_retried():
    assert is_out_of_memory(cuda_oom()) and is_out_of_memory(MemoryError())
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch")) and not is_out_of_memory(ValueError("out of memory"))
    size = BatchSize(4, "stage")
    calls = []

    def broken(sel):
        calls.append(len(sel))
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        list(size.batches(range(8), broken))
    assert calls == [4] and size.limit == 4 and not size.reductions


# ------------------------------------------------------------------------------------- clips
def test_clip_oom_at_the_third_generator_batch_equals_half_the_batch(tmp_path, clip, tiny_weights, direction,
                                                                     monkeypatch):
    ref_out, out, rep = tmp_path / "ref.mkv", tmp_path / "out.mkv", tmp_path / "rep.json"
    common = ["edit", str(clip), "--direction", str(direction), "--codec", "ffv1", *_models(tiny_weights)]
    assert main([*common, "-o", str(ref_out), "--batch-size", "2", "--no-identity"]) == 0
    inj = Inject(monkeypatch, Inverter, "synthesize", lambda n, a: n == 3)
    with LogCapture("vidinvert") as logs:
        assert main([*common, "-o", str(out), "--batch-size", "4", "--report", str(rep)]) == 0
    assert inj.raised == 1
    src, src_pts = frames_of(clip)
    got, got_pts = frames_of(out)
    ref, _ = frames_of(ref_out)
    assert got_pts == src_pts  # every frame once, in order (timestamps)
    assert_within_batch_tolerance(got, ref, src)
    assert any(m.startswith("GPU memory: batch 4 → 2 (generator passes, clip.mp4")
               for m in logs.messages(logging.WARNING))
    r = json.loads(rep.read_text())
    assert r["frames"]["total"] == 10 and len(r["per_frame"]["id_distance_smile"]) == 10  # metrics once per frame
    batch = json.loads((tmp_path / "out.run.json").read_text())["report"]["batch_size"]
    assert batch == r["batch_size"]
    assert batch["start"] == {"encoder": 4, "generator passes": 4}
    assert batch["final"] == {"encoder": 4, "generator passes": 2}
    assert [(x["stage"], x["from"], x["to"], x["memory"]) for x in batch["reductions"]] == [
        ("generator passes", 4, 2, "gpu")]
    assert batch["reductions"][0]["error"].startswith("CUDA out of memory")


def test_clip_oom_at_batch_one_stops_with_one_line_and_no_output(tmp_path, clip, tiny_weights, direction,
                                                                 monkeypatch, capsys):
    out = tmp_path / "out.mkv"
    Inject(monkeypatch, Inverter, "synthesize", lambda n, a: True)
    rc = main(["edit", str(clip), "--direction", str(direction), "--codec", "ffv1", "-o", str(out),
               "--batch-size", "1", *_models(tiny_weights)])
    assert rc == 1
    err = capsys.readouterr().err.strip()
    assert "clip.mp4: the GPU ran out of memory at a batch of 1 (generator passes: CUDA out of memory" in err
    assert "Traceback" not in err and len([ln for ln in err.splitlines() if "ran out of memory" in ln]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [direction.name]  # nothing written, no partial file


def _job(clip, out, tw, direction, resume):
    from vidinvert.device import resolve_compute
    from vidinvert.edit.directions import EditSpec, load_direction
    from vidinvert.face.stage import FaceConfig
    from vidinvert.pipeline.video import OutputSpec, VideoConfig, VideoJob

    inv = Inverter.from_files(tw["encoder"], tw["generator"], resolve_compute("cpu", "fp32"))
    d = load_direction(direction, inv.n_latent, inv.style_dim, name="smile")
    cfg = VideoConfig(strength=2.0, batch_size=2, chunk_frames=4, codec="ffv1", resume=resume)
    job = VideoJob(source=clip, outputs=(OutputSpec("smile", out, EditSpec("smile", (d,), (1.0,))),), config=cfg,
                   face=FaceConfig(detector="dlib"))
    return inv, job


def test_a_resumed_run_after_the_memory_stop_equals_an_uninterrupted_one(tmp_path, clip, tiny_weights, direction,
                                                                         monkeypatch):
    from vidinvert.pipeline.video import VideoRun
    from vidinvert.pipeline.workdir import WorkDir

    ref_out, out = tmp_path / "ref.mkv", tmp_path / "resumed.mkv"
    inv, job = _job(clip, ref_out, tiny_weights, direction, resume=False)
    VideoRun(inv, job).run()
    inv, job = _job(clip, out, tiny_weights, direction, resume=True)
    with monkeypatch.context() as m:  # chunk 0 (4 frames, 2 batches x 2 passes) renders; then none fits
        Inject(m, Inverter, "synthesize", lambda n, a: n > 4)
        with pytest.raises(OutOfMemoryStop, match="at a batch of 1") as e:
            VideoRun(inv, job, workdir=WorkDir.open(job, inv)).run()
    assert isinstance(e.value, VidinvertError) and not out.exists()
    wd = WorkDir.open(job, inv)
    assert wd.done == {0}
    VideoRun(inv, job, workdir=wd).run()
    got, got_pts = frames_of(out)
    ref, ref_pts = frames_of(ref_out)
    assert np.array_equal(got, ref) and got_pts == ref_pts


# ------------------------------------------------------------------------------------ photos
def test_group_photo_faces_split_when_memory_runs_out(tmp_path, monkeypatch):
    from PIL import Image

    from tests.test_photo import group_photo
    from vidinvert.device import Compute
    from vidinvert.face.detect import DlibDetector
    from vidinvert.models import tiny_pair
    from vidinvert.pipeline.photo import INVERSION, edit_photo

    pytest.importorskip("dlib")
    gen, enc = tiny_pair(0)
    inv = Inverter(enc, gen, Compute(torch.device("cpu"), torch.float32))
    img = group_photo()
    src = tmp_path / "group.png"
    Image.fromarray(img).save(src)
    det = DlibDetector(min_face=0.1)
    ref = edit_photo(inv, src, outputs={INVERSION: tmp_path / "ref.png"}, face_select="all", detector=det)
    inj = Inject(monkeypatch, Inverter, "invert", lambda n, a: len(a[1]) > 1)  # one face at a time fits
    res = edit_photo(inv, src, outputs={INVERSION: tmp_path / "out.png"}, face_select="all", detector=det)
    assert inj.raised == 1 and len(res.faces) == 3
    assert_within_batch_tolerance(np.asarray(Image.open(tmp_path / "out.png")),
                                  np.asarray(Image.open(tmp_path / "ref.png")), img)
    assert ref.as_dict()["batch_size"]["reductions"] == []
    b = res.as_dict()["batch_size"]
    assert b["start"] == {"faces": None} and b["final"] == {"faces": 1}
    assert [(x["from"], x["to"]) for x in b["reductions"]] == [(3, 1)]


def _aligned_faces(folder, astronaut_face, tw, n=5):
    """The tiny models on the CPU and ``n`` aligned faces (the astronaut crop shifted by 3 px steps):
    ``(inverter, paths, uint8 RGB arrays)``."""
    from PIL import Image

    from vidinvert.device import resolve_compute
    from vidinvert.imagefile import read_image

    inv = Inverter.from_files(tw["encoder"], tw["generator"], resolve_compute("cpu", "fp32"))
    img = read_image(astronaut_face)
    arrays = [np.roll(img, 3 * i, axis=1) for i in range(n)]
    paths = [folder / f"in{i}.png" for i in range(n)]
    for p, a in zip(paths, arrays):
        Image.fromarray(a).save(p)
    return inv, paths, arrays


def test_aligned_images_written_once_each_after_a_retry(tmp_path, tiny_weights, astronaut_face, monkeypatch):
    from PIL import Image

    from vidinvert.pipeline.images import ImageJob, run_image_job

    inv, inputs, arrays = _aligned_faces(tmp_path, astronaut_face, tiny_weights)

    def job(tag, bs):
        return ImageJob(tuple(inputs), tuple((tmp_path / f"{tag}{i}.png",) for i in range(5)), batch_size=bs)

    run_image_job(inv, job("ref", 2))
    Inject(monkeypatch, Inverter, "synthesize", lambda n, a: n == 1)
    summary = run_image_job(inv, job("out", 4))  # an output written twice would be refused (no overwrite)
    assert len(summary["outputs"]) == 5 and summary["batch_size"]["final"] == {"images": 2}
    for i in range(5):
        assert_within_batch_tolerance(np.asarray(Image.open(tmp_path / f"out{i}.png")),
                                      np.asarray(Image.open(tmp_path / f"ref{i}.png")), arrays[i])


# -------------------------------------------------------------------------------------- eval
def test_eval_images_after_a_retry_equal_the_smaller_batch(tmp_path, tiny_weights, astronaut_face, monkeypatch):
    from vidinvert.evaluate.datasets import MediaItem
    from vidinvert.evaluate.images import evaluate_images
    from vidinvert.evaluate.suite import MetricSuite

    inv, paths, _ = _aligned_faces(tmp_path, astronaut_face, tiny_weights)
    items = [MediaItem(path=p, key=p.name) for p in paths]
    suite = MetricSuite(lpips=None, identity=None)
    ref = evaluate_images(items, inv, suite, batch_size=2)
    Inject(monkeypatch, Inverter, "synthesize", lambda n, a: n == 1)
    sizes = BatchSize(4, "eval")
    got = evaluate_images(items, inv, suite, batch_size=4, sizes=sizes)
    assert [r.key for r in got] == [r.key for r in ref] and all(r.ok for r in got)
    for a, b in zip(got, ref):
        for m in ("ssim", "psnr", "mse"):
            assert a.metrics[m] == pytest.approx(b.metrics[m], rel=1e-4, abs=1e-6), m
    assert sizes.limit == 2 and [(r.before, r.after) for r in sizes.reductions] == [(4, 2)]


def test_eval_clip_after_a_retry_equals_the_smaller_batch(tiny_weights, clip, monkeypatch):
    from vidinvert.device import resolve_compute
    from vidinvert.evaluate.datasets import MediaItem
    from vidinvert.evaluate.suite import MetricSuite
    from vidinvert.evaluate.video import VideoEvalConfig, evaluate_video

    inv = Inverter.from_files(tiny_weights["encoder"], tiny_weights["generator"], resolve_compute("cpu", "fp32"))
    suite = MetricSuite(lpips=None, identity=None)
    item = MediaItem(path=clip, key=clip.name)
    ref = evaluate_video(item, inv, suite, VideoEvalConfig(batch_size=2))
    assert (ref.status, ref.frames, ref.evaluated) == ("ok", 10, 10)
    inj = Inject(monkeypatch, Inverter, "synthesize", lambda n, a: n == 2)  # the second batch of 4 fails
    sizes = BatchSize(4, "eval", source=str(clip))
    got = evaluate_video(item, inv, suite, VideoEvalConfig(batch_size=4), batch_size=sizes)
    assert inj.raised == 1
    assert (got.status, got.frames, got.evaluated) == ("ok", 10, 10)
    assert got.frame_indices == ref.frame_indices  # every frame measured once, in order
    assert got.per_frame.keys() == ref.per_frame.keys() and {"ssim", "psnr", "mse"} <= got.per_frame.keys()
    for m in ("ssim", "psnr", "mse"):
        assert got.per_frame[m] == pytest.approx(ref.per_frame[m], rel=1e-4, abs=1e-6), m
        assert got.metrics[m] == pytest.approx(ref.metrics[m], rel=1e-4, abs=1e-6), m
    assert sizes.limit == 2 and [(r.before, r.after) for r in sizes.reductions] == [(4, 2)]


# ---------------------------------------------------------------------------------- training
def test_training_step_redone_with_more_micro_steps_equals_that_accumulation(tmp_path, monkeypatch):
    """An out-of-memory error in the second micro-step of the first step (after one backward has
    put gradients and BatchNorm statistics in place): the step is redone in 4 micro-steps and the
    run equals one configured with ``optim.accumulate=4`` from the start."""
    from tests.conftest import ROOT
    from vidinvert.train.config import load_config
    from vidinvert.train.logs import read_jsonl
    from vidinvert.train.loop import Trainer, train

    sets = ["data.batch_synthetic=4", "schedule.iterations=2", "schedule.checkpoint_every=2", "log.val_every=100",
            "log.image_every=100", "log.tensorboard=false"]
    torch.set_num_threads(1)
    try:
        train(load_config(ROOT / "configs" / "tiny.yaml", [*sets, "optim.accumulate=4"]), tmp_path / "ref")
        inj = Inject(monkeypatch, Trainer, "_losses", lambda n, a: n == 2)
        with LogCapture("vidinvert") as logs:
            train(load_config(ROOT / "configs" / "tiny.yaml", [*sets, "optim.accumulate=2"]), tmp_path / "run")
    finally:
        torch.set_num_threads(2)
    assert inj.raised == 1
    assert any("optim.accumulate 2 -> 4 from iteration 1" in m for m in logs.messages(logging.WARNING))
    assert any(m.startswith("GPU memory: batch 2 → 1 (training step") for m in logs.messages(logging.WARNING))

    def records(run):
        return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in read_jsonl(run / "losses.jsonl")]

    assert records(tmp_path / "run") == records(tmp_path / "ref")
    a = torch.load(tmp_path / "run" / "encoder.pth", weights_only=True)
    b = torch.load(tmp_path / "ref" / "encoder.pth", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # BatchNorm statistics included


def test_under_torchrun_a_training_oom_stops_with_a_line_saying_what_to_change(tmp_path, monkeypatch):
    from tests.conftest import ROOT
    from vidinvert.distributed import DistContext
    from vidinvert.memory import OutOfMemoryStop
    from vidinvert.train.config import load_config
    from vidinvert.train.loop import Trainer

    cfg = load_config(ROOT / "configs" / "tiny.yaml", ["schedule.iterations=1", "log.tensorboard=false"])
    t = Trainer(cfg, tmp_path / "run")
    t.info = DistContext(0, 2, 0)  # rank 0 of two processes: no process may retry on its own
    assert t._smaller_micro_batch(1) is None
    inj = Inject(monkeypatch, Trainer, "_losses", lambda n, a: True)
    # the process group, joined here as one gloo process (the run reuses a joined group); the
    # collectives of a world of one need no second process
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        with pytest.raises(OutOfMemoryStop) as stop:
            t.run()
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    assert inj.raised == 1  # stopped at the first failure, not retried smaller
    line = str(stop.value)
    micro = (cfg.data.batch_real + cfg.data.batch_synthetic) // 2  # this process's half, optim.accumulate=1
    assert line == (f"the GPU ran out of memory at a batch of {micro} (training step: CUDA out of memory. Tried to "
                    "allocate 2.00 GiB (GPU 0; 7.79 GiB total)): start the run with a larger optim.accumulate (the "
                    "same global batch in smaller micro-steps; the processes of torchrun cannot retry on their own)")
    t.info = DistContext()
    from vidinvert.train.data import BatchLayout

    t.layout = BatchLayout(0, 4, 1, 0, 1)
    assert (t._smaller_micro_batch(2), t._smaller_micro_batch(1)) == (2, 1)
    t.layout = BatchLayout(0, 4, 1, 0, 4)
    assert t._smaller_micro_batch(0) is None


# ------------------------------------------------------------------------------------ corpus
def test_corpus_input_failing_for_memory_is_recorded_and_the_next_runs(tmp_path, tiny_weights, direction,
                                                                       monkeypatch):
    from PIL import Image

    from tests.face_clips import face_frame
    from vidinvert.pipeline import manifest as mf

    monkeypatch.setenv("VIDINVERT_CPU_THREADS", str(torch.get_num_threads()))
    src = tmp_path / "photos"
    src.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(face_frame(3 if name == "a.png" else 6)).save(src / name)
    out = tmp_path / "out"
    cmd = ["edit", str(src), "--out-dir", str(out), "--direction", str(direction), *_models(tiny_weights)]
    with monkeypatch.context() as m:
        Inject(m, Inverter, "synthesize", lambda n, a: n == 1)  # a.png's one face does not fit
        assert main(cmd) == 1
    recs = {r["input"]: r for r in mf.read_records(out / mf.MANIFEST)}
    assert recs["a.png"]["status"] == "failed" and recs["b.png"]["status"] == "done"
    assert "a.png: the GPU ran out of memory at a batch of 1 (faces: CUDA out of memory" in recs["a.png"]["error"]
    assert not (out / "a.smile.png").exists() and (out / "b.smile.png").is_file()
    assert main(cmd) == 1  # recorded failed: skipped until --retry-failed
    assert main([*cmd, "--retry-failed"]) == 0
    assert mf.latest_records(out)["a.png"]["status"] == "done" and (out / "a.smile.png").is_file()


def test_batch_size_is_no_part_of_the_corpus_or_resume_fingerprint(tmp_path, clip, tiny_weights, direction):
    import dataclasses

    from vidinvert.pipeline.corpus_job import config_fingerprint
    from vidinvert.pipeline.request import EditRequest
    from vidinvert.pipeline.workdir import _fingerprint

    req = EditRequest(inputs=(clip,), direction=(direction,), batch_size=8)
    files = (tiny_weights["encoder"], tiny_weights["generator"])
    assert config_fingerprint(req, files) == config_fingerprint(dataclasses.replace(req, batch_size=1), files)
    assert config_fingerprint(req, files) != config_fingerprint(dataclasses.replace(req, crf=20), files)
    inv, job = _job(clip, tmp_path / "o.mkv", tiny_weights, direction, resume=True)
    smaller = dataclasses.replace(job, config=dataclasses.replace(job.config, batch_size=1))
    assert _fingerprint(job, inv) == _fingerprint(smaller, inv)
