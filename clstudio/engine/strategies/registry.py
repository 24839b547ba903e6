"""register_strategy / create_strategy / list_strategies, in the manner of timm's register_model."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from clstudio.engine.errors import ProjectError

if TYPE_CHECKING:
    from clstudio.engine.models.backbones import Backbone
    from clstudio.engine.strategies.base import Strategy

_REGISTRY: dict[str, type[Strategy]] = {}


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    _REGISTRY[cls.name] = cls
    return cls


def list_strategies() -> dict[str, str]:
    """name → one-line description, in registration order."""
    return {name: cls.description for name, cls in _REGISTRY.items()}


def get_strategy_class(name: str) -> type[Strategy]:
    if name not in _REGISTRY:
        raise ProjectError(f"Unknown strategy '{name}'. Available: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def make_config(name: str, values: dict[str, Any] | None = None, preset: str | None = None) -> Any:
    """Build a strategy's config from a preset plus overrides, rejecting unknown keys by name."""
    cls = get_strategy_class(name)
    config = cls.preset(preset) if preset else cls.Config()
    values = dict(values or {})
    known = {f.name: f for f in dataclasses.fields(config)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ProjectError(f"Unknown setting(s) for {name}: {', '.join(unknown)}. Known: {', '.join(known)}")
    return dataclasses.replace(config, **values)


def create_strategy(name: str, backbone: Backbone, config: Any, device: str) -> Strategy:
    return get_strategy_class(name)(backbone, config, device)
