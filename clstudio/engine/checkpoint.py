"""Epoch checkpoints of a task in training, so a crash or a kill loses at most one epoch.

One safetensors file per task in training (``checkpoints/<task id>.safetensors``), replaced atomically
after every epoch. The training method decides what goes in (model state now and at the best epoch,
optimiser moments, random generators, masks, data-removal state …) as tensors plus JSON bookkeeping, so a
resumed run continues exactly as the uninterrupted one would have. No pickle anywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from clstudio.engine.errors import CheckpointError
from clstudio.engine.storage import load_tensors, save_tensors

OPT = "opt::"


@dataclass
class TrainingState:
    epoch: int  # last completed epoch
    signature: str  # what the checkpoint was made for (task, config, data): a mismatch means start over
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]  # JSON-able bookkeeping of the training method


def optimizer_tensors(state: dict[str, Any], prefix: str = OPT) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A torch optimizer's state_dict as tensors (moments) plus JSON (param groups)."""
    tensors: dict[str, torch.Tensor] = {}
    for idx, per_param in state["state"].items():
        for key, value in per_param.items():
            tensors[f"{prefix}{idx}::{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return tensors, {"param_groups": state["param_groups"]}


def optimizer_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any], prefix: str = OPT) -> dict[str, Any]:
    """The inverse of ``optimizer_tensors``: a state_dict torch's ``load_state_dict`` takes."""
    per_param: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith(prefix):
            idx, name = key[len(prefix) :].split("::", 1)
            per_param.setdefault(int(idx), {})[name] = value
    return {"state": per_param, "param_groups": meta["param_groups"]}


def save(path: Path, s: TrainingState) -> None:
    meta = {"kind": "checkpoint", "epoch": s.epoch, "signature": s.signature, "method": s.meta}
    save_tensors(path, s.tensors, {"state": json.dumps(meta)})


def load(path: Path) -> TrainingState:
    tensors, metadata = load_tensors(path)
    try:
        meta = json.loads(metadata["state"])
        return TrainingState(int(meta["epoch"]), str(meta["signature"]), tensors, dict(meta["method"]))
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"Checkpoint {path} is incomplete or damaged ({e}); the task will start over.") from None
