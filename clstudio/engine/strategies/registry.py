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
    check_types(cls.Config, values, name)
    return dataclasses.replace(config, **values)


def check_types(config_cls: type, values: dict[str, Any], name: str) -> None:
    """Each setting must have its default's type (an int is fine for a float) and one of its choices."""
    for f in dataclasses.fields(config_cls):
        if f.name not in values:
            continue
        v, kind = values[f.name], type(f.default)
        ok = isinstance(v, kind) and not (kind is not bool and isinstance(v, bool))
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            ok = True
        if not ok:
            raise ProjectError(f"Setting '{f.name}' of {name} must be {kind.__name__}, not {v!r}.")
        if kind in (int, float) and not (v >= 0 and v == v and v != float("inf")):
            raise ProjectError(f"Setting '{f.name}' of {name} must be a finite number ≥ 0, not {v!r}.")
        choices = f.metadata.get("choices") or ()
        if choices and v not in choices:
            raise ProjectError(f"Setting '{f.name}' of {name} must be one of {', '.join(choices)}, not {v!r}.")


def create_strategy(name: str, backbone: Backbone, config: Any, device: str) -> Strategy:
    return get_strategy_class(name)(backbone, config, device)
