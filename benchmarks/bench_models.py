#!/usr/bin/env python
"""Time the StyleGAN2 generator (and the Feature-Style encoder) per aligned 1024 frame.

Random weights (timing does not depend on them). For each batch size:
  - generator full pass, our batched non-fused path and the per-sample grouped path; in bf16 on the CPU
    the generator's fast path (default) and its reference path (``fast_path = False``);
  - the same convolutions run bare (same shapes, weights, memory format; inputs prepared beforehand),
    and a profiler split of our pass into convolutions / FIR (blur, skip upsample) / style scaling /
    demod+noise+bias+lrelu epilogue / other;
  - an edit's two early-exit passes G_5(w), G_5(w~) (one batched call) against two full passes;
  - with the encoder: encoder input preparation + encoder, and a whole edited frame
    (encoder + early-exit pair + synthesis with F~) against all its convolutions run bare.

CPU (default): fp32, batch 1 and 4. GPU: ``--device cuda --dtype bf16 --batch 8 32`` (autocast).
On CPU, PyTorch's THP_MEM_ALLOC_ENABLE=1 (huge pages for large tensors) is set before torch is
imported unless ``--no-thp``; both the full and the bare runs see the same allocator.

  python benchmarks/bench_models.py [--batch 1 4] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import os
import sys

if "--no-thp" not in sys.argv:
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from vidinvert.models.stylegan2 import Generator, ModulatedConv, StyledConv, ToRGB  # noqa: E402

try:
    from vidinvert.models import fs_encoder
except ImportError:  # the encoder is optional for this benchmark
    fs_encoder = None

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
K = 5  # feature index of the Feature-Style encoder


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--dtype", default=None, choices=sorted(DTYPES), help="fp32 (CPU default) or bf16 (GPU default)")
    ap.add_argument("--batch", type=int, nargs="+", default=None, help="batch sizes (CPU: 1 4; GPU: 8 32)")
    ap.add_argument("--size", type=int, default=1024, help="generator resolution")
    ap.add_argument("--repeats", type=int, default=3,
                    help="timed rounds; each round runs every measurement once (the minimum is reported)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (CPU default: 2)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall: elapsed time; cpu: this process's CPU time over all threads (robust on a "
                         "shared machine, best with --threads 1; CPU only)")
    ap.add_argument("--no-grouped", action="store_true", help="skip the grouped reference path")
    ap.add_argument("--no-encoder", action="store_true", help="skip the encoder")
    ap.add_argument("--no-thp", action="store_true", help="do not set THP_MEM_ALLOC_ENABLE=1")
    ap.add_argument("--json", type=Path, default=None, help="output JSON (default bench_models_<device>_<dtype>.json)")
    return ap.parse_args(argv)


class Timer:
    def __init__(self, device: torch.device, repeats: int, warmup: int, clock: str = "wall") -> None:
        self.device, self.repeats, self.warmup = device, repeats, warmup
        self.clock = time.process_time if clock == "cpu" else time.perf_counter

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def interleaved(self, fns: dict) -> dict[str, dict]:
        """Runs every closure once per round, ``repeats`` rounds (after ``warmup`` rounds), so that bursts
        of load on a shared machine hit all measurements alike. Returns min/median seconds per name."""
        for _ in range(self.warmup):
            for fn in fns.values():
                fn()
        self.sync()
        times: dict[str, list[float]] = {name: [] for name in fns}
        for _ in range(self.repeats):
            for name, fn in fns.items():
                t0 = self.clock()
                fn()
                self.sync()
                times[name].append(self.clock() - t0)
        return {name: {"min_s": min(t), "median_s": statistics.median(t), "runs": len(t)} for name, t in times.items()}


# ------------------------------------------------------------------------------- bare convolutions
class BareConvs:
    """Records the convolutions a run makes (module, input shape, layout) and replays them bare."""

    def __init__(self, model: nn.Module) -> None:
        self.calls: list[tuple[nn.Module, str, torch.Size, bool]] = []
        self.handles = []
        for m in model.modules():
            if isinstance(m, StyledConv):
                self.handles.append(m.conv.register_forward_pre_hook(self._hook("styled")))
            elif isinstance(m, ToRGB):
                self.handles.append(m.register_forward_pre_hook(self._hook("torgb")))
            elif isinstance(m, nn.Conv2d):
                self.handles.append(m.register_forward_pre_hook(self._hook("conv2d")))

    def _hook(self, kind):
        def hook(module, args):
            x = args[0]
            cl = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
            self.calls.append((module, kind, x.shape, cl))
        return hook

    def remove(self) -> None:
        for h in self.handles:
            h.remove()

    def replay_fn(self, dtype: torch.dtype, device: torch.device):
        """A closure running every recorded convolution once on prepared random inputs."""
        inputs: dict = {}
        ops = []
        for module, kind, shape, cl in self.calls:
            fmt = torch.channels_last if cl else torch.contiguous_format
            key = (tuple(shape), cl)
            if key not in inputs:
                inputs[key] = torch.randn(shape, device=device, dtype=dtype).contiguous(memory_format=fmt)
            x = inputs[key]
            if kind == "styled":
                m: ModulatedConv = module
                with torch.no_grad():
                    wc = m.derived_weights(fmt)[1].to(dtype)
                if m.upsample:
                    ops.append(lambda x=x, wc=wc: F.conv_transpose2d(x, wc, stride=2))
                else:
                    ops.append(lambda x=x, wc=wc, p=m.kernel_size // 2: F.conv2d(x, wc, padding=p))
            elif kind == "torgb":
                wc = module.conv.weight[0].detach().to(dtype).contiguous(memory_format=fmt)
                ops.append(lambda x=x, wc=wc: F.conv2d(x, wc))
            else:
                c: nn.Conv2d = module
                wc = c.weight.detach().to(dtype).contiguous(memory_format=fmt)
                ops.append(lambda x=x, wc=wc, c=c: F.conv2d(x, wc, None, c.stride, c.padding, c.dilation, c.groups))

        def run():
            with torch.no_grad():
                for op in ops:
                    op()
        return run


def reference_path(G: Generator, fn):
    """``fn`` run with the generator's bf16 CPU fast path switched off (the reference path)."""
    def run():
        G.fast_path = False
        try:
            return fn()
        finally:
            G.fast_path = True
    return run


