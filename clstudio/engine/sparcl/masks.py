"""TDM, task-aware dynamic masking (sparcl.md §2-§3): one binary mask per sparse layer, a fixed sparsity
budget, shrunk by continual weight importance and regrown at random on a schedule.

Which layers are sparse, on any backbone: every dense convolution (``groups == 1``) except the first one
(the stem) and 1×1 projection shortcuts; depthwise convs, BatchNorm and the classifier head stay dense and
are never masked. On the CIFAR ResNet-18 this is exactly the 16 3×3 convs inside residual blocks (the
official profiles). On EfficientNet-Lite0 it is the 1×1 expand / project convs and the 1×1 head conv: 94.5 %
of the conv weights and 88 % of the MACs, where the paper's CIFAR rule ("kernels larger than 1×1") would
have masked only the 16 depthwise convs (5 % of the weights, the worst ones to prune: 9 taps per channel).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

SHORTCUT_NAMES = ("downsample", "shortcut")  # torchvision's and the CIFAR ResNet's projection branches


def sparse_layers(model: nn.Module) -> dict[str, nn.Conv2d]:
    """name → conv for the layers TDM masks (the rule in the module docstring)."""
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    return {n: m for n, m in convs[1:] if m.groups == 1 and not _projection_shortcut(n, m)}


def _projection_shortcut(name: str, conv: nn.Conv2d) -> bool:
    return max(conv.kernel_size) == 1 and any(part in SHORTCUT_NAMES for part in name.split("."))


def coverage(model: nn.Module, layers: dict[str, nn.Conv2d], macs: dict[str, int]) -> dict[str, float]:
    """How much of the network the masks reach: the masked layers' share of every weight of the backbone
    (BatchNorm included) and of its forward MACs (``macs``: flops.layer_macs of the backbone)."""
    weights = sum(p.numel() for p in model.parameters())
    masked = sum(m.weight.numel() for m in layers.values())
    total_macs = sum(macs.values())
    return {
        "masked_weight_share": masked / weights if weights else 0.0,
        "masked_mac_share": sum(macs.get(n, 0) for n in layers) / total_macs if total_macs else 0.0,
    }


def importance(weight: torch.Tensor, grad: torch.Tensor | None, lmd: float) -> torch.Tensor:
    """Continual weight importance as the official code computes it: |w| + λ·|g| (g: the retained gradient)."""
    imp = weight.detach().abs().float()
    if grad is not None and lmd:
        imp = imp + lmd * grad.detach().abs().float()
    return imp


def shrink(mask: torch.Tensor, imp: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Keep entries with importance strictly above the sparsity-percentile (linear interpolation, as
    np.percentile); ties at the threshold are pruned, so the result has sparsity ≥ the target."""
    q = percentile(imp, sparsity)
    return mask & (imp > q).view_as(mask)


def percentile(values: torch.Tensor, fraction: float) -> torch.Tensor:
    """np.percentile(values, 100·fraction), linear interpolation (torch.quantile refuses over 16M entries;
    there, two order statistics from kthvalue give the same value)."""
    flat = values.flatten()
    if flat.numel() <= 16_000_000:
        return torch.quantile(flat.float(), fraction, interpolation="linear").to(values.dtype)
    pos = fraction * (flat.numel() - 1)
    lo = int(pos)
    v_lo = flat.kthvalue(lo + 1).values
    if pos == lo:
        return v_lo
    v_hi = flat.kthvalue(lo + 2).values
    return v_lo + (v_hi - v_lo) * (pos - lo)


def expand(mask: torch.Tensor, sparsity: float, generator: torch.Generator) -> torch.Tensor:
    """Turn int(#zeros − s·n) zero positions back on, chosen uniformly at random (zero-initialised)."""
    n = mask.numel()
    zeros = torch.nonzero(~mask.flatten()).flatten()
    k = int(len(zeros) - sparsity * n)
    if k <= 0:
        return mask
    pick = zeros[torch.randperm(len(zeros), generator=generator)[:k]]
    grown = mask.clone().flatten()
    grown[pick] = True
    return grown.view_as(mask)


@dataclass(frozen=True)
class TdmStep:
    shrink_to: float
    grow_to: float | None  # None: no growth (the mask is final for this task)


