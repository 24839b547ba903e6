"""ER (experience replay), the dense baseline SparCL wraps: current-task CE with a masked head plus the
cross-entropy of a reservoir-buffer batch (sparcl.md §6; two forwards, weight er_weight)."""

from __future__ import annotations

from dataclasses import dataclass

from clstudio.engine.strategies.base import setting
from clstudio.engine.strategies.registry import register_strategy
from clstudio.engine.strategies.rehearsal import RehearsalConfig, RehearsalStrategy


@dataclass(frozen=True)
class ERConfig(RehearsalConfig):
    replay: str = setting(
        "er", "Rehearsal: 'er' (labels) or 'derpp' (DER++: logits + labels).", choices=("er", "derpp")
    )


@register_strategy
class ERStrategy(RehearsalStrategy):
    name = "er"
    description = "Experience replay (dense baseline): one shared model and head, a reservoir buffer."
    Config = ERConfig
