"""Training-FLOPs accounting (sparcl.md §9), counted per iteration so DDR's shorter epochs show.

For each conv / linear layer l with dense forward cost F_l (MACs per image):
    forward (1 − s_l)·F_l  +  input-gradient (1 − s_l)·F_l  +  weight-gradient (1 − g_l)·F_l
with s_l the layer's current weight sparsity and g_l its gradient sparsity (DGM; = s_l without DGM; 0 for
dense layers), times the images of the iteration, its batch plus the replay images it drew (on the first
task none; then one replay batch for ER, two for DER++). The dense reference is 3·ΣF_l per image over all
of a task's data plus the replay images the steps drew (the same buffer gives a dense run the same draws).
Mask updates, percentiles and statistics are not counted (as in the paper's accounting).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


def layer_macs(model: nn.Module, image_size: int) -> dict[str, int]:
    """Forward multiply-accumulates per image of every Conv2d / Linear, measured with hooks on one input."""
    macs: dict[str, int] = {}
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):

            def conv_hook(mod: nn.Conv2d, inp: tuple, out: torch.Tensor, name: str = name) -> None:
                k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
                macs[name] = int(out[0].numel()) * k

            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):

            def linear_hook(mod: nn.Linear, inp: tuple, out: torch.Tensor, name: str = name) -> None:
                macs[name] = mod.in_features * mod.out_features

            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            p = next(model.parameters())
            model(torch.zeros(1, 3, image_size, image_size, device=p.device, dtype=p.dtype))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return macs


def iteration_cost(
    macs: dict[str, int], weight_sparsity: dict[str, float], grad_sparsity: dict[str, float], images: int, streams: int
) -> float:
    """FLOPs of one training iteration (2 FLOPs per MAC)."""
    per_image = 0.0
    for name, f in macs.items():
        s = weight_sparsity.get(name, 0.0)
        g = grad_sparsity.get(name, s)
        per_image += (2 * (1 - s) + (1 - g)) * f
    return 2.0 * per_image * images * streams


def dense_cost(macs: dict[str, int], images: float, streams: int) -> float:
    return 2.0 * 3 * sum(macs.values()) * images * streams


@dataclass
class FlopsCounter:
    """Running totals of one task: counted FLOPs and the dense-equivalent FLOPs of the same schedule."""

    used: float = 0.0
    dense: float = 0.0
    iterations: int = 0
    dense_iterations: int = 0

    def add_iteration(self, cost: float) -> None:
        self.used += cost
        self.iterations += 1

    def add_dense_epoch(self, macs: dict[str, int], iterations: int, images_per_iteration: float) -> None:
        """The dense method's epoch: ``iterations`` steps of ``images_per_iteration`` forward/backward passes
        (its batch plus the replay images of a step)."""
        self.dense += iterations * dense_cost(macs, images_per_iteration, 1)
        self.dense_iterations += iterations

    @property
    def ratio(self) -> float:
        """How many times fewer FLOPs than the dense method (≥ 1 means savings)."""
        return self.dense / self.used if self.used else 0.0