def record_convs(model: nn.Module, fn) -> BareConvs:
    """The convolutions ``fn`` makes (recorded on the reference path: the fast path has the same ones)."""
    rec = BareConvs(model)
    fast = getattr(model, "fast_path", None)
    if fast is not None:
        model.fast_path = False
    try:
        with torch.no_grad():
            fn()
    finally:
        rec.remove()
        if fast is not None:
            model.fast_path = fast
    return rec


# ------------------------------------------------------------------------------ profiler split
CATEGORIES = ("convolution", "FIR (blur, skip upsample)", "style scaling x*s", "demod+noise+bias+lrelu", "other")


def profile_split(fn) -> dict[str, float]:
    """Seconds per category of top-level aten ops in one run of ``fn`` (CPU profiler)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        fn()
    out: dict[str, float] = defaultdict(float)
    for evt in prof.events():
        if evt.cpu_parent is not None or not evt.name.startswith("aten::"):
            continue
        name, shapes = evt.name, evt.input_shapes or []
        if name in ("aten::conv2d", "aten::conv_transpose2d", "aten::_convolution", "aten::convolution"):
            weight = shapes[1] if len(shapes) > 1 else []
            depthwise = len(weight) == 4 and weight[1] == 1 and weight[2] == 4
            cat = "FIR (blur, skip upsample)" if depthwise else "convolution"
        elif name == "aten::bmm":
            cat = "convolution"
        elif name == "aten::mul_":
            cat = "style scaling x*s"
        elif name in ("aten::addcmul", "aten::add_", "aten::add", "aten::leaky_relu_", "aten::clamp_"):
            cat = "demod+noise+bias+lrelu"
        else:
            cat = "other"
        out[cat] += evt.cpu_time_total / 1e6
    return {c: out.get(c, 0.0) for c in CATEGORIES}


# ------------------------------------------------------------------------------------------ main
def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    dtype = DTYPES[args.dtype or ("bf16" if gpu else "fp32")]
    batches = args.batch or ([8, 32] if gpu else [1, 4])
    if not gpu:
        torch.set_num_threads(args.threads or 2)
    elif args.threads:
        torch.set_num_threads(args.threads)
    if gpu:
        torch.backends.cudnn.benchmark = True
    autocast = (torch.autocast(device_type=device.type, dtype=dtype) if dtype != torch.float32
                else contextlib.nullcontext())
    if gpu and args.clock == "cpu":
        raise SystemExit("--clock cpu is for CPU runs")
    timer = Timer(device, args.repeats, args.warmup, args.clock)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None

    torch.manual_seed(0)
    G = Generator(args.size).eval().to(device)
    enc = None
    if fs_encoder is not None and not args.no_encoder:
        enc = fs_encoder.FeatureStyleEncoder(n_styles=G.n_latent).eval().to(device)
        enc = enc.to(memory_format=torch.channels_last)

    rows: list[dict] = []

    def add(batch, what, seconds, ref=None, note=""):
        row = {"batch": batch, "measure": what, "ms_per_frame": 1e3 * seconds / batch}
        if ref is not None:
            row["ratio"] = seconds / ref
        if note:
            row["note"] = note
        rows.append(row)
        return seconds

    for b in batches:
        gen = torch.Generator().manual_seed(b)
        w = (0.5 * torch.randn(b, G.n_latent, G.style_dim, generator=gen)).to(device)
        w_edit = w + 0.3 * torch.randn(w.shape, generator=gen).to(device)
        c16 = G.channels[16]
        feat = torch.randn(b, c16, 16, 16, generator=gen).to(device)

        def full(w=w, feat=feat):
            with torch.no_grad(), autocast:
                return G(w, feat)

        def early_pair(w=w, w_edit=w_edit):
            with torch.no_grad(), autocast:
                return G.forward_until(torch.cat([w, w_edit]), K)

        def full_grouped():
            G.grouped_modconv = True
            try:
                return full()
            finally:
                G.grouped_modconv = False

        fns = {"full": full, "bare_full": record_convs(G, full).replay_fn(dtype, device),
               "pair": early_pair, "bare_pair": record_convs(G, early_pair).replay_fn(dtype, device)}
        if not args.no_grouped:
            fns["grouped"] = full_grouped
        fast_applies = device.type == "cpu" and dtype == torch.bfloat16
        if fast_applies:  # the bf16 CPU fast path (default) against the reference path
            fns["full_ref"] = reference_path(G, full)
        if enc is not None:
            face = torch.rand(b, 3, args.size, args.size, generator=gen).to(device) * 2 - 1
            face = face.contiguous(memory_format=torch.channels_last)

            def encode(face=face):
                with torch.no_grad(), autocast:
                    return enc(fs_encoder.prepare_encoder_input(face))

            def edited_frame(face=face, delta=w_edit - w):
                with torch.no_grad(), autocast:
                    w_plus, f = enc(fs_encoder.prepare_encoder_input(face))
                    g5 = G.forward_until(torch.cat([w_plus, w_plus + delta]), K)
                    return G(w_plus + delta, f + g5[b:] - g5[:b])

            fns.update(encode=encode, bare_enc=record_convs(enc, encode).replay_fn(dtype, device),
                       frame=edited_frame)
            if fast_applies:
                fns["frame_ref"] = reference_path(G, edited_frame)
        t = {name: r["min_s"] for name, r in timer.interleaved(fns).items()}

        add(b, "generator full pass (ours, batched non-fused)" + (", bf16 fast path" if fast_applies else ""),
            t["full"])
        if "full_ref" in t:
            add(b, "generator full pass, bf16 reference path", t["full_ref"], t["full"], "ratio vs the fast path")
        if "grouped" in t:
            add(b, "generator full pass (grouped per-sample)", t["grouped"], t["full"])
        add(b, "  same convolutions run bare", t["bare_full"], t["full"])
        add(b, "  rest = full - bare convolutions", t["full"] - t["bare_full"], t["full"])
        if not gpu:
            split = profile_split(full)
            total = sum(split.values())
            for cat, sec in split.items():
                add(b, f"  profile: {cat}", sec * t["full"] / total, t["full"], "share of one profiled run")
        add(b, "edit: early-exit pair G_5(w), G_5(w~)", t["pair"], 2 * t["full"], "ratio vs two full passes")
        add(b, "  its convolutions run bare", t["bare_pair"], t["pair"])
        add(b, "edit: two full passes", 2 * t["full"])
        if enc is not None:
            add(b, "encoder (input prep + forward)", t["encode"])
            add(b, "  encoder convolutions run bare", t["bare_enc"], t["encode"])
            frame_bare = t["bare_enc"] + t["bare_pair"] + t["bare_full"]
            add(b, "EDITED FRAME (encoder + early pair + synthesis)", t["frame"], frame_bare,
                "ratio vs its convolutions run bare (target <= 1.5 on CPU)")
            add(b, "  its convolutions run bare", frame_bare)
            if "frame_ref" in t:
                add(b, "EDITED FRAME, bf16 reference path", t["frame_ref"], t["frame"], "ratio vs the fast path")
            inv = t["encode"] + t["full"]
            add(b, "INVERTED FRAME (encoder + synthesis)", inv, note=f"{b / inv:.2f} frames/s")

    meta = {
        "date": datetime.date.today().isoformat(),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]) if argv is None else " ".join(argv),
        "device": args.device if not gpu else torch.cuda.get_device_name(device),
        "dtype": str(dtype).replace("torch.", ""),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "thp_mem_alloc": os.environ.get("THP_MEM_ALLOC_ENABLE", "0"),
        "size": args.size,
        "repeats": args.repeats,
        "clock": args.clock,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "weights": "random (timing only)",
    }
    print(f"# {meta['device']} {meta['dtype']} threads={meta['threads']} clock={args.clock} torch {meta['torch']} "
          f"THP_MEM_ALLOC_ENABLE={meta['thp_mem_alloc']} load {meta['loadavg_before']} -> {meta['loadavg_after']}")
    print(f"{'batch':>5}  {'measure':<52} {'ms/frame':>10} {'ratio':>7}  note")
    for r in rows:
        ratio = f"{r['ratio']:.2f}" if "ratio" in r else ""
        print(f"{r['batch']:>5}  {r['measure']:<52} {r['ms_per_frame']:>10.1f} {ratio:>7}  {r.get('note', '')}")
    out = args.json or Path(f"bench_models_{args.device}_{meta['dtype']}.json")
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"# wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
