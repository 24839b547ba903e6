"""Rehearsal strategies (ER, DER++, SparCL): one shared network and one head over every class seen so far.

Unlike the per-task-head strategies, nothing is frozen and nothing is per task but the class range: the
head grows by the new task's classes at each task start (old rows copied). Evaluation is both Class-IL
(argmax over all classes) and Task-IL (argmax inside the task's range, sparcl.md §1): ``activate_task``
selects the Task-IL view that classify and the accuracy matrix use.

Shared state (one file per commit): the network, the head, the TDM masks and the rehearsal buffer
(references + labels + logits). Task state: the task's class range only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from clstudio.engine.errors import ProjectError
from clstudio.engine.models.backbones import Backbone
from clstudio.engine.replay import ReservoirBuffer
from clstudio.engine.sparcl.masks import MaskSet
from clstudio.engine.strategies.base import CommonConfig, Strategy, TensorDict, setting


@dataclass(frozen=True)
class RehearsalConfig(CommonConfig):
    """Defaults suit people's folders on a pretrained backbone; the 'paper' preset is the SparCL script's
    recipe (sparcl.md §6-§7: 50 epochs, SGD 0.03, pad-and-crop, buffer 500) for parity runs."""

    epochs: int = setting(10, "Epochs per task (paper: 50). All run: there is no early stop, as in the paper.")
    batch_size: int = setting(32, "Stream batch and each buffer batch (paper: 32). A last partial batch is dropped.")
    lr: float = setting(
        0.1,
        "SGD learning rate, constant, no momentum or weight decay (paper: 0.03, from scratch). Measured on a "
        "pretrained Lite0 at the app's 10 epochs (README): 0.01 left the head near its initialisation.",
    )
    image_size: int = setting(0, "Input resolution in pixels; 0 uses the backbone's own (32 for resnet18_cifar).")
    seed: int = setting(0, "Seeds the head, shuffling, augmentation, the buffer and the masks' random growth.")
    replay: str = setting(
        "derpp", "Rehearsal: 'derpp' (DER++: logits + labels) or 'er' (labels).", choices=("derpp", "er")
    )
    buffer_size: int = setting(500, "Samples kept for rehearsal across all tasks (paper: 200 and 500).")
    alpha: float = setting(0.1, "DER++ weight of the logit MSE (released script: 0.1).")
    beta: float = setting(0.5, "DER++ weight of the buffer cross-entropy (released script: 0.5).")
    er_weight: float = setting(1.0, "ER weight of the buffer cross-entropy (SparCL code default: 1.0).")


PAPER_PRESET = dict(epochs=50, lr=0.03, augment="crop_pad", buffer_size=500)


class RehearsalStrategy(Strategy):
    """Dense rehearsal over a shared network; SparCL adds masks (``sparse`` config) on top."""

    Config: ClassVar[type[CommonConfig]] = RehearsalConfig
    class_incremental: ClassVar[bool] = True
    training = "rehearsal"
    PRESETS = {"paper": PAPER_PRESET, "app": {}}
    PRESET_BACKBONES: ClassVar[dict[str, str]] = {"paper": "resnet18_cifar"}  # the paper trains from scratch

    def __init__(self, backbone: Backbone, config: Any, device: str = "cpu") -> None:
        super().__init__(backbone, config, device)
        self.view: tuple[int, int] | None = None
        self._training_range: tuple[int, int] | None = None
        self.buffer = ReservoirBuffer(config.buffer_size, torch.Generator().manual_seed(config.seed))
        self.masks: MaskSet | None = None
        self.retained_grads: dict[str, torch.Tensor] = {}  # the last batch's masked gradients, for CWI
        self.freeze_all_but_trainable()

    # --- what is trained ---------------------------------------------------------------------------------
    def trainable_parameters(self) -> list[nn.Parameter]:
        head = list(self.head.parameters()) if self.head is not None else []
        return list(self.features.parameters()) + head

    def freeze_all_but_trainable(self) -> None:
        for p in self.trainable_parameters():
            p.requires_grad_(True)

    # --- tasks: a growing head -------------------------------------------------------------------------
    def begin_task(self, task_id: str, num_classes: int) -> None:
        old = self.head
        lo = old.out_features if old is not None else 0
        head = nn.Linear(self.backbone.feature_dim, lo + num_classes).to(self.device)
        if old is not None:
            with torch.no_grad():
                head.weight[:lo].copy_(old.weight)
                head.bias[:lo].copy_(old.bias)
        self.head = head
        self._training_range = (lo, lo + num_classes)
        self.task_classes[task_id] = num_classes
        self.active, self.view = task_id, None
        self.freeze_all_but_trainable()

    def end_task(self, task_id: str) -> None:
        assert self._training_range is not None
        self.task_states[task_id] = {"class_range": torch.tensor(self._training_range, dtype=torch.int64)}
        self._training_range = None

    def class_range(self, task_id: str) -> tuple[int, int]:
        if task_id in self.task_states:
            lo, hi = self.task_states[task_id]["class_range"].tolist()
            return int(lo), int(hi)
        if task_id == self.active and self._training_range is not None:
            return self._training_range
        raise ProjectError(f"Task '{task_id}' has not been trained yet.")

    def show_all_classes(self) -> None:
        self.view = None

    def activate_task(self, task_id: str) -> None:
        self.view = self.class_range(task_id)
        self.active = task_id

    def current_task_state(self) -> TensorDict:
        assert self.active is not None
        return {"class_range": torch.tensor(self.class_range(self.active), dtype=torch.int64)}

    def load_task_state(self, task_id: str, state: TensorDict) -> None:
        if set(state) != {"class_range"} or state["class_range"].numel() != 2:
            raise ProjectError(f"Weights of task '{task_id}' do not fit a rehearsal strategy (need class_range).")
        self.task_states[task_id] = {"class_range": state["class_range"].clone().long()}
        lo, hi = state["class_range"].tolist()
        self.task_classes[task_id] = int(hi - lo)

    # --- compute ---------------------------------------------------------------------------------------
    def full_logits(self, x: torch.Tensor) -> torch.Tensor:
        assert self.head is not None, "no task trained yet"
        return self.head(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.full_logits(x)
        if self.view is None:
            return logits
        return logits[:, self.view[0] : self.view[1]]

    # --- shared state: network, head, masks, buffer -----------------------------------------------------
    def shared_state(self) -> TensorDict:
        state = {f"net::{k}": v for k, v in self._copy(list(self.features.state_dict())).items()}
        if self.head is not None:
            state["head.weight"] = self.head.weight.detach().cpu().clone()
            state["head.bias"] = self.head.bias.detach().cpu().clone()
        if self.masks is not None:
            state.update(self.masks.state())
        state.update(self.buffer.state())
        return state

    def load_shared_state(self, state: TensorDict) -> None:
        net = {k[len("net::") :]: v for k, v in state.items() if k.startswith("net::")}
        if set(net) != set(self.features.state_dict()):
            raise ProjectError("Shared weights do not match this strategy's network (missing or extra tensors).")
        try:
            self._write(net)
            if self.masks is not None:
                self.masks.load_state(state)
            self.buffer.load_state(state)
        except (KeyError, RuntimeError) as e:
            raise ProjectError(f"Shared weights are incomplete or damaged ({e}).") from None
        if "head.weight" in state:
            w = state["head.weight"]
            self.head = nn.Linear(w.shape[1], w.shape[0]).to(self.device)
            with torch.no_grad():
                self.head.weight.copy_(w)
                self.head.bias.copy_(state["head.bias"])
        else:
            self.head = None
        self.freeze_all_but_trainable()

    def snapshot(self) -> TensorDict:
        return self.shared_state()

    def restore(self, snap: TensorDict) -> None:
        self.load_shared_state(snap)
