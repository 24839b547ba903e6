"""DER++ (Buzzega et al. 2020), the dense method SparCL is measured against: ER plus an MSE to the logits
the buffer stored when it saw each sample (sparcl.md §6: α = 0.1, β = 0.5 at buffer 500)."""

from __future__ import annotations

from clstudio.engine.strategies.registry import register_strategy
from clstudio.engine.strategies.rehearsal import RehearsalConfig, RehearsalStrategy


@register_strategy
class DERppStrategy(RehearsalStrategy):
    name = "derpp"
    description = "DER++ (dense baseline): replay of stored logits and labels from a reservoir buffer."
    Config = RehearsalConfig
