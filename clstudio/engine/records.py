"""The typed shape of what a project stores: project.json (``ProjectDoc``), its task entries (``TaskEntry``)
and a task's file index (``TaskIndex``). TypedDicts, so the JSON on disk is the object in memory and the
type checker knows every key; ``project_file.validate`` checks them when a file is read."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class BackboneSpec(TypedDict):
    name: str
    weights: str  # "pretrained" or "random"
    source: str  # where the weights came from, for messages
    weights_file: str | None
    fingerprint: str  # digest of the anchor's tensors: opening refuses other weights
    params: NotRequired[int | None]


class StrategySpec(TypedDict):
    name: str
    preset: str | None
    config: dict[str, Any]  # the strategy's config dataclass as a dict
    per_task: NotRequired[dict[str, int]]  # params / bytes each task adds besides its head (the app's blurb)


class TaskEntry(TypedDict):
    id: str  # t1, t2, … in the order added; names the task's files
    name: str
    source: str  # the folder it was scanned from
    classes: list[str]
    index: str  # tasks/<id>.json
    fingerprint: str  # of the scanned file list
    train_images: int
    val_images: int
    eval_images: int
    class_counts: dict[str, list[int]]  # class → [train, eval]
    eval_on: NotRequired[str]  # "test": held out (never trained on, never chose an epoch); "val": chose it too
    trained: bool
    weights: str | None  # weights/task-<id>.safetensors once trained
    # Written when the task is trained:
    trainable_params: NotRequired[int]
    best_val_acc: NotRequired[float]
    best_epoch: NotRequired[int]
    epochs_run: NotRequired[int]
    seconds: NotRequired[float]
    device: NotRequired[str]
    skipped_images: NotRequired[int]
    probe_val_acc: NotRequired[float]  # CLR: validation accuracy of the probe head it started from
    probe_l2: NotRequired[float]  # the L2 strength the probe's fit chose on validation
    # CLR kept the probe: its best epoch was not clearly better on validation (epoch, val_acc, wins, losses)
    probe_kept_over: NotRequired[dict[str, Any]]
    # Rehearsal strategies add their training cost (and SparCL its per-layer sparsity):
    flops_used: NotRequired[float]
    flops_dense: NotRequired[float]
    iterations: NotRequired[int]
    dense_iterations: NotRequired[int]
    streams: NotRequired[int]
    train_seconds: NotRequired[float]
    sparsity: NotRequired[dict[str, float]]
    masked_weight_share: NotRequired[float]  # the masked layers' share of all backbone weights
    masked_mac_share: NotRequired[float]  # ... and of its forward MACs
    ddr_removed: NotRequired[int]
    replay_unreadable: NotRequired[int]  # buffer picks whose file could not be read while this task trained
    # Per-task strategies (CLR, linear probe): digests of the weight file, each tensor and the task's answers
    # when it was trained: the zero-forgetting proof (engine/proof.py).
    proof: NotRequired[dict[str, Any]]


class ProjectDoc(TypedDict):
    format: str
    format_version: int
    app_version: str
    backbone: BackboneSpec
    strategy: StrategySpec
    preprocessing: dict[str, Any]  # image_size, mean, std
    tasks: list[TaskEntry]
    shared_weights: str | None  # weights/shared-<n>.safetensors, for strategies that change shared tensors
    R: list[list[float]]  # Task-IL accuracy matrix, lower-triangular rows in training order
    R_tasks: list[str]  # task ids, the column order of R
    R_class_il: NotRequired[list[list[float]]]  # one-head strategies
    router_weights: NotRequired[str]  # weights/router-<n>.safetensors, strategies with a feature router
    R_routing: NotRequired[list[list[float]]]  # share of each task's images the router sends to it
    R_routed: NotRequired[list[list[float]]]  # Class-IL accuracy through the router (route, then classify)
    routed_note: NotRequired[str]  # why the routed matrices are no longer exactly today's router (a deletion)
    R_evaluations: NotRequired[list[str | None]]  # per row of R: its per-image record, evals/after-<id>.json


class TaskIndex(TypedDict):
    root: str
    layout: str
    classes: list[str]
    train: list[list[Any]]  # [relative path, label]
    val: list[list[Any]]
    test: list[list[Any]]
    problems: list[list[str]]  # [path, reason] of files left out
    skipped: int
