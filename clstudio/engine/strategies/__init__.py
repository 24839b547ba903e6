"""Continual-learning strategies, one per file, behind a registry (import registers them)."""

from clstudio.engine.strategies import clr, finetune, linear_probe  # noqa: F401 - registration
from clstudio.engine.strategies.registry import create_strategy, get_strategy_class, list_strategies

__all__ = ["create_strategy", "get_strategy_class", "list_strategies"]
