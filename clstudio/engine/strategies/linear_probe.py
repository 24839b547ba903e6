"""Linear probe baseline: frozen backbone with frozen BatchNorm, a new linear head per task."""

from __future__ import annotations

from torch import nn

from clstudio.engine.strategies.base import Strategy
from clstudio.engine.strategies.registry import register_strategy


@register_strategy
class LinearProbeStrategy(Strategy):
    name = "linear_probe"
    description = "Linear probe: frozen backbone, one linear head per task. Zero forgetting, least plastic."
    PRESETS = {"faithful": dict(epochs=60, patience=21, augment="none", break_ties_by_loss=False), "app": {}}

    def trainable_parameters(self) -> list[nn.Parameter]:
        assert self.head is not None
        return list(self.head.parameters())

    def set_train_mode(self) -> None:
        # BN stays in eval mode (the paper's 'Linear' baseline): the backbone is a fixed feature map.
        self.features.eval()
        assert self.head is not None
        self.head.train()
