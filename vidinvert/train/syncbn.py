"""Synchronised BatchNorm for multi-process training (the process group: :mod:`vidinvert.distributed`).

Launch with ``torchrun --nproc_per_node N -m vidinvert train CONFIG ...`` (multi-node: the usual
``--nnodes/--node_rank/--rdzv_endpoint``). The encoder's BatchNorm layers train, so their
batch statistics must cover the GLOBAL batch: on CUDA :class:`torch.nn.SyncBatchNorm`; on the CPU (where that class refuses to run)
:class:`GroupBatchNorm2d`, which all-reduces the per-channel sums in a differentiable way.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn


class _AllReduceSum(torch.autograd.Function):
    """Differentiable sum over processes: the gradient of every input is the summed gradient."""

    @staticmethod
    def forward(ctx, x: Tensor, group: Any) -> Tensor:
        ctx.group = group
        out = x.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM, group=group)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        grad = grad.clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        return grad, None


def differentiable_all_reduce(x: Tensor, group: Any = None) -> Tensor:
    return _AllReduceSum.apply(x, group)


class GroupBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover the batches of every process in ``group``.

    Two-pass statistics (mean, then the mean squared deviation) all-reduced with the
    differentiable :func:`differentiable_all_reduce`, so gradients flow through
    the global mean and variance as in a single process with the concatenated batch. Running
    statistics use the unbiased global variance, as ``nn.BatchNorm2d``. Without an initialised
    process group (or in eval mode) it is exactly ``nn.BatchNorm2d``.
    """

    process_group: Any = None

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size(self.process_group) > 1):
            return super().forward(x)
        c = x.shape[1]
        count = torch.tensor([x.numel() / c], dtype=torch.float64, device=x.device)
        dist.all_reduce(count, group=self.process_group)
        n = float(count.item())
        xf = x.float()
        mean = differentiable_all_reduce(xf.sum(dim=(0, 2, 3)), self.process_group) / n
        centred = xf - mean.view(1, c, 1, 1)
        var = differentiable_all_reduce(centred.pow(2).sum(dim=(0, 2, 3)), self.process_group) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var.detach() * (n / max(n - 1.0, 1.0))
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), momentum)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        y = centred * torch.rsqrt(var + self.eps).view(1, c, 1, 1)
        if self.affine:
            y = y * self.weight.view(1, c, 1, 1) + self.bias.view(1, c, 1, 1)
        return y.to(x.dtype)


def convert_sync_batchnorm(module: nn.Module, device: torch.device, process_group: Any = None) -> nn.Module:
    """Replace every BatchNorm2d by its synchronised form (SyncBatchNorm on CUDA, else GroupBatchNorm2d)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module, process_group)
    return _convert_group_bn(module, process_group)


def _convert_group_bn(module: nn.Module, group: Any) -> nn.Module:
    out = module
    if isinstance(module, nn.BatchNorm2d) and not isinstance(module, GroupBatchNorm2d):
        out = GroupBatchNorm2d(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        out.process_group = group
        with torch.no_grad():
            if module.affine:
                out.weight.copy_(module.weight)
                out.bias.copy_(module.bias)
                out.weight.requires_grad_(module.weight.requires_grad)
                out.bias.requires_grad_(module.bias.requires_grad)
            if module.track_running_stats:
                out.running_mean.copy_(module.running_mean)
                out.running_var.copy_(module.running_var)
                out.num_batches_tracked.copy_(module.num_batches_tracked)
        out.train(module.training)
        ref = next(iter(module.state_dict().values()), None)
        if ref is not None:
            out = out.to(ref.device)
    for name, child in module.named_children():
        setattr(out, name, _convert_group_bn(child, group))
    return out


__all__ = ["GroupBatchNorm2d", "convert_sync_batchnorm", "differentiable_all_reduce"]
