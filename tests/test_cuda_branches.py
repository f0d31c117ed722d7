"""The CUDA-only branches, run on a CPU with CUDA mocked: the batch size from free memory, the
auto dtype per device, ``cuda:LOCAL_RANK`` under torchrun, pinned non-blocking copies (and the
unchanged CPU path), and the memory backoff's CUDA cache emptying. Each test asserts the decision
made and what comes out of it. (``tests/test_device_paths.py`` runs the real thing on a GPU.)
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from tests.video_fixtures import LogCapture
from vidinvert import distributed as D
from vidinvert.errors import VidinvertError

GiB = 2**30


@pytest.fixture()
def fake_cuda(monkeypatch):
    """``torch.cuda`` says two GPUs are there; records what is asked of it."""
    calls: dict[str, list] = {"mem_get_info": [], "empty_cache": [], "set_device": []}
    state = {"free": 8 * GiB}

    def mem_get_info(device=None):
        calls["mem_get_info"].append(torch.device(device))
        return state["free"], 80 * GiB

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls["empty_cache"].append(True))
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls["set_device"].append(torch.device(d)))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "Mock GPU")
    return calls, state


# ------------------------------------------------------------------------------ batch size
def _batch(request, device, size):
    from vidinvert.device import Compute
    from vidinvert.pipeline.request import VIDEO
    from vidinvert.pipeline.settings import JobSettings

    return JobSettings.resolve(request, check=False).batch_size(VIDEO, Compute(device, torch.bfloat16), size)


@pytest.mark.parametrize("free_gib, size, expected", [
    (9.5, 1024, 9),      # 60% of the free memory over 0.6 GiB per 1024-px frame = free GiB at 1024
    (100.0, 1024, 32),   # capped
    (0.1, 1024, 1),      # never below 1
    (0.55, 256, 8),      # a 256-px frame takes 1/16 of a 1024 one
])
def test_batch_size_from_free_gpu_memory(fake_cuda, free_gib, size, expected):
    from vidinvert.pipeline.request import InvertRequest

    calls, state = fake_cuda
    state["free"] = free_gib * GiB
    reference = int(min(32, max(1, np.floor(free_gib * 0.6 / (0.6 * (size / 1024) ** 2)))))
    assert _batch(InvertRequest(), torch.device("cuda", 1), size) == expected == reference
    assert calls["mem_get_info"] == [torch.device("cuda", 1)]  # the free memory of the run's GPU


def test_batch_size_on_the_cpu_and_an_explicit_ceiling(fake_cuda, tmp_path):
    from vidinvert.device import Compute
    from vidinvert.pipeline.request import InvertRequest
    from vidinvert.pipeline.settings import JobSettings
    from vidinvert.pipeline.video_config import VideoJob

    calls, state = fake_cuda
    assert _batch(InvertRequest(), torch.device("cpu"), 1024) == 2 and calls["mem_get_info"] == []
    state["free"] = 12.5 * GiB
    compute = Compute(torch.device("cuda", 0), torch.bfloat16)
    jobs = [VideoJob.from_settings(JobSettings.resolve(InvertRequest(inputs=(tmp_path / "c.mp4",), batch_size=bs),
                                                       check=False), tmp_path / "c.mp4", (), compute=compute,
                                   image_size=1024, frames_dir=None, save_latents=None) for bs in (None, 5)]
    assert [j.config.batch_size for j in jobs] == [12, 5]  # --batch-size wins (a ceiling), else the free memory
    assert calls["mem_get_info"] == [torch.device("cuda", 0)]


# ------------------------------------------------------------------------------------ dtype
def test_auto_dtype_and_device_choice_with_cuda(fake_cuda, monkeypatch):
    from vidinvert.device import resolve_compute

    monkeypatch.delenv("VIDINVERT_DTYPE", raising=False)  # the auto rule itself (conftest pins fp32)
    c = resolve_compute("auto", "auto")
    assert (c.device, c.dtype, c.fell_back) == (torch.device("cuda"), torch.bfloat16, False)
    assert c.describe() == "cuda (Mock GPU), bf16"
    c = resolve_compute("cuda:1", "fp16")
    assert (c.device, c.dtype, c.autocast_enabled) == (torch.device("cuda", 1), torch.float16, True)
    assert resolve_compute("cuda", "fp32").autocast_enabled is False
    with pytest.raises(VidinvertError, match="only 2 CUDA device"):
        resolve_compute("cuda:2", "auto")
    c = resolve_compute("cpu", "auto")  # the CPU asked for with a GPU there: the CPU, no fallback notice
    assert c.device == torch.device("cpu") and not c.fell_back


# -------------------------------------------------------------------------------- torchrun
def test_each_torchrun_rank_binds_cuda_local_rank(fake_cuda, monkeypatch):
    calls, _ = fake_cuda
    ctx = D.context_from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert D.device_for(ctx, torch.device("cuda")) == torch.device("cuda", 1)
    assert D.device_for(ctx, torch.device("cpu")) == torch.device("cpu")  # the CPU stays the CPU
    assert D.device_for(D.DistContext(), torch.device("cuda")) == torch.device("cuda")  # no torchrun
    with pytest.raises(VidinvertError, match="LOCAL_RANK 2 but only 2 CUDA device") as e:
        D.device_for(D.context_from_env({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "2"}), torch.device("cuda"))
    assert "\n" not in str(e.value)

    joined = {}
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda **kw: joined.update(kw))
    out = D.init_process_group(ctx, torch.device("cuda", 1))
    assert out.backend == "nccl" and joined["backend"] == "nccl" and joined["device_id"] == torch.device("cuda", 1)
    assert (joined["rank"], joined["world_size"]) == (3, 4) and calls["set_device"] == [torch.device("cuda", 1)]
    joined.clear()
    assert D.init_process_group(ctx, torch.device("cpu")).backend == "gloo" and "device_id" not in joined


# ------------------------------------------------------------------------- pinned copies
def test_copies_to_cuda_are_pinned_and_non_blocking_and_the_cpu_path_is_unchanged(monkeypatch):
    from vidinvert.convert import to_tensor
    from vidinvert.device import to_device

    t = torch.arange(12, dtype=torch.uint8).reshape(1, 2, 2, 3)
    assert to_device(t, "cpu") is t and to_device(t, None) is t  # no copy, no pinning on the CPU
    events = []
    real_to = torch.Tensor.to

    def fake_pin(self):
        events.append("pin")
        return self.clone()

    def fake_to(self, *args, **kwargs):
        target = args[0] if args else kwargs.get("device")
        if isinstance(target, (str, torch.device)) and torch.device(target).type == "cuda":
            events.append(("to", str(target), kwargs.get("non_blocking", False)))
            return self
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "pin_memory", fake_pin)
    monkeypatch.setattr(torch.Tensor, "is_pinned", lambda self: False)
    monkeypatch.setattr(torch.Tensor, "to", fake_to)
    out = to_device(t, "cuda:1")
    assert events == ["pin", ("to", "cuda:1", True)] and torch.equal(out, t)
    events.clear()
    monkeypatch.setattr(torch.Tensor, "is_pinned", lambda self: True)  # a DataLoader's pinned batch
    to_device(t, torch.device("cuda"))
    assert events == [("to", "cuda", True)]
    events.clear()
    got = to_tensor(t.numpy()[0])  # the CPU path: nothing pinned, the official normalisation
    assert events == []
    ref = (t.numpy()[0].astype(np.float32) / 255 - 0.5) / 0.5
    np.testing.assert_allclose(got[0].permute(1, 2, 0).numpy(), ref, atol=1e-6)


def test_training_pins_real_images_only_on_cuda(tmp_path):
    from tests.test_train_loop import write_faces
    from vidinvert.train.data import BatchLayout, RealFaces, RealOrder, real_loader

    files = sorted(write_faces(tmp_path / "faces", n=2).iterdir())
    layout = BatchLayout(1, 0)
    assert real_loader(RealFaces(files, 64), layout, RealOrder(2, 0), 0, 1, 0).pin_memory is False
    assert real_loader(RealFaces(files, 64), layout, RealOrder(2, 0), 0, 1, 0, pin=True).pin_memory is True


# ------------------------------------------------------------------------ memory backoff
def test_a_cuda_oom_empties_the_cache_halves_and_says_gpu_memory(fake_cuda):
    from vidinvert.memory import BatchSize, OutOfMemoryStop

    calls, _ = fake_cuda
    size = BatchSize(8, "encoder", source="clip.mp4", device=torch.device("cuda", 0))
    fits = {"rows": 2}

    def run(sel):
        if len(sel) > fits["rows"]:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.50 GiB")
        return list(sel)

    with LogCapture("vidinvert.memory") as logs:
        assert [x for _, part in size.batches(list(range(9)), run) for x in part] == list(range(9))
    assert size.limit == 2 and len(calls["empty_cache"]) == 2  # once per halving: 8 -> 4 -> 2
    assert logs.messages(logging.WARNING) == [
        "GPU memory: batch 8 → 2 (encoder, clip.mp4; kept for the rest of the input)"]
    fits["rows"] = 0
    with pytest.raises(OutOfMemoryStop, match=r"^clip\.mp4: the GPU ran out of memory at a batch of 1 \(encoder: "
                                              r"CUDA out of memory\. Tried to allocate 1\.50 GiB\): close other"):
        list(size.batches([0], run))


def test_a_cpu_allocator_oom_on_the_cpu_leaves_cuda_alone(fake_cuda):
    from vidinvert.memory import BatchSize

    calls, _ = fake_cuda
    size = BatchSize(4, "generator passes", device=torch.device("cpu"))
    tries = []

    def run(sel):
        tries.append(len(sel))
        if len(sel) > 1:
            torch.empty(2**62, dtype=torch.uint8)  # the CPU allocator's real error
        return len(sel)

    assert [n for _, n in size.batches(range(3), run)] == [1, 1, 1]
    assert tries == [3, 1, 1, 1] and calls["empty_cache"] == []
    assert [r.gpu for r in size.reductions] == [False]


def test_retinaface_batches_halve_and_find_the_same_faces(monkeypatch):
    pytest.importorskip("facexlib")
    from vidinvert.face.detect import RetinaFaceDetector

    det = RetinaFaceDetector(None, "cpu", conf_threshold=0.0)  # random weights: detections without meaning
    frames = [np.random.default_rng(i).integers(0, 255, (64, 80, 3), dtype=np.uint8) for i in range(5)]
    ref = det.detect(frames, 1.0)
    original = RetinaFaceDetector._run
    sizes = []

    def limited(self, small):
        sizes.append(len(small))
        if len(small) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return original(self, small)

    monkeypatch.setattr(RetinaFaceDetector, "_run", limited)
    got = det.detect(frames, 1.0)
    assert sizes == [5, 2, 2, 1] and det.batch.limit == 2
    assert [len(f) for f in got] == [len(f) for f in ref] and sum(len(f) for f in ref) > 0
    for a, b in zip(got, ref):
        for fa, fb in zip(a, b):
            np.testing.assert_allclose(fa.box, fb.box, rtol=1e-3)  # random weights amplify batch-composition bits
            assert fa.score == pytest.approx(fb.score, abs=1e-3)
