"""DGM, dynamic gradient masking (sparcl.md §5): every ``refresh`` iterations, keep per sparse layer only the
gradient entries at or above the ``gradient_sparsity`` percentile of |g| over all n entries (after the weight
mask), and remember that support; the iterations in between update only inside it. Dense layers get full
gradients. With gradient_sparsity ≤ the weight sparsity the threshold is 0 and DGM adds nothing.
"""

from __future__ import annotations

import torch
from torch import nn

from clstudio.engine.sparcl.masks import percentile


class GradientMasks:
    def __init__(self, layers: dict[str, nn.Conv2d], gradient_sparsity: float, refresh: int) -> None:
        self.layers = layers
        self.gs = gradient_sparsity
        self.refresh = max(1, refresh)
        self.masks: dict[str, torch.Tensor] = {}
        self.measured: dict[str, float] = {}  # fraction of frozen entries per layer in the current window

    @torch.no_grad()
    def apply(self, batch_index: int) -> None:
        """Call after backward and after the weight mask was applied to the gradients."""
        if batch_index % self.refresh == 0 or not self.masks:
            for n, m in self.layers.items():
                g = m.weight.grad
                if g is None:
                    continue
                mag = g.abs()
                tau = percentile(mag, self.gs)
                g.mul_(mag >= tau)
                self.masks[n] = (g != 0).to(g.dtype)  # 0/1 in the gradient's dtype: a cheap product per step
            self.measured = {n: 1.0 - float(v.sum()) / v.numel() for n, v in self.masks.items()}
        else:
            for n, m in self.layers.items():
                if m.weight.grad is not None and n in self.masks:
                    m.weight.grad.mul_(self.masks[n])
