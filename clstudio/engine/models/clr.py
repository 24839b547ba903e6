"""Channel-wise Lightweight Reprogramming (Ge et al., ICCV 2023), spec: shared/specs/clr.md §1.

After a frozen conv producing C channels, a depthwise 3×3 conv (groups=C, no bias, stride 1, padding 1)
initialised to the identity (dirac) reprograms each channel on its own: y = CLR(conv(x)). The order in the
network stays conv → CLR → BN → ReLU, because the wrapper replaces the conv in place.
"""

from __future__ import annotations

import torch
from torch import nn


class CLRLayer(nn.Module):
    """The reprogramming layer: a depthwise 3×3 conv, identity at init."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=1, padding=1, groups=channels, bias=False)
        self.reset_identity()

    def reset_identity(self) -> None:
        # Only the centre tap is 1, so CLR(F) == F exactly, borders included.
        nn.init.dirac_(self.conv.weight, groups=self.conv.groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class CLRConv(nn.Module):
    """A frozen conv followed by its CLR layer (the repo's ReGhos_Block)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.frozen = conv
        for p in self.frozen.parameters():
            p.requires_grad_(False)
        self.clr = CLRLayer(conv.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.clr(self.frozen(x))


def wraps(conv: nn.Conv2d, full: bool) -> bool:
    """CLR (the paper's default, 'Ghost_reduced_v1') wraps convs with kernel > 1 only; CLR-Full wraps all."""
    return full or tuple(conv.kernel_size) != (1, 1)


def apply_clr(model: nn.Module, full: bool = False) -> list[str]:
    """Replace, in place and recursively, every wrapped nn.Conv2d by a CLRConv. Returns the wrapped names."""
    wrapped: list[str] = []

    def visit(module: nn.Module, prefix: str) -> None:
        for name, child in list(module.named_children()):
            path = f"{prefix}{name}"
            if isinstance(child, nn.Conv2d) and wraps(child, full):
                setattr(module, name, CLRConv(child))
                wrapped.append(path)
            elif not isinstance(child, CLRConv):
                visit(child, path + ".")

    visit(model, "")
    return wrapped


def clr_layers(model: nn.Module) -> dict[str, CLRLayer]:
    return {name: m for name, m in model.named_modules() if isinstance(m, CLRLayer)}


def batchnorms(model: nn.Module) -> dict[str, nn.modules.batchnorm._BatchNorm]:
    return {name: m for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
