"""Training throughput: iterations/s of ``vidinvert train`` (and peak GPU memory).

    python benchmarks/bench_train.py                       # tiny config on the CPU
    python benchmarks/bench_train.py --full --batch 4 8    # 1024 px paper recipe, bf16, on CUDA

The tiny case runs ``configs/tiny.yaml`` as shipped (random 64 px generator, random loss
networks). The full case runs ``configs/ffhq.yaml`` (paper recipe: x1 = G(w+), x2 = G(w+, F),
LPIPS at 3 scales, ArcFace identity, BiSeNet parsing at 512, feature loss) with full-size
networks holding RANDOM weights (same cost as the real ones, no files needed) and random
1024 px real images. Iterations/s is measured between the end of the warm-up and the last step
(checkpoint writes excluded). Prints a table and writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _faces(folder: Path, n: int, side: int) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        small = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(small).resize((side, side), Image.BICUBIC).save(folder / f"{i:03d}.png")
    return folder


def _full_networks(device: torch.device):
    """Full-size FFHQ networks with random weights (no files)."""
    from vidinvert.models.fs_encoder import FeatureStyleEncoder
    from vidinvert.models.iresnet import iresnet50
    from vidinvert.models.stylegan2 import Generator
    from vidinvert.train.build import Networks
    from vidinvert.train.losses import IdentityLoss, ParsingLoss, build_bisenet, build_lpips, freeze

    gen = freeze(Generator(1024)).to(device)
    latent_avg = gen.mean_latent(1000).to(device)
    enc = FeatureStyleEncoder()
    enc.set_latent_avg(latent_avg.cpu())
    return Networks(
        generator=gen, latent_avg=latent_avg, encoder=enc.train(),
        lpips=build_lpips("random", scales=3).to(device),
        identity=IdentityLoss(iresnet50()).to(device),
        parsing=ParsingLoss(build_bisenet(None), 512).to(device),
        files={},
    )


def bench(config: Path, sets: list[str], iterations: int, warmup: int, networks_fn=None) -> dict:
    from vidinvert.train.config import load_config
    from vidinvert.train.loop import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(config, [*sets, f"schedule.iterations={iterations + 100}",
                                   f"schedule.stop_at={iterations}", f"schedule.checkpoint_every={iterations}",
                                   "log.val_every=1000000", "log.image_every=1000000", "log.tensorboard=false"])
        stamps: list[float] = []
        nets = None
        if networks_fn is not None:
            from vidinvert.device import resolve_compute

            nets = networks_fn(resolve_compute(cfg.device, cfg.dtype).device)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        Trainer(cfg, Path(tmp) / "run", networks=nets,
                progress=lambda done, total, losses: stamps.append(time.perf_counter())).run()
        total = time.perf_counter() - t0
        timed = stamps[warmup - 1 : -1] if len(stamps) > warmup + 1 else stamps
        rate = (len(timed) - 1) / (timed[-1] - timed[0]) if len(timed) > 1 else float("nan")
        out = {"iterations": iterations, "warmup": warmup, "iterations_per_s": rate,
               "images_per_s": rate * (cfg.data.batch_real + cfg.data.batch_synthetic),
               "wall_s_including_setup": total, "batch": cfg.data.batch_real + cfg.data.batch_synthetic,
               "device": cfg.device, "dtype": cfg.dtype}
        if torch.cuda.is_available() and cfg.device != "cpu":
            out["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="the 1024 px configs/ffhq.yaml on CUDA (random weights)")
    ap.add_argument("--batch", type=int, nargs="+", default=None, help="global batch sizes (half real, half synthetic)")
    ap.add_argument("--iterations", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (tiny case)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the encoder")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.full:
            if not torch.cuda.is_available():
                sys.exit("--full needs a CUDA GPU")
            faces = _faces(Path(tmp) / "faces", 16, 1024)
            for b in args.batch or [4, 8]:
                sets = [f"data.real_dir={faces}", f"data.batch_real={b // 2}", f"data.batch_synthetic={b - b // 2}",
                        "data.val_fraction=0", "data.workers=4", "device=cuda", "dtype=bf16",
                        f"compile={'true' if args.compile else 'false'}", "model.encoder_init=random"]
                r = bench(ROOT / "configs" / "ffhq.yaml", sets, args.iterations or 30, args.warmup or 5, _full_networks)
                r["config"] = "ffhq.yaml (1024, paper recipe)"
                results.append(r)
        else:
            torch.set_num_threads(args.threads)
            faces = _faces(Path(tmp) / "faces", 8, 64)
            for b in args.batch or [2, 4]:
                sets = [f"data.real_dir={faces}", f"data.batch_real={b // 2}", f"data.batch_synthetic={b - b // 2}"]
                r = bench(ROOT / "configs" / "tiny.yaml", sets, args.iterations or 12, args.warmup or 2)
                r["config"] = "tiny.yaml (64 px, random networks)"
                r["threads"] = args.threads
                results.append(r)

    machine = {"python": platform.python_version(), "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
               "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    print(f"{'config':<36} {'batch':>5} {'it/s':>8} {'img/s':>8} {'peak GiB':>9}")
    for r in results:
        peak = f"{r['peak_gpu_memory_gib']:.1f}" if "peak_gpu_memory_gib" in r else "-"
        print(f"{r['config']:<36} {r['batch']:>5} {r['iterations_per_s']:>8.3f} {r['images_per_s']:>8.2f} {peak:>9}")
    if args.out:
        args.out.write_text(json.dumps({"machine": machine, "results": results}, indent=2))


if __name__ == "__main__":
    main()
