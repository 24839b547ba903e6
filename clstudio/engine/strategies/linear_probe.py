"""Linear probe baseline: frozen backbone with frozen BatchNorm, a new linear head per task.

By default the head is a logistic regression fit by L-BFGS on features computed once (training/probe.py):
the strong baseline CLR must beat. 'faithful' trains it as the CLR paper's 'Linear' baseline (Adam epochs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from clstudio.engine.models.backbones import Backbone
from clstudio.engine.strategies.base import Strategy, TrainConfig, setting
from clstudio.engine.strategies.registry import register_strategy


@dataclass(frozen=True)
class LinearProbeConfig(TrainConfig):
    fit: str = setting(
        "lbfgs",
        "'lbfgs': features once, logistic regression to convergence, L2 chosen on validation (seconds; the "
        "epoch settings do not apply). 'adam': epochs of Adam on the head through the backbone (the paper).",
        choices=("lbfgs", "adam"),
    )


@register_strategy
class LinearProbeStrategy(Strategy):
    name = "linear_probe"
    description = "Linear probe: frozen backbone, one linear head per task. Zero forgetting, least plastic."
    Config = LinearProbeConfig
    PRESETS = {
        "faithful": dict(epochs=60, patience=21, augment="none", break_ties_by_loss=False, fit="adam"),
        "app": {},
    }

    def __init__(self, backbone: Backbone, config: Any, device: str = "cpu") -> None:
        super().__init__(backbone, config, device)
        self.training = "frozen_features" if config.fit == "lbfgs" else "per_task_head"

    def trainable_parameters(self) -> list[nn.Parameter]:
        assert self.head is not None
        return list(self.head.parameters())

    def set_train_mode(self) -> None:
        # BN stays in eval mode (the paper's 'Linear' baseline): the backbone is a fixed feature map.
        self.features.eval()
        assert self.head is not None
        self.head.train()
