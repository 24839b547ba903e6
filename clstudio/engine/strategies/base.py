"""The Strategy contract and the shared machinery of per-task-head strategies.

A strategy owns one network: a backbone (possibly modified, e.g. wrapped with CLR layers) plus a linear
head for the active task. What differs between strategies is *which tensors belong to a task* (swapped
in and out by ``activate_task``), *which are shared* across tasks, and *which are trained*.
Per-task state lives on the CPU in ``task_states`` and is copied, never aliased, into the model, so one
task's training can never write into another's tensors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from clstudio.engine.errors import ProjectError
from clstudio.engine.models.backbones import Backbone

TensorDict = dict[str, torch.Tensor]


def setting(default: Any, help: str, choices: tuple[str, ...] = ()) -> Any:  # noqa: A002 - the GUI's tooltip
    """A config field with its help text (the GUI's tooltip and `clstudio list`) and, for text, its choices."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class CommonConfig:
    """Settings every strategy has. Defaults are for people's small folders (30-100 images per class)."""

    epochs: int = setting(15, "Maximum epochs per task. Small folders converge in 10-20; the paper used 60.")
    batch_size: int = setting(32, "Images per step; 32 is the paper's and fits CPU memory at 224 px.")
    lr: float = setting(1e-3, "Adam learning rate (the CLR paper's 1e-3).")
    augment: str = setting(
        "light",
        "'none' (CLR paper), 'light' (random crop 80-100 % + horizontal flip), 'crop_pad' (CIFAR-style: "
        "pad 1/8, random crop, flip) or 'strong' (random-resized crop of 25-100 % of the area, flip, brightness "
        "and contrast ±25 %).",
        choices=("light", "none", "crop_pad", "strong"),
    )
    image_size: int = setting(0, "Input resolution in pixels; 0 uses the backbone's own (224 for ImageNet nets).")
    seed: int = setting(0, "Seeds head init, shuffling and augmentation: the same seed gives the same run.")
    eval_batch_size: int = setting(64, "Images per forward pass when evaluating (no gradients, so larger).")
    num_workers: int = setting(0, "DataLoader worker processes; 0 decodes in the trainer, fastest with the cache.")
    cache_mb: int = setting(1024, "RAM for decoded, resized images so epochs after the first skip decoding.")


@dataclass(frozen=True)
class TrainConfig(CommonConfig):
    """Settings of the per-task-head strategies (CLR, linear probe, fine-tune): Adam, StepLR, best epoch."""

    lr_steps: int = setting(3, "StepLR divides the lr by 10 every epochs//lr_steps epochs (paper: 60//3 = 20).")
    patience: int = setting(6, "Stop a task when validation accuracy has not improved for this many epochs.")
    keep_best: bool = setting(True, "Keep the weights of the epoch with the best validation accuracy (as the paper).")
    break_ties_by_loss: bool = setting(
        True, "When two epochs reach the same validation accuracy, keep the one with the lower validation loss."
    )


class Strategy:
    """Base class. Subclasses set name/description/Config and override the hooks marked below."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Config: ClassVar[type[CommonConfig]] = TrainConfig
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
    PRESET_BACKBONES: ClassVar[dict[str, str]] = {}  # preset → the backbone it implies (else the default)
    # How a task trains (engine/training): "per_task_head" (a new head per task, best epoch, early stop),
    # "frozen_features" (a head fit on features computed once) or "rehearsal" (one growing head over every
    # class, replay). One-head strategies are also Class-IL. A strategy may choose per config (the probe).
    training: str = "per_task_head"
    class_incremental: ClassVar[bool] = False

    def __init__(self, backbone: Backbone, config: CommonConfig, device: str = "cpu") -> None:
        self.backbone = backbone
        self.config = config
        self.device = torch.device(device)
        self.features = self.build_features(backbone.model)
        self.head: nn.Linear | None = None
        self.task_states: dict[str, TensorDict] = {}
        self.task_classes: dict[str, int] = {}
        self.active: str | None = None
        # channels_last: oneDNN (CPU) and cuDNN convolutions run markedly faster in NHWC; measured in
        # bench/clr_speed.py (ResNet-18 CLR step 2.2 s → 1.6 s on 2 CPU cores).
        self.features.to(self.device, memory_format=torch.channels_last)  # type: ignore[call-overload]
        self._pristine = self._copy(self.task_feature_names())

    # --- hooks -------------------------------------------------------------------------------------
    def build_features(self, backbone_model: nn.Module) -> nn.Module:
        """Turn the anchor into this strategy's feature network (CLR wraps convs here)."""
        return backbone_model

    def task_feature_names(self) -> list[str]:
        """state_dict keys of ``features`` that belong to one task (swapped by activate_task)."""
        return []

    def shared_feature_names(self) -> list[str]:
        """state_dict keys of ``features`` that all tasks share and training changes (saved as shared)."""
        return []

    def trainable_parameters(self) -> list[nn.Parameter]:
        raise NotImplementedError

    def param_groups(self, params: list[nn.Parameter], lr: float) -> list[dict[str, Any]]:
        """The optimiser's parameter groups: one learning rate for all (a strategy may split them)."""
        return [{"params": params, "lr": lr}]

    @staticmethod
    def own_rate_groups(params: list[nn.Parameter], own: set[int], own_lr: float, lr: float) -> list[dict[str, Any]]:
        """Two groups: the parameters whose id is in ``own`` at ``own_lr`` (first), the rest at ``lr``; one group
        when the rates agree. A rate of 0 in a config means "the same as lr", resolved by the caller."""
        if own_lr == lr:
            return [{"params": params, "lr": lr}]
        return [
            {"params": [p for p in params if id(p) in own], "lr": own_lr},
            {"params": [p for p in params if id(p) not in own], "lr": lr},
        ]

    def set_train_mode(self) -> None:
        self.features.train()
        assert self.head is not None
        self.head.train()

    def regularization(self) -> torch.Tensor | None:
        return None

    def starts_from_probe(self) -> bool:
        """Whether a task's head starts as a linear probe fit on the features before training (CLR)."""
        return False

    @classmethod
    def preset_backbone(cls, preset: str | None) -> str | None:
        """The backbone a preset implies (None: the default), e.g. SparCL's paper preset: CIFAR ResNet-18."""
        return cls.PRESET_BACKBONES.get(preset or "")

    @classmethod
    def preset(cls, name: str) -> CommonConfig:
        if name not in cls.PRESETS:
            raise ProjectError(
                f"Strategy {cls.name} has no preset '{name}'. Presets: {', '.join(cls.PRESETS) or 'none'}"
            )
        return cls.Config(**cls.PRESETS[name])

    # --- tasks -------------------------------------------------------------------------------------
    def begin_task(self, task_id: str, num_classes: int) -> None:
        """Start a new task from the pristine per-task values and a freshly initialised head."""
        self._write(self._pristine)
        self.head = nn.Linear(self.backbone.feature_dim, num_classes).to(self.device)
        self.task_classes[task_id] = num_classes
        self.active = task_id
        self.freeze_all_but_trainable()

    def end_task(self, task_id: str) -> None:
        """Store the active model's per-task tensors as this task's state."""
        self.task_states[task_id] = self.current_task_state()

    def activate_task(self, task_id: str) -> None:
        if task_id not in self.task_states:
            raise ProjectError(f"Task '{task_id}' has not been trained yet.")
        state = self.task_states[task_id]
        self._write({k: v for k, v in state.items() if not k.startswith("head.")})
        w = state["head.weight"]
        self.head = nn.Linear(w.shape[1], w.shape[0]).to(self.device)
        with torch.no_grad():
            self.head.weight.copy_(w)
            self.head.bias.copy_(state["head.bias"])
        self.active = task_id

    def class_range(self, task_id: str) -> tuple[int, int]:
        """Where a task's classes sit in a shared head; only one-head strategies have one."""
        raise ProjectError(f"Strategy {self.name} has a head per task: task '{task_id}' has no range in a shared one.")

    def show_all_classes(self) -> None:
        """Make forward() return every class seen so far (Class-IL); only one-head strategies can."""
        raise ProjectError(f"Strategy {self.name} has a head per task: it cannot score every class at once.")

    def current_task_state(self) -> TensorDict:
        assert self.head is not None
        state = self._copy(self.task_feature_names())
        state["head.weight"] = self.head.weight.detach().to("cpu").clone()
        state["head.bias"] = self.head.bias.detach().to("cpu").clone()
        return state

    def shared_state(self) -> TensorDict:
        return self._copy(self.shared_feature_names())

    def load_shared_state(self, state: TensorDict) -> None:
        expected = set(self.shared_feature_names())
        if set(state) != expected:
            raise ProjectError("Shared weights do not match this strategy's network (missing or extra tensors).")
        self._write(state)

    def load_task_state(self, task_id: str, state: TensorDict) -> None:
        expected = set(self.task_feature_names()) | {"head.weight", "head.bias"}
        if set(state) != expected:
            missing, extra = sorted(expected - set(state))[:3], sorted(set(state) - expected)[:3]
            raise ProjectError(
                f"Weights of task '{task_id}' do not fit this network (missing {missing}, extra {extra})."
            )
        self.task_states[task_id] = {k: v.clone() for k, v in state.items()}
        self.task_classes[task_id] = int(state["head.weight"].shape[0])

    def snapshot(self) -> TensorDict:
        """Everything training may change: for keeping the best epoch and for rolling back a cancel."""
        snap = self.current_task_state() if self.head is not None else {}
        snap.update({f"shared::{k}": v for k, v in self.shared_state().items()})
        return snap

    def restore(self, snap: TensorDict) -> None:
        self._write({k[len("shared::") :]: v for k, v in snap.items() if k.startswith("shared::")})
        self._write({k: v for k, v in snap.items() if not k.startswith(("shared::", "head."))})
        if "head.weight" in snap and self.head is not None:
            with torch.no_grad():
                self.head.weight.copy_(snap["head.weight"])
                self.head.bias.copy_(snap["head.bias"])

    # --- the anchor's features (the task router) -----------------------------------------------------
    def earlier_tasks_fixed(self) -> bool:
        """Whether training a task leaves every earlier task's model exactly as it was (nothing shared trains
        and every task has its own head): zero forgetting by construction, which ``engine/proof.py`` checks."""
        return not self.class_incremental and not self.shared_feature_names()

    def can_route(self) -> bool:
        """Whether every task sees the same features at the anchor, so a router on the anchor's features can
        choose the task (engine/routing.py): the same condition as ``earlier_tasks_fixed``."""
        return self.earlier_tasks_fixed()

    @contextmanager
    def at_anchor(self) -> Iterator[None]:
        """Inside, ``features`` is the untouched anchor (per-task tensors at their pristine values, eval mode);
        on leaving, the active task's tensors are back exactly as they were."""
        saved = self._copy(self.task_feature_names())
        self._write(self._pristine)
        self.features.eval()
        try:
            yield
        finally:
            self._write(saved)

    # --- compute -----------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert self.head is not None, "no active task"
        return self.head(self.features(x))

    def eval(self) -> None:
        self.features.eval()
        if self.head is not None:
            self.head.eval()

    def freeze_all_but_trainable(self) -> None:
        for p in self.features.parameters():
            p.requires_grad_(False)
        for p in self.trainable_parameters():
            p.requires_grad_(True)

    def per_task_footprint(self) -> dict[str, int]:
        """What each task keeps of its own besides its head (which grows with its classes): the feature
        tensors ``activate_task`` swaps — CLR's adapters and BatchNorm, nothing for the probe. ``params``
        counts learnable values, ``bytes`` everything stored (running statistics too); ``shared_params``
        what every task trains in common (fine-tune: the whole backbone)."""
        names = set(self.task_feature_names())
        learnable = {k for k, _ in self.features.named_parameters()}
        sd = self.features.state_dict()
        return {
            "params": sum(sd[k].numel() for k in names if k in learnable),
            "bytes": sum(sd[k].numel() * sd[k].element_size() for k in names),
            "shared_params": sum(sd[k].numel() for k in self.shared_feature_names() if k in learnable),
        }

    def count_trainable(self) -> int:
        params = list(self.features.parameters()) + (list(self.head.parameters()) if self.head else [])
        return sum(p.numel() for p in params if p.requires_grad)

    def config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    # --- tensor plumbing ---------------------------------------------------------------------------
    def _copy(self, names: list[str]) -> TensorDict:
        sd = self.features.state_dict()
        return {k: sd[k].detach().to("cpu").clone() for k in names}

    def _write(self, values: TensorDict) -> None:
        if not values:
            return
        sd = self.features.state_dict()
        with torch.no_grad():
            for k, v in values.items():
                sd[k].copy_(v)
