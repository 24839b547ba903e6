"""Continual-learning strategies, one per file, behind a registry (import registers them)."""

from clstudio.engine.strategies import clr, sparcl, derpp, er, finetune, linear_probe  # noqa: F401, I001 - registration order is the GUI order
from clstudio.engine.strategies.registry import create_strategy, get_strategy_class, list_strategies

__all__ = ["create_strategy", "get_strategy_class", "list_strategies"]
