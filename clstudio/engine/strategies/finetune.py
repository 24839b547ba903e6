"""Fine-tune baseline: one shared network trained on every task in turn, a head per task.

It forgets: learning task t moves the shared weights under the heads of tasks < t. It is here so a user
can see that forgetting next to CLR, not as a method to recommend.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from clstudio.engine.strategies.base import Strategy, TrainConfig, setting
from clstudio.engine.strategies.registry import register_strategy


@dataclass(frozen=True)
class FinetuneConfig(TrainConfig):
    lr: float = setting(1e-4, "Adam lr; 1e-4, because 1e-3 on every pretrained weight wrecks the features at once.")


@register_strategy
class FinetuneStrategy(Strategy):
    name = "finetune"
    description = "Fine-tune everything (baseline): shared weights drift, so earlier tasks are forgotten."
    Config = FinetuneConfig
    PRESETS = {"faithful": dict(epochs=60, patience=21, augment="none", break_ties_by_loss=False), "app": {}}

    def shared_feature_names(self) -> list[str]:
        return list(self.features.state_dict().keys())

    def trainable_parameters(self) -> list[nn.Parameter]:
        assert self.head is not None
        return list(self.features.parameters()) + list(self.head.parameters())
