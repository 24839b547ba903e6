"""How a project's model is put together: a new project's document from a strategy and a backbone, and,
for an existing one, the backbone (checked against the fingerprint it was trained with), the strategy and
every stored weight file loaded into it."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from clstudio.engine import project_file
from clstudio.engine.data.dataset import Preprocessing
from clstudio.engine.errors import ProjectError
from clstudio.engine.models.backbones import Backbone, create_backbone, fingerprint
from clstudio.engine.records import ProjectDoc
from clstudio.engine.routing import split_task_tensors
from clstudio.engine.store import ProjectStore
from clstudio.engine.strategies import create_strategy
from clstudio.engine.strategies.base import Strategy
from clstudio.engine.strategies.registry import get_strategy_class, make_config

DEFAULT_BACKBONE = "efficientnet_lite0"  # the one pretrained backbone that installs offline by name


def new_document(
    strategy: str,
    backbone: str | None,
    config: dict[str, Any] | None,
    preset: str | None,
    weights: str = "pretrained",
    weights_file: str | None = None,
) -> tuple[ProjectDoc, Backbone, tuple[dict[str, torch.Tensor], dict[str, str]] | None]:
    """(project.json, the backbone, the anchor file to store when nobody else can rebuild the backbone)."""
    cfg = make_config(strategy, config, preset)
    # A preset may name its backbone (SparCL's paper preset: CIFAR ResNet-18; CLR's faithful: ResNet-50).
    backbone = backbone or get_strategy_class(strategy).preset_backbone(preset) or DEFAULT_BACKBONE
    bb = create_backbone(backbone, weights, weights_file)
    prep = Preprocessing(cfg.image_size or bb.image_size, bb.mean, bb.std)
    doc = project_file.new_document(
        backbone={
            "name": bb.name,
            "weights": bb.weights,
            "source": bb.source,
            "weights_file": weights_file,
            "fingerprint": fingerprint(bb.model),
            "params": sum(p.numel() for p in bb.model.parameters()),
        },
        strategy={"name": strategy, "preset": preset, "config": dataclasses.asdict(cfg)},
        preprocessing={**prep.to_dict(), "mean": list(prep.mean), "std": list(prep.std)},
    )
    anchor = (bb.model.state_dict(), {"kind": "anchor", "backbone": bb.name}) if bb.stores_anchor else None
    return doc, bb, anchor


def build_strategy(store: ProjectStore, device: str, backbone: Backbone | None = None) -> Strategy:
    doc = store.doc
    spec = doc["backbone"]
    if backbone is None:
        backbone = create_backbone(spec["name"], spec["weights"], spec.get("weights_file"))
        if backbone.stores_anchor:
            try:
                backbone.model.load_state_dict(store.anchor(), strict=True)
            except RuntimeError as e:
                raise ProjectError(f"The stored backbone does not fit {spec['name']}: {e}") from None
        if fingerprint(backbone.model) != spec["fingerprint"]:
            raise ProjectError(
                f"The {spec['name']} weights found now ({backbone.source}) differ from the ones this project "
                f"was trained with. Point to the original file with --backbone-weights."
            )
    name = doc["strategy"]["name"]
    try:
        config = make_config(name, doc["strategy"]["config"])
    except ProjectError as e:
        raise ProjectError(f"The strategy settings in project.json are not valid: {e}") from None
    strategy = create_strategy(name, backbone, config, device)
    shared = store.shared_weights()
    if shared:
        strategy.load_shared_state(shared)
    for task in doc["tasks"]:
        if task["trained"]:
            strategy.load_task_state(task["id"], split_task_tensors(store.task_weights(task))[0])
    return strategy
