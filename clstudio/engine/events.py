"""Events the engine emits while it works. Frozen dataclasses of plain data only (str, int, float,
tuples), so they can cross threads and be written to history.jsonl as they are."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

Observer = Callable[["Event"], None]


@dataclass(frozen=True)
class Event:
    def to_dict(self) -> dict[str, Any]:
        return {"event": type(self).__name__, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class TaskAdded(Event):
    task: str
    classes: tuple[str, ...]
    train_images: int
    val_images: int


@dataclass(frozen=True)
class TaskStarted(Event):
    task: str
    epochs: int
    steps: int  # optimiser steps per epoch
    device: str


@dataclass(frozen=True)
class TaskResumed(Event):
    task: str
    from_epoch: int  # last epoch completed before the interruption


@dataclass(frozen=True)
class StepProgress(Event):
    task: str
    epoch: int  # 1-based
    step: int  # 1-based within the epoch
    steps: int
    loss: float
    images_per_s: float
    eta_s: float  # remaining time for the whole task (all epochs, as if no early stop)


@dataclass(frozen=True)
class EpochEnded(Event):
    task: str
    epoch: int
    epochs: int
    train_loss: float
    val_acc: float
    best_val_acc: float
    best_epoch: int
    lr: float
    skipped_images: int  # images that failed to decode this epoch (file changed since the scan)


@dataclass(frozen=True)
class InputSizeChosen(Event):
    """'auto' image size, decided when the first task trains: its images are small (``image_side`` px, the
    median longer side), so every task trains and classifies at ``size`` px instead of ``native``."""

    task: str
    image_side: int
    size: int
    native: int


@dataclass(frozen=True)
class ModelLive(Event):
    """A usable model of the task in training is saved and Classify can use it now: the probe head CLR
    starts from. Training goes on and replaces it only with an epoch clearly better on validation."""

    task: str
    model: str  # "probe"
    val_acc: float
    seconds: float  # since the task started


@dataclass(frozen=True)
class EvalFinished(Event):
    after_task: str
    tasks: tuple[str, ...]  # column order of row
    row: tuple[float, ...]  # accuracy (0-1) on each task learned so far


@dataclass(frozen=True)
class TaskFinished(Event):
    task: str
    seconds: float
    best_val_acc: float
    best_epoch: int
    epochs_run: int


@dataclass(frozen=True)
class SparsityUpdated(Event):
    task: str
    epoch: int
    per_layer: tuple[tuple[str, float], ...]  # (layer, fraction of its weights masked out)
    flops_ratio: float  # dense-equivalent training FLOPs ÷ FLOPs used so far in this task (≥ 1: savings)


@dataclass(frozen=True)
class DataRemoved(Event):
    task: str
    epoch: int
    removed: int  # samples dropped at this stage (DDR)
    remaining: int  # current-task samples still trained on


@dataclass(frozen=True)
class Paused(Event):
    task: str


@dataclass(frozen=True)
class Resumed(Event):
    task: str


@dataclass(frozen=True)
class Cancelled(Event):
    task: str


@dataclass(frozen=True)
class Failed(Event):
    task: str
    message: str


@dataclass(frozen=True)
class Warning(Event):  # noqa: A001 - the engine's own warning event, never the builtin
    message: str


def emit(observers: Iterable[Observer], event: Event) -> None:
    for observer in observers:
        observer(event)
