"""Multi-process training on the CPU (gloo): synchronised BatchNorm and a 2-process torchrun run
that equals the 1-process run with the same global batch.

Measured on a 2-core CPU (torch 2.15, 3 Ranger steps of the tiny config, official recipe):
logged losses agree to 6e-7 relative and the trained parameters to 2e-7 relative L2 (float32
reduction order: BatchNorm statistics, gradient all-reduce). The tests allow 1e-5.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.conftest import ROOT
from tests.test_train_loop import train_records, write_faces

TINY = ROOT / "configs" / "tiny.yaml"
TOL = 1e-5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bn_worker(rank: int, world: int, init_file: str, x_np: np.ndarray, grad_np: np.ndarray, out_q) -> None:
    """Inputs and results travel as numpy arrays (pickled by value): a torch tensor on a multiprocessing
    queue is shared by file descriptor and is lost if the worker exits before the parent reads it."""
    from vidinvert.train.syncbn import convert_sync_batchnorm

    x_all, grad_all = torch.from_numpy(x_np), torch.from_numpy(grad_np)

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    bn = convert_sync_batchnorm(bn, torch.device("cpu")).train()
    n = x_all.shape[0] // world
    x = x_all[rank * n : (rank + 1) * n].clone().requires_grad_()
    y = bn(x)
    (y * grad_all[rank * n : (rank + 1) * n]).sum().backward()
    dist.all_reduce(bn.weight.grad)
    out_q.put((rank, *(t.detach().numpy().copy() for t in (y, x.grad, bn.weight.grad, bn.running_mean,
                                                          bn.running_var))))
    dist.barrier()
    dist.destroy_process_group()


def test_group_batchnorm_over_two_processes_equals_batchnorm_on_the_whole_batch(tmp_path):
    g = torch.Generator().manual_seed(1)
    x_all = torch.randn(6, 4, 5, 5, generator=g) * 3 + 1
    grad_all = torch.randn(6, 4, 5, 5, generator=g)
    torch.manual_seed(0)
    ref = torch.nn.BatchNorm2d(4)
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.uniform_(-0.5, 0.5)
    xr = x_all.clone().requires_grad_()
    yr = ref.train()(xr)
    (yr * grad_all).sum().backward()

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_bn_worker, args=(r, 2, str(tmp_path / "store"), x_all.numpy(), grad_all.numpy(), q)) for r in range(2)]
    for p in procs:
        p.start()
    results = sorted((q.get(timeout=120) for _ in procs), key=lambda r: r[0])
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    results = [(r[0], *(torch.from_numpy(a) for a in r[1:])) for r in results]
    y = torch.cat([r[1] for r in results])
    gx = torch.cat([r[2] for r in results])
    torch.testing.assert_close(y, yr.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gx, xr.grad, rtol=1e-5, atol=1e-5)
    for r in results:
        torch.testing.assert_close(r[3], ref.weight.grad, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(r[4], ref.running_mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(r[5], ref.running_var, rtol=1e-5, atol=1e-6)


def _env(threads: int) -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), OMP_WAIT_POLICY="PASSIVE", PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    return env


def test_two_process_gloo_run_equals_one_process_run(tmp_path):
    faces = write_faces(tmp_path / "faces", n=8)
    sets = []
    for s in (f"data.real_dir={faces}", "data.batch_real=2", "data.batch_synthetic=2", "loss.recipe=official",
              "schedule.fade_in=2", "schedule.iterations=3", "log.val_every=100", "log.image_every=100",
              "log.tensorboard=false"):
        sets += ["--set", s]
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = subprocess.run([sys.executable, "-m", "vidinvert.train", str(TINY), "--run-dir", str(one), *sets],
                        env=_env(1), check=False, capture_output=True, text=True, timeout=600)
    assert r1.returncode == 0, r1.stderr[-2000:]
    port = _free_port()
    r2 = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                         "--master_addr", "127.0.0.1", "--master_port", str(port),
                         "-m", "vidinvert.train", str(TINY), "--run-dir", str(two), *sets],
                        env=_env(1), check=False, capture_output=True, text=True, timeout=600)
    assert r2.returncode == 0, r2.stderr[-3000:]
    a, b = train_records(one), train_records(two)
    assert [r["iteration"] for r in a] == [r["iteration"] for r in b] == [1, 2, 3]
    worst = 0.0
    for ra, rb in zip(a, b):
        for k in ("loss", "l2", "lpips", "identity", "parsing", "feature"):
            worst = max(worst, abs(ra[k] - rb[k]) / abs(ra[k]))
        assert ra["lr"] == rb["lr"] and ra["fade"] == rb["fade"]
    assert worst < TOL, worst
    sa, sb = torch.load(one / "encoder.pth"), torch.load(two / "encoder.pth")
    rel = max(float((sa[k].double() - sb[k].double()).norm() / (sa[k].double().norm() + 1e-30))
              for k in sa if sa[k].is_floating_point())
    assert rel < TOL, rel
    state = torch.load(max((two / "checkpoints").iterdir()), weights_only=True)
    assert state["world_size"] == 2
