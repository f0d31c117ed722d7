"""The Feature-Style encoder training loop: recipes, checkpoints, resume, DDP, logging.

Recipes (``loss.recipe``), for a batch of synthetic samples (first) and real images:

- ``paper``: x1 = G(w+) from the latent code only, x2 = G(w+, F). A synthetic input is
  reconstructed with the noise maps it was rendered with, a real one with random noise.
  L2 on x1 of the synthetic inputs; LPIPS, identity and parsing on x1 and x2 (summed).
- ``official`` (configuration "001"): x1 = G(w+, F) with random noise, x2 = G(w+, F) with the
  synthetic sample's own noise (a real image has none: random noise keyed by its position).
  L2 on x1 of the synthetic inputs; LPIPS, identity and parsing summed over x1 and x2.

Both: feature reconstruction ``MSE(F, G_K(w+).detach())`` (G_K with x1's noise); F is faded in
as ``(1-s) G_K(w+) + s F`` with ``s = min(1, it / schedule.fade_in)`` (``fade_in: 0``: s = 1).

Every loss term is a mean over the samples of the GLOBAL batch it applies to (all samples, or
the synthetic ones for L2), computed as local sums divided by global counts, so 1 process and
N processes (or N accumulation micro-steps without BatchNorm effects) optimise the same
objective; with DDP's gradient averaging the local loss is scaled by the world size.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel as DDP

from vidinvert import distributed as D
from vidinvert.device import resolve_compute, to_device
from vidinvert.errors import VidinvertError
from vidinvert.fileio import write_json
from vidinvert.memory import BatchSize
from vidinvert.models.fs_encoder import prepare_encoder_input
from vidinvert.runinfo import run_record
from vidinvert.train import checkpoint as ckpt
from vidinvert.train.build import Networks, build_networks, resolve_files
from vidinvert.train.config import TrainConfig, apply_overrides, dump_config, load_config, resume_differences, to_dict, validate
from vidinvert.train.data import (
    STREAM_VAL_SYNTHETIC,
    BatchLayout,
    RealFaces,
    RealOrder,
    SyntheticFaces,
    list_images,
    load_face,
    noise_shapes,
    real_loader,
    reconstruction_noise,
    split_images,
)
from vidinvert.train.export import write_encoder_state_dict
from vidinvert.train.logs import RunLogger
from vidinvert.train.losses import feature_loss, l2_loss
from vidinvert.train.syncbn import convert_sync_batchnorm

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
ENCODER_FILE = "encoder.pth"
TERMS = ("l2", "lpips", "identity", "parsing", "feature")
# noise streams (the "kind" of reconstruction_noise)
KIND_REAL_OWN, KIND_RANDOM_SYNTHETIC, KIND_RANDOM_REAL, KIND_VAL_REAL = 0, 1, 2, 3

ProgressFn = Callable[[int, int, dict[str, float]], None]


def fade_scale(iteration: int, fade_in: int) -> float:
    """F's blend factor at 0-based ``iteration``: min(1, iteration / fade_in), 1 without fade-in."""
    return 1.0 if fade_in <= 0 else min(1.0, iteration / float(fade_in))


def run_is_empty(run_dir: Path) -> bool:
    return not run_dir.exists() or (run_dir.is_dir() and not any(run_dir.iterdir()))


def prepare_run_config(
    run_dir: Path, cfg: TrainConfig | None, *, resume: bool, overrides: tuple[str, ...] = ()
) -> TrainConfig:
    """The configuration a run uses; checks the run folder (nothing is written).

    Fresh: ``cfg`` is required and the folder must be absent or empty. Resume: the folder's saved
    ``config.yaml`` (plus ``overrides``) is used; a ``cfg`` given as well must equal it except for
    the keys that may change on resume (``schedule.iterations``, ``log.*``, ...).
    """
    run_dir = Path(run_dir)
    if not resume:
        if cfg is None:
            raise VidinvertError("give a CONFIG file to start a run (or --resume to continue one)")
        if not run_is_empty(run_dir):
            raise VidinvertError(
                f"run folder {run_dir} is not empty: pass --resume to continue that run, or choose another --run-dir"
            )
        if run_dir.exists() and not run_dir.is_dir():
            raise VidinvertError(f"run folder {run_dir} is a file")
        cfg = apply_overrides(cfg, overrides)
        validate(cfg)
        return cfg
    saved_path = run_dir / CONFIG_FILE
    if not saved_path.is_file():
        raise VidinvertError(f"--resume: {saved_path} not found: is {run_dir} a vidinvert training run?")
    saved = load_config(saved_path)
    new = apply_overrides(cfg if cfg is not None else saved, overrides)
    validate(new)
    diffs = resume_differences(saved, new)
    if diffs:
        raise VidinvertError(
            f"--resume: the configuration differs from the run's saved {saved_path} in {', '.join(diffs)}:"
            " only schedule.iterations/stop_at/checkpoint_every, log.*, data.workers, device and compile may change"
        )
    return new


