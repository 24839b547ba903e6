"""BatchNorm over the whole batch of a distributed step, on any device (torch's ``SyncBatchNorm`` runs on
GPUs only, and needs its modules converted, which per-task BatchNorm tensors would not survive).

Each rank holds 1/N of a step's images. Per-rank statistics would change the recipe (BatchNorm over 8
images instead of 32); here the per-channel sums are added across ranks in the forward pass and the two
gradient sums in the backward pass, so every rank normalises with the mean and variance of the whole batch
and gets the gradient one process would have computed. Outside training, or in one process, a module's own
``forward`` runs unchanged.
"""

from __future__ import annotations

import types
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from clstudio.engine.distributed import Collective


class _GlobalBatchNorm(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor | None,
        bias: torch.Tensor | None,
        bn: _BatchNorm,
        dist: Collective,
    ) -> torch.Tensor:
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float()
        local = torch.cat([xf.sum(dims), (xf * xf).sum(dims), xf.new_tensor([x.numel() / max(x.shape[1], 1)])])
        total = dist.sum_tensor(local)
        c = x.shape[1]
        n = float(total[-1])
        mean = total[:c] / max(n, 1.0)
        var = (total[c : 2 * c] / max(n, 1.0) - mean * mean).clamp(min=0.0)
        invstd = torch.rsqrt(var + bn.eps)
        if bn.track_running_stats and bn.running_mean is not None and bn.running_var is not None:
            with torch.no_grad():
                assert bn.num_batches_tracked is not None
                bn.num_batches_tracked.add_(1)
                m = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
                unbiased = var * (n / max(n - 1.0, 1.0))
                bn.running_mean.mul_(1 - m).add_(mean.to(bn.running_mean.dtype), alpha=m)
                bn.running_var.mul_(1 - m).add_(unbiased.to(bn.running_var.dtype), alpha=m)
        xhat = (xf - mean.view(shape)) * invstd.view(shape)
        y = xhat
        if weight is not None:
            y = y * weight.float().view(shape)
        if bias is not None:
            y = y + bias.float().view(shape)
        ctx.save_for_backward(xhat, invstd, weight)
        ctx.dist, ctx.n, ctx.dims, ctx.shape, ctx.has_bias = dist, n, dims, shape, bias is not None
        return y.to(x.dtype)

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[Any, ...]:
        xhat, invstd, weight = ctx.saved_tensors
        dims, shape, n = ctx.dims, ctx.shape, ctx.n
        dyf = dy.float()
        sum_dy, sum_dy_xhat = dyf.sum(dims), (dyf * xhat).sum(dims)
        # The parameters' gradients stay this rank's part (the ranks' gradient sum adds them up).
        grad_w = sum_dy_xhat.to(weight.dtype) if weight is not None else None
        grad_b = sum_dy.to(weight.dtype if weight is not None else dy.dtype) if ctx.has_bias else None
        c = len(sum_dy)
        total = ctx.dist.sum_tensor(torch.cat([sum_dy, sum_dy_xhat]))
        g_dy, g_dy_xhat = total[:c] / max(n, 1.0), total[c:] / max(n, 1.0)
        scale = invstd if weight is None else invstd * weight.float()
        dx = (dyf - g_dy.view(shape) - xhat * g_dy_xhat.view(shape)) * scale.view(shape)
        return dx.to(dy.dtype), grad_w, grad_b, None, None


def _forward(self: _BatchNorm, x: torch.Tensor) -> torch.Tensor:
    if not self.training:
        return type(self).forward(self, x)
    return _GlobalBatchNorm.apply(x, self.weight, self.bias, self, self._collective)


def synchronise_batchnorm(model: nn.Module, dist: Collective) -> int:
    """Make every BatchNorm of ``model`` use whole-batch statistics while training; returns how many.
    Does nothing in one process (then the modules' own, faster kernels run)."""
    if not dist.active:
        return 0
    count = 0
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            setattr(m, "_collective", dist)  # noqa: B010 (a plain attribute on a Module)
            m.forward = types.MethodType(_forward, m)  # type: ignore[method-assign]
            count += 1
    return count