def tdm_schedule(epochs: int, sparsity: float, every: float, stop: float, step: float) -> dict[int, TdmStep]:
    """Mask updates of one task, as epoch → (shrink-to, grow-to): the released script's bounds
    (--lower-bound s-(s+p)-s, --upper-bound (s-p)-s-s, decay epochs 5-45, every 5 of 50), with the
    epochs written as fractions of the task so any epoch count works (0.1 and 0.9 give 5 and 45 of 50)."""
    period = max(1, round(every * epochs))
    decay0, decay1 = max(1, round(every * epochs)), max(1, round(stop * epochs))
    plan: dict[int, TdmStep] = {}
    for e in range(0, epochs, period):
        if e < decay0:
            plan[e] = TdmStep(sparsity, max(0.0, sparsity - step))  # inter-task expansion
        elif e < decay1:
            plan[e] = TdmStep(min(1.0, sparsity + step), sparsity)  # shrink by CWI, regrow at random
        else:
            plan[e] = TdmStep(sparsity, None)
    return plan


class MaskSet:
    """The masks of one network's sparse layers, keyed by module name."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.layers = sparse_layers(model)
        self.masks = {n: torch.ones_like(m.weight, dtype=torch.bool) for n, m in self.layers.items()}
        # The masks as 0/1 in the weights' dtype and device, for the per-step product on the gradients: a
        # same-dtype product skips the bool → float conversion every step (rebuilt when a mask changes).
        self._keep: dict[str, torch.Tensor] = {}

    def prune_to(self, sparsity: float) -> None:
        """One-shot per-layer magnitude prune (the code's --sp-prune-before-retrain)."""
        for n, m in self.layers.items():
            self.masks[n] = shrink(self.masks[n], importance(m.weight, None, 0.0), sparsity)
        self.apply_to_weights()

    def update(self, step: TdmStep, grads: dict[str, torch.Tensor], lmd: float, generator: torch.Generator) -> None:
        for n, m in self.layers.items():
            imp = importance(m.weight, grads.get(n), lmd)
            mask = shrink(self.masks[n], imp, step.shrink_to)
            if step.grow_to is not None and step.grow_to < step.shrink_to:
                mask = expand(mask, step.grow_to, generator)
            self.masks[n] = mask
        self.apply_to_weights()

    @torch.no_grad()
    def apply_to_weights(self) -> None:
        self._keep.clear()  # every caller has just changed the masks
        for n, m in self.layers.items():
            m.weight.mul_(self._keep_of(n, m.weight))

    @torch.no_grad()
    def apply_to_grads(self) -> None:
        for n, m in self.layers.items():
            if m.weight.grad is not None:
                m.weight.grad.mul_(self._keep_of(n, m.weight.grad))

    def _keep_of(self, name: str, like: torch.Tensor) -> torch.Tensor:
        keep = self._keep.get(name)
        if keep is None or keep.device != like.device or keep.dtype != like.dtype:
            keep = self._keep[name] = self.masks[name].to(like.device, like.dtype)
        return keep

    def sparsity(self) -> dict[str, float]:
        """Fraction of masked-out entries per sparse layer: the layer's sparsity budget, what FLOPs are
        counted with and the GUI heatmap shows. (Counting zero weights instead would also count weights
        just regrown at 0 that have not been updated yet.)"""
        return {n: 1.0 - float(v.sum()) / v.numel() for n, v in self.masks.items()}

    def state(self) -> dict[str, torch.Tensor]:
        return {f"mask::{n}": v.to("cpu", torch.uint8) for n, v in self.masks.items()}

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """The masks a project saved, on the layers it saved them for: a project trained under an older layer
        rule keeps its own layers (its weights outside them were trained dense)."""
        saved = [k.removeprefix("mask::") for k in tensors if k.startswith("mask::")]
        if set(saved) != set(self.layers):
            modules = dict(self.model.named_modules())
            self.layers = {n: modules[n] for n in saved if isinstance(modules.get(n), nn.Conv2d)}
            self.masks = {
                n: self.masks.get(n, torch.ones_like(m.weight, dtype=torch.bool)) for n, m in self.layers.items()
            }
        for n, m in self.layers.items():
            self.masks[n] = tensors[f"mask::{n}"].to(m.weight.device).bool()
        self._keep.clear()


def conv_sparsity(model: nn.Module) -> float:
    """Zeros over all conv weights (what the official `test_sparsity` prints)."""
    zeros = total = 0
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            zeros += int((m.weight == 0).sum())
            total += m.weight.numel()
    return zeros / total if total else 0.0
