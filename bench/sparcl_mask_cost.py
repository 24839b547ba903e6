"""What SparCL's own bookkeeping costs per call on a backbone's masked layers, apart from the network's forward and
backward: one TDM mask update (importance, percentile, random regrowth), one DGM refresh (a percentile of every
masked layer's gradient) and the mask products of every step (the weight mask on the gradients, the DGM mask
between refreshes; the weights need none: plain SGD leaves a weight with a zeroed gradient where it was). Random
gradients stand in for real ones; the shapes are real.

    python bench/sparcl_mask_cost.py                    # EfficientNet-Lite0, one thread
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from clstudio.engine.models.backbones import create_backbone
from clstudio.engine.sparcl.dgm import GradientMasks
from clstudio.engine.sparcl.masks import MaskSet, tdm_schedule
from clstudio.engine.strategies.sparcl import SparCLConfig, effective_gradient_sparsity


def seconds_per_call(fn: Callable[[], object], repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--sparsity", type=float, default=0.75)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    masks = MaskSet(create_backbone(args.backbone).model)
    masks.prune_to(args.sparsity)
    for m in masks.layers.values():
        m.weight.grad = torch.randn_like(m.weight)
    grads = {n: m.weight.grad.clone() for n, m in masks.layers.items()}
    rng = torch.Generator().manual_seed(0)
    cfg = SparCLConfig(sparsity=args.sparsity)
    dgm = GradientMasks(masks.layers, effective_gradient_sparsity(cfg), cfg.dgm_refresh)
    # A mid-task update of the app's 10-epoch schedule: shrink past the budget by importance, regrow at random.
    step = tdm_schedule(cfg.epochs, cfg.sparsity, cfg.update_every, cfg.mutation_stop, cfg.mutation)[cfg.epochs // 2]
    update = seconds_per_call(lambda: masks.update(step, grads, cfg.tdm_lambda, rng), 3)
    refresh = seconds_per_call(lambda: dgm.apply(0), 3)
    products = seconds_per_call(lambda: (masks.apply_to_grads(), dgm.apply(1)), 10)
    n = sum(m.weight.numel() for m in masks.layers.values())
    print(f"{args.backbone}: {n:,} masked weights, {args.threads} thread(s)")
    print(f"  TDM mask update  {update * 1000:8.1f} ms")
    print(f"  DGM refresh      {refresh * 1000:8.1f} ms")
    print(f"  mask products    {products * 1000:8.1f} ms per step")


if __name__ == "__main__":
    main()