class Trainer:
    """Trains the encoder of ``cfg`` into ``run_dir``.

    ``run()`` validates the weights files (before writing anything), then trains from iteration 0
    or, with ``resume=True``, from the latest checkpoint. Under ``torchrun`` each process builds a
    Trainer; the main process writes the folder. ``progress(iteration_done, total, losses)`` is
    called on the main process after every optimiser step. ``networks`` may be injected (tests).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        run_dir: str | Path,
        *,
        resume: bool = False,
        weights_dir: Path | None = None,
        progress: ProgressFn | None = None,
        networks: Networks | None = None,
        stop_after_steps: int | None = None,
    ) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.weights_dir = weights_dir
        self.progress = progress
        self._injected = networks
        self.stop_after_steps = stop_after_steps  # tests: raise KeyboardInterrupt after N steps
        self.info = D.context_from_env()

    # ------------------------------------------------------------------------------------------
    def _device(self) -> tuple[torch.device, torch.dtype]:
        compute = resolve_compute(self.cfg.device, self.cfg.dtype)
        if compute.fell_back and self.info.is_main:
            log.warning(f"training on the CPU: CUDA is not available although config device is "
                        f"{self.cfg.device!r} (this is slow; set device=cpu to silence this)")
        return D.device_for(self.info, compute.device), compute.dtype

    def run(self) -> dict[str, Any]:
        cfg, info = self.cfg, self.info
        # 1. checks that write nothing: run folder (main process), weights files (everyone)
        if info.is_main and not self.resume and not run_is_empty(self.run_dir):
            raise VidinvertError(
                f"run folder {self.run_dir} is not empty: pass --resume to continue that run, or choose another --run-dir"
            )
        if cfg.data.batch_real > 0 and not cfg.data.real_dir:
            raise VidinvertError("config key data.batch_real > 0 needs data.real_dir (a folder of aligned faces)")
        if cfg.data.real_dir:
            list_images(cfg.data.real_dir)  # exists and holds images
        self.layout = BatchLayout(cfg.data.batch_real, cfg.data.batch_synthetic, info.world_size, info.rank,
                                  cfg.optim.accumulate)
        files = self._injected.files if self._injected is not None else resolve_files(cfg, self.weights_dir)
        self.device, self.amp_dtype = self._device()
        self.info = D.init_process_group(info, self.device)
        try:
            return self._run(files)
        finally:
            D.shutdown()

    def _run(self, files: dict[str, Path | None]) -> dict[str, Any]:
        cfg, info, device = self.cfg, self.info, self.device
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        nets = self._injected if self._injected is not None else build_networks(cfg, files, device)
        self.nets = nets
        self.gen = nets.generator
        self.shapes = noise_shapes(self.gen)
        self.K = cfg.model.feature_index
        self._setup_data()

        encoder = nets.encoder.to(device).train()
        if info.distributed:
            group = torch.distributed.new_group() if device.type != "cuda" else None
            encoder = convert_sync_batchnorm(encoder, device, group)
        self.encoder = encoder
        fwd: torch.nn.Module = encoder
        if info.distributed:
            fwd = DDP(encoder, device_ids=[device.index] if device.type == "cuda" else None,
                      broadcast_buffers=False)
        self.ddp = fwd if info.distributed else None
        self.encoder_fwd = torch.compile(fwd) if cfg.compile else fwd
        self.optimizer = self._make_optimizer(encoder)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, cfg.optim.lr_step, cfg.optim.lr_gamma)

        start = 0
        latest = ckpt.latest_checkpoint(self.run_dir) if self.resume else None
        if latest is not None:
            state = ckpt.load_checkpoint(latest)
            encoder.load_state_dict(state["encoder"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            ckpt.set_rng_state(state["rng"])
            start = int(state["iteration"])
            log.info("resuming %s from iteration %d (%s)", self.run_dir, start, latest.name)
        elif self.resume:
            log.warning(f"no checkpoint in {self.run_dir} yet: starting it again from iteration 0")

        if info.is_main:
            self._write_run_files(files, fresh=not self.resume)
        self.logger = RunLogger(self.run_dir, enabled=info.is_main, tensorboard=cfg.log.tensorboard,
                                resume_from=start if self.resume else None)
        try:
            return self._train(start)
        finally:
            self.logger.close()

    # ------------------------------------------------------------------------------------------
    def _make_optimizer(self, encoder: torch.nn.Module) -> torch.optim.Optimizer:
        o = self.cfg.optim
        params = [p for p in encoder.parameters() if p.requires_grad]
        if o.name == "adamw":
            return torch.optim.AdamW(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
        try:
            from pytorch_optimizer import Ranger
        except ImportError:
            raise VidinvertError(
                "optim.name=ranger needs the pytorch-optimizer package: pip install 'vidinvert[train]' (or set optim.name=adamw)"
            ) from None
        return Ranger(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)

    def _setup_data(self) -> None:
        cfg = self.cfg
        self.synthetic = SyntheticFaces(self.gen, cfg.seed, pool=cfg.data.synthetic_pool)
        self.val_synthetic = SyntheticFaces(self.gen, cfg.seed, stream=STREAM_VAL_SYNTHETIC)
        self.train_files: list[Path] = []
        self.val_files: list[Path] = []
        if cfg.data.real_dir:
            train, val = split_images(list_images(cfg.data.real_dir), cfg.data.val_fraction, cfg.seed)
            if cfg.data.real_limit > 0:
                train = train[: cfg.data.real_limit]
            self.train_files, self.val_files = train, val
        self.order = RealOrder(len(self.train_files), cfg.seed) if cfg.data.batch_real > 0 else None

    def _write_run_files(self, files: dict[str, Path | None], fresh: bool) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / CONFIG_FILE).write_text(dump_config(self.cfg), encoding="utf-8")
        if fresh:
            rec = run_record(command="train", config=to_dict(self.cfg), weights={})
            rec["weights"] = {k: (str(v) if v else None) for k, v in files.items()}
            rec["world_size"] = self.info.world_size
            rec["real_images"] = {"train": len(self.train_files), "validation": len(self.val_files)}
            write_json(self.run_dir / "run.json", rec)

    # ------------------------------------------------------------------------------------------
    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype != torch.float32)

    def _noise(self, indices: list[int], kind: int) -> list[Tensor]:
        return reconstruction_noise(self.shapes, self.cfg.seed, indices, kind, self.device)

    @staticmethod
    def _cat_noise(a: list[Tensor] | None, b: list[Tensor] | None) -> list[Tensor]:
        if a is None:
            return b
        if b is None:
            return a
        return [torch.cat([x, y]) for x, y in zip(a, b)]

    def _losses(self, encoder, x: Tensor, ns: int, own: list[Tensor], rand: list[Tensor], s: float):
        """Per-term SUMS over the samples (with grad) and the reconstructions (x1, x2)."""
        g, K, cfg = self.gen, self.K, self.cfg

        with self._autocast():
            w, f = encoder(prepare_encoder_input(x))
            if cfg.loss.recipe == "paper":
                x1 = g(w, noise=own)
                x2 = g(w, f, feature_index=K, feature_scale=s, noise=own)
                gk_noise = own
            else:
                x1 = g(w, f, feature_index=K, feature_scale=s, noise=rand)
                x2 = g(w, f, feature_index=K, feature_scale=s, noise=own)
                gk_noise = rand
            terms: dict[str, Tensor] = {}
            lo = cfg.loss
            if lo.l2 > 0 and ns > 0:
                terms["l2"] = l2_loss(x1[:ns], x[:ns]).sum()
            for name, net in (("lpips", self.nets.lpips), ("identity", self.nets.identity),
                              ("parsing", self.nets.parsing)):
                if net is None or getattr(lo, name) <= 0:
                    continue
                with torch.no_grad():
                    target = net.features(x)
                terms[name] = (net.distance(net.features(x1), target) + net.distance(net.features(x2), target)).sum()
            if lo.feature > 0:
                with torch.no_grad():
                    gk = g.forward_until(w.detach(), index=K, noise=gk_noise)
                terms["feature"] = feature_loss(f, gk).sum()
        return terms, x1, x2

    def _weighted(self, terms: dict[str, Tensor], n_all: int, n_syn: int) -> Tensor:
        total = None
        for name, value in terms.items():
            count = n_syn if name == "l2" else n_all
            part = getattr(self.cfg.loss, name) * value / count
            total = part if total is None else total + part
        return total

    def _micro_batch(self, step: int, micro: int, real: Tensor | None):
        syn_idx = self.layout.synthetic_indices(step, micro)
        real_pos = self.layout.real_positions(step, micro)
        imgs, own_syn = [], None
        if syn_idx:
            syn = self.synthetic.sample(syn_idx, self.device, self._autocast())
            imgs.append(syn.images)
            own_syn = syn.noise
        own_real = rand_real = None
        if real_pos:
            imgs.append(to_device(real, self.device))
            own_real = self._noise(real_pos, KIND_REAL_OWN)
        own = self._cat_noise(own_syn, own_real)
        rand = own
        if self.cfg.loss.recipe == "official":
            rand_syn = self._noise(syn_idx, KIND_RANDOM_SYNTHETIC) if syn_idx else None
            rand_real = self._noise(real_pos, KIND_RANDOM_REAL) if real_pos else None
            rand = self._cat_noise(rand_syn, rand_real)
        return torch.cat(imgs), len(syn_idx), own, rand

    # ------------------------------------------------------------------------------------------
    def _train(self, start: int) -> dict[str, Any]:
        cfg, info = self.cfg, self.info
        end = cfg.schedule.iterations
        if cfg.schedule.stop_at > 0:
            end = min(end, cfg.schedule.stop_at)
        if start >= end:
            log.warning(f"{self.run_dir} is already at iteration {start} (of {end}): nothing to train;"
                        " raise schedule.iterations with --set to continue")
            return {"run_dir": str(self.run_dir), "iteration": start, "finished": start >= cfg.schedule.iterations,
                    "losses": {}, "seconds": 0.0, "iterations_per_s": float("nan"),
                    "checkpoint": str(ckpt.latest_checkpoint(self.run_dir)), "world_size": info.world_size}
        n_all = cfg.data.batch_real + cfg.data.batch_synthetic
        self._open_real(start, end)
        counts = torch.tensor([cfg.data.batch_synthetic if t == "l2" else n_all for t in TERMS], dtype=torch.float64)
        # samples per process and micro-step: halved (accumulating more micro-steps, the global batch
        # kept) when memory runs out in one process; under torchrun the run stops (vidinvert.memory)
        per_micro = BatchSize(self.layout.local_real + self.layout.local_synthetic, "training step",
                              device=self.device, allowed=self._smaller_micro_batch,
                              advice=None if not info.distributed else
                              "start the run with a larger optim.accumulate (the same global batch in smaller "
                              "micro-steps; the processes of torchrun cannot retry on their own)")
        self.per_micro = per_micro
        t0 = time.perf_counter()
        last: dict[str, float] = {}
        steps_done = 0
        for step in range(start, end):
            s = fade_scale(step, cfg.schedule.fade_in)
            lr = self.optimizer.param_groups[0]["lr"]
            keep_images = info.is_main and (step + 1) % cfg.log.image_every == 0
            sums = self._accumulated_step(step, s, keep_images, end)
            if cfg.optim.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.encoder.parameters(), cfg.optim.grad_clip)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.scheduler.step()
            if info.distributed:  # NCCL reduces CUDA tensors only; gloo takes either
                sums = D.all_reduce_sum(sums.to(self.device)).cpu()
            means = {t: float(sums[i] / counts[i]) for i, t in enumerate(TERMS) if self._active(t)}
            total = sum(getattr(cfg.loss, t) * v for t, v in means.items())
            if not math.isfinite(total):
                raise VidinvertError(f"the training loss became {total} at iteration {step + 1}: lower optim.lr")
            last = {"loss": total, **means}
            done = step + 1
            steps_done += 1
            elapsed = time.perf_counter() - t0
            if done % cfg.log.every == 0 or done == end:
                self.logger.scalars("train", done, {**last, "lr": lr, "fade": s, "elapsed_s": elapsed})
            if done % cfg.schedule.checkpoint_every == 0 or done == end:
                self._save(done)
            if info.is_main and (done % cfg.log.val_every == 0 or done == cfg.schedule.iterations):
                self.validate(done)
            if self.progress is not None and info.is_main:
                self.progress(done, cfg.schedule.iterations, last)
            if self.stop_after_steps is not None and steps_done >= self.stop_after_steps and done < end:
                raise KeyboardInterrupt  # simulated kill (tests)
        seconds = time.perf_counter() - t0
        finished = end >= cfg.schedule.iterations
        if info.is_main and finished:
            self._export_final()
        return {
            "run_dir": str(self.run_dir),
            "iteration": end,
            "finished": finished,
            "losses": last,
            "seconds": seconds,
            "iterations_per_s": steps_done / seconds if seconds > 0 else float("nan"),
            "checkpoint": str(ckpt.checkpoint_path(self.run_dir, end)),
            "world_size": info.world_size,
        }

    def _open_real(self, start: int, end: int) -> None:
        """The real images' loader from step ``start`` for the current layout (None without real images)."""
        self.real_iter = None
        if self.layout.local_real > 0 and start < end:
            loader = real_loader(RealFaces(self.train_files, self.gen.size), self.layout, self.order, start, end,
                                 self.cfg.data.workers, pin=self.device.type == "cuda")
            self.real_iter = iter(loader)

    def _accumulated_step(self, step: int, s: float, keep_images: bool, end: int) -> Tensor:
        """One optimiser step's gradients, accumulated over its micro-steps -> per-term loss sums
        (float64 ``[len(TERMS)]``). Out of memory: the step's gradients and the encoder's
        BatchNorm statistics are put back, the micro-steps halved and the step run again."""
        while True:
            buffers = [b.detach().clone() for b in self.encoder.buffers()]
            ok, sums = self.per_micro.attempt(self._micro_steps, step, s, keep_images, buffers,
                                              rows=self.per_micro.limit)
            if ok:
                self.per_micro.announce()
                return sums
            self._relayout(step, end)

    def _micro_steps(self, step: int, s: float, keep_images: bool, buffers: list[Tensor]) -> Tensor:
        info, A = self.info, self.layout.accumulate
        n_all, n_syn = self.cfg.data.batch_real + self.cfg.data.batch_synthetic, self.cfg.data.batch_synthetic
        sums = torch.zeros(len(TERMS), dtype=torch.float64)
        try:
            for micro in range(A):
                real = self._next_real(self.real_iter) if self.real_iter is not None else None
                x, ns, own, rand = self._micro_batch(step, micro, real)
                sync = contextlib.nullcontext()
                if self.ddp is not None and micro < A - 1:
                    sync = self.ddp.no_sync()
                with sync:
                    terms, x1, x2 = self._losses(self.encoder_fwd, x, ns, own, rand, s)
                    loss = self._weighted(terms, n_all, n_syn)
                    (loss * info.world_size).backward()
                for i, t in enumerate(TERMS):
                    if t in terms:
                        sums[i] += float(terms[t].detach())
                if keep_images and micro == A - 1:
                    self.logger.grid("train", step + 1, [x, x1, x2])
        except BaseException:  # the step is redone or the run stops: nothing of it is kept
            self.optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                for b, saved in zip(self.encoder.buffers(), buffers):
                    b.copy_(saved)
            raise
        return sums

    def _smaller_micro_batch(self, rows: int) -> int | None:
        """The largest micro-step of at most ``rows`` samples that the global batch divides into
        (one process only; None under torchrun or when there is none)."""
        d = self.cfg.data
        if self.info.distributed:
            return None
        for acc in range(self.layout.accumulate + 1, d.batch_real + d.batch_synthetic + 1):
            total = d.batch_real + d.batch_synthetic
            if d.batch_real % acc == 0 and d.batch_synthetic % acc == 0 and total // acc <= rows:
                return total // acc
        return None

    def _relayout(self, step: int, end: int) -> None:
        """Accumulate more micro-steps of ``per_micro.limit`` samples each from ``step`` on."""
        d = self.cfg.data
        acc = (d.batch_real + d.batch_synthetic) // self.per_micro.limit
        log.warning(f"training: optim.accumulate {self.layout.accumulate} -> {acc} from iteration {step + 1} "
                    "(the same global batch in smaller micro-steps)")
        self.layout = BatchLayout(d.batch_real, d.batch_synthetic, self.info.world_size, self.info.rank, acc)
        self._open_real(step, end)

    def _active(self, term: str) -> bool:
        lo = self.cfg.loss
        if getattr(lo, term) <= 0:
            return False
        if term == "l2":
            return self.cfg.data.batch_synthetic > 0
        return term == "feature" or getattr(self.nets, term) is not None

    def _next_real(self, it) -> Tensor:
        try:
            return next(it)
        except VidinvertError:
            raise
        except StopIteration:  # pragma: no cover - the sampler covers exactly [start, end)
            raise VidinvertError("internal: the real-image loader ran out") from None
        except Exception as exc:
            last = [ln for ln in str(exc).splitlines() if ln.strip()]
            raise VidinvertError(f"reading training images failed: {last[-1] if last else exc}") from None

    def _save(self, iteration: int) -> None:
        if not self.info.is_main:
            return
        payload = {
            "encoder": self.encoder.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": ckpt.rng_state(),
            "config": to_dict(self.cfg),
            "world_size": self.info.world_size,
        }
        ckpt.save_checkpoint(self.run_dir, iteration, payload, keep=self.cfg.schedule.keep_checkpoints)

    def _export_final(self) -> None:
        write_encoder_state_dict(self.encoder.state_dict(), self.run_dir / ENCODER_FILE, overwrite=True)

    # ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, iteration: int) -> dict[str, float]:
        """Losses and a reconstruction grid on the held-out real images and fixed synthetic samples."""
        cfg = self.cfg
        n = cfg.log.val_images
        if n <= 0:
            return {}
        enc = self.encoder
        was_training = enc.training
        enc.eval()
        try:
            syn = self.val_synthetic.sample(list(range(n)), self.device, self._autocast())
            imgs, own = [syn.images], syn.noise
            real_files = self.val_files[:n]
            if real_files:
                imgs.append(torch.stack([load_face(p, self.gen.size) for p in real_files]).to(self.device))
                own = self._cat_noise(own, self._noise(list(range(len(real_files))), KIND_VAL_REAL))
            x = torch.cat(imgs)
            # validation reconstructs with fixed noise (synthetic: its own) for both recipes' x1 and x2
            terms, x1, x2 = self._losses(enc, x, n, own, own, fade_scale(iteration - 1, cfg.schedule.fade_in))
        finally:
            enc.train(was_training)
        n_all = len(x)
        means = {t: float(v) / (n if t == "l2" else n_all) for t, v in terms.items()}
        means["loss"] = sum(getattr(cfg.loss, t) * v for t, v in means.items())
        self.logger.scalars("val", iteration, means)
        self.logger.grid("val", iteration, [x, x1, x2])
        return means


def train(
    cfg: TrainConfig | None,
    run_dir: str | Path,
    *,
    resume: bool = False,
    overrides: tuple[str, ...] = (),
    weights_dir: Path | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Check the run folder and configuration, then train (the ``vidinvert train`` command)."""
    cfg = prepare_run_config(Path(run_dir), cfg, resume=resume, overrides=overrides)
    return Trainer(cfg, run_dir, resume=resume, weights_dir=weights_dir, progress=progress).run()


__all__ = ["CONFIG_FILE", "ENCODER_FILE", "TERMS", "Trainer", "fade_scale", "prepare_run_config", "train"]
