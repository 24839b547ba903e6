"""Epoch checkpoints of a task in training, so a crash or a kill loses at most one epoch.

One safetensors file per task in training (``checkpoints/<task id>.safetensors``), replaced atomically
after every epoch. It holds the model's trainable state now and at the best epoch, Adam's moments, and
— in its JSON metadata — the epoch, the best-epoch bookkeeping, the LR schedule, the loss-scaler state and
the random generators (global torch RNG for augmentation and head init, the data-order generator), so a
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

CURRENT, BEST, OPT = "current::", "best::", "opt::"


@dataclass
class TrainingState:
    epoch: int  # last completed epoch
    best_acc: float
    best_loss: float
    best_epoch: int
    skipped: int
    current: dict[str, torch.Tensor]
    best: dict[str, torch.Tensor] | None
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    scaler: dict[str, Any]
    torch_rng: torch.Tensor
    data_rng: torch.Tensor
    signature: str  # what the checkpoint was made for (task, config, data): a mismatch means start over


def _optimizer_tensors(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    for idx, per_param in state["state"].items():
        for key, value in per_param.items():
            tensors[f"{OPT}{idx}::{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return tensors, {"param_groups": state["param_groups"]}


def save(path: Path, s: TrainingState) -> None:
    tensors = {CURRENT + k: v for k, v in s.current.items()}
    if s.best is not None:
        tensors.update({BEST + k: v for k, v in s.best.items()})
    opt_tensors, opt_meta = _optimizer_tensors(s.optimizer)
    tensors.update(opt_tensors)
    tensors["rng::torch"] = s.torch_rng
    tensors["rng::data"] = s.data_rng
    meta = {
        "kind": "checkpoint",
        "epoch": s.epoch,
        "best_acc": s.best_acc,
        "best_loss": s.best_loss,
        "best_epoch": s.best_epoch,
        "skipped": s.skipped,
        "optimizer": opt_meta,
        "scheduler": s.scheduler,
        "scaler": s.scaler,
        "signature": s.signature,
    }
    save_tensors(path, tensors, {"state": json.dumps(meta)})


def load(path: Path) -> TrainingState:
    tensors, metadata = load_tensors(path)
    try:
        meta = json.loads(metadata["state"])
        opt_state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith(OPT):
                idx, name = key[len(OPT) :].split("::", 1)
                opt_state.setdefault(int(idx), {})[name] = value
        best = {k[len(BEST) :]: v for k, v in tensors.items() if k.startswith(BEST)}
        return TrainingState(
            epoch=int(meta["epoch"]),
            best_acc=float(meta["best_acc"]),
            best_loss=float(meta["best_loss"]),
            best_epoch=int(meta["best_epoch"]),
            skipped=int(meta["skipped"]),
            current={k[len(CURRENT) :]: v for k, v in tensors.items() if k.startswith(CURRENT)},
            best=best or None,
            optimizer={"state": opt_state, "param_groups": meta["optimizer"]["param_groups"]},
            scheduler=meta["scheduler"],
            scaler=meta["scaler"],
            torch_rng=tensors["rng::torch"],
            data_rng=tensors["rng::data"],
            signature=str(meta["signature"]),
        )
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"Checkpoint {path} is incomplete or damaged ({e}); the task will start over.") from None
