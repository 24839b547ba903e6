"""Run by test_distributed.py under torchrun (2 processes, gloo): checks of the collectives that need real
ranks. Each prints one 'ok ...' line per rank or raises."""

from __future__ import annotations

import sys

import torch
from torch import nn

from clstudio.engine.distributed import RanksDiverged, TorchCollective
from clstudio.engine.sync_batchnorm import synchronise_batchnorm


def divergence(dist: TorchCollective) -> None:
    same = torch.arange(6.0)
    dist.check_same("a tensor equal on every rank", [same])
    try:
        dist.check_same("the weights", [same + dist.rank])
    except RanksDiverged as e:
        assert "rank(s) 1" in str(e), e
        print(f"ok divergence rank {dist.rank}: {e}")
        return
    raise AssertionError("a divergence went unnoticed")


def batchnorm(dist: TorchCollective) -> None:
    """A BatchNorm fed half a batch on each rank behaves as one fed the whole batch: output, running
    statistics and (summed over ranks) gradients."""
    torch.manual_seed(0)
    x = torch.randn(8, 3, 5, 5)
    w = torch.randn(3)
    reference = nn.BatchNorm2d(3)
    with torch.no_grad():
        reference.weight.copy_(w)
    xr = x.clone().requires_grad_(True)
    yr = reference(xr)
    (yr * torch.arange(yr.numel()).view_as(yr).sin()).sum().backward()

    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(w)
    synchronise_batchnorm(bn, dist)
    mine = slice(dist.rank * 4, dist.rank * 4 + 4)
    xs = x[mine].clone().requires_grad_(True)
    ys = bn(xs)
    (ys * torch.arange(yr.numel()).view_as(yr).sin()[mine]).sum().backward()
    dist.sum_grads(bn.parameters())
    assert torch.allclose(ys, yr[mine], atol=1e-5), "output"
    assert xs.grad is not None and xr.grad is not None
    assert torch.allclose(xs.grad, xr.grad[mine], atol=1e-5), "input gradient"
    assert torch.allclose(bn.weight.grad, reference.weight.grad, atol=1e-4), "weight gradient"
    assert torch.allclose(bn.bias.grad, reference.bias.grad, atol=1e-4), "bias gradient"
    assert torch.allclose(bn.running_mean, reference.running_mean, atol=1e-6), "running mean"
    assert torch.allclose(bn.running_var, reference.running_var, atol=1e-6), "running var"
    bn.eval()
    assert torch.allclose(bn(x), reference.eval()(x), atol=1e-5), "eval uses the running statistics"
    print(f"ok batchnorm rank {dist.rank}")


if __name__ == "__main__":
    dist = TorchCollective("cpu")
    try:
        {"divergence": divergence, "batchnorm": batchnorm}[sys.argv[1]](dist)
    finally:
        dist.close()
