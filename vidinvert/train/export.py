"""``vidinvert train export RUN_DIR out.pth``: a trained encoder in the official file format.

The official ``143_enc.pth`` / ``enc.pth.tar`` are bare encoder state dicts (keys ``conv.*``,
``block_1..4.*``, ``content_layer.*``, ``styles.*``); the ``latent_avg`` is not in them (it
comes from the generator checkpoint). :func:`export_run` writes exactly that from the latest
(or a given) training checkpoint, so ``vidinvert.weights.load_encoder`` and
``vidinvert invert/edit --encoder out.pth`` read it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from vidinvert.errors import VidinvertError
from vidinvert.fileio import atomic_path, check_output
from vidinvert.train import checkpoint as ckpt


def clean_state_dict(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """Contiguous CPU tensors, without wrapper prefixes (``module.``, ``_orig_mod.``)."""
    out = {}
    for k, v in sd.items():
        for prefix in ("module.", "_orig_mod."):
            while k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v.detach().to("cpu").contiguous().clone()
    return out


def write_encoder_state_dict(sd: dict[str, Tensor], out: str | Path, *, overwrite: bool = False) -> Path:
    """Save a bare encoder state dict atomically (temp file + rename)."""
    dest = check_output(Path(out), overwrite=overwrite)
    with atomic_path(dest, overwrite=overwrite) as tmp:
        torch.save(clean_state_dict(sd), tmp)
    return dest


def resolve_checkpoint(run_dir: str | Path, checkpoint: str | Path | None = None) -> Path:
    """A given checkpoint file, or the latest one of ``run_dir``."""
    if checkpoint is not None:
        return Path(checkpoint)
    run = Path(run_dir)
    if not run.is_dir():
        raise VidinvertError(f"run folder not found: {run}")
    latest = ckpt.latest_checkpoint(run)
    if latest is None:
        raise VidinvertError(f"no checkpoint in {run / ckpt.CHECKPOINT_DIR}: train first (vidinvert train CONFIG --run-dir {run})")
    return latest


def export_run(run_dir: str | Path, out: str | Path, *, checkpoint: str | Path | None = None,
               overwrite: bool = False) -> dict:
    """Write the encoder of the latest (or given) checkpoint as a bare state dict; returns a summary."""
    path = resolve_checkpoint(run_dir, checkpoint)
    state = ckpt.load_checkpoint(path)
    sd = state["encoder"]
    dest = write_encoder_state_dict(sd, out, overwrite=overwrite)
    n_params = sum(v.numel() for k, v in sd.items() if v.is_floating_point() and "running_" not in k)
    return {"output": str(dest), "checkpoint": str(path), "iteration": int(state["iteration"]),
            "entries": len(sd), "parameters": n_params}


__all__ = ["clean_state_dict", "export_run", "resolve_checkpoint", "write_encoder_state_dict"]
