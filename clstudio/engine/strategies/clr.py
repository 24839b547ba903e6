"""CLR strategy: frozen anchor + per-task CLR layers, BatchNorm and head (shared/specs/clr.md).

Per task, exactly these tensors are stored: every CLR kernel, every BN's γ, β, running mean/var (and its
batch counter), and the head. Nothing else is trainable and nothing else changes, so earlier tasks are
untouched by construction (zero forgetting), which tests check bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from clstudio.engine.models.backbones import resnet_weights_present
from clstudio.engine.models.clr import apply_clr, batchnorms, clr_layers
from clstudio.engine.strategies.base import Strategy, TrainConfig, setting
from clstudio.engine.strategies.registry import register_strategy


@dataclass(frozen=True)
class CLRConfig(TrainConfig):
    probe_head: bool = setting(
        True,
        "Start the head as a linear probe: logistic regression fit by L-BFGS on the backbone's features (the "
        "CLR layers start as the identity, so these are the task's features at epoch 0), in one pass over the "
        "images; the CLR layers then train from epoch 1 with the whole LR schedule. Replaces head_warmup. Only "
        "with frozen BN (a pretrained backbone): re-estimated statistics would change the features.",
    )
    replace_probe: str = setting(
        "clearly_better",
        "When a CLR epoch replaces the probe head it started from: 'clearly_better' (default) only when it "
        "answers clearly more validation images right than the probe (a sign test at 5 %): with 10 validation "
        "images per class, the best of 15 epochs is a point or two ahead by luck alone. 'better': whenever its "
        "validation accuracy is higher.",
        choices=("clearly_better", "better"),
    )
    head_warmup: int = setting(
        3,
        "Epochs that train only the head before the CLR layers and BN join (0 = the paper). Starting the adapters "
        "under a random head cost accuracy on small folders (bench/real_data.py).",
    )
    adapter_lr: float = setting(
        0.0,
        "Adam learning rate of the CLR layers and BN's γ β (0 = the same as lr, as the paper). The head keeps lr; "
        "starting from a fitted probe head, a lower adapter rate keeps the first steps from undoing it.",
    )
    adapters: bool = setting(
        True,
        "Train the CLR layers (False: they stay the identity and only BN's γ β and the head train — the "
        "'BN + head' ablation between the linear probe and CLR, bench/real_data.py).",
    )
    full: bool = setting(False, "CLR-Full: also reprogram 1×1 convs (≈3× the adapter size, slightly more accurate).")
    reg_lambda: float = setting(1e-5, "Paper's penalty λ·Σ‖W‖₂ (unsquared) on trained tensors; tiny, kept for parity.")
    bn: str = setting(
        "auto",
        "'frozen': keep the pretrained BN statistics and train only γ and β — on folders of 30-100 images per class, "
        "re-estimating statistics from a few batches shifts the features and loses to a linear probe (measured in "
        "bench/real_data.py). 'train': re-estimate them on the task (the paper). 'auto' (default): 'frozen' for a "
        "pretrained backbone, 'train' for a random one, which has no statistics worth keeping.",
        choices=("auto", "frozen", "train"),
    )


@register_strategy
class CLRStrategy(Strategy):
    name = "clr"
    description = "CLR: frozen backbone + small per-task reprogramming layers and BatchNorm. Zero forgetting."
    Config = CLRConfig
    PRESETS = {
        # The official recipe (clr.md §3): 60 epochs, StepLR 20/0.1, no augmentation, early stop after 21.
        "faithful": dict(
            epochs=60,
            lr_steps=3,
            patience=21,
            augment="none",
            break_ties_by_loss=False,
            bn="train",
            head_warmup=0,
            probe_head=False,
        ),
        "app": {},
    }

    @classmethod
    def preset_backbone(cls, preset: str | None) -> str | None:
        # The paper's recipe on the paper's network, where its ImageNet weights are here (offline machines
        # have only EfficientNet-Lite0, which stays the default then).
        if preset == "faithful" and resnet_weights_present("resnet50"):
            return "resnet50"
        return super().preset_backbone(preset)

    def build_features(self, backbone_model: nn.Module) -> nn.Module:
        self.wrapped_convs = apply_clr(backbone_model, full=self.config.full)  # type: ignore[attr-defined]
        return backbone_model

    def _bn_names(self) -> list[str]:
        names = []
        for path, bn in batchnorms(self.features).items():
            names += [f"{path}.weight", f"{path}.bias"]
            if bn.track_running_stats:
                names += [f"{path}.running_mean", f"{path}.running_var", f"{path}.num_batches_tracked"]
        return names

    def task_feature_names(self) -> list[str]:
        return [f"{path}.conv.weight" for path in clr_layers(self.features)] + self._bn_names()

    def trainable_parameters(self) -> list[nn.Parameter]:
        params: list[nn.Parameter] = []
        if self.config.adapters:  # type: ignore[attr-defined]
            params += [layer.conv.weight for layer in clr_layers(self.features).values()]  # type: ignore[misc]
        for bn in batchnorms(self.features).values():
            params += [bn.weight, bn.bias]
        assert self.head is not None
        return params + list(self.head.parameters())

    def param_groups(self, params: list[nn.Parameter], lr: float) -> list[dict[str, Any]]:
        assert self.head is not None
        head = {id(p) for p in self.head.parameters()}
        adapters = {id(p) for p in params} - head
        return self.own_rate_groups(params, adapters, self.config.adapter_lr or lr, lr)  # type: ignore[attr-defined]

    def set_train_mode(self) -> None:
        super().set_train_mode()
        if self.bn_mode == "frozen":
            for bn in batchnorms(self.features).values():
                bn.eval()

    def starts_from_probe(self) -> bool:
        # Only where training sees the features the probe was fit on: with BN re-estimating its statistics
        # ('train'), train-mode features differ from the eval-mode ones and the probe head would not fit them.
        return bool(self.config.probe_head) and self.bn_mode == "frozen"  # type: ignore[attr-defined]

    @property
    def bn_mode(self) -> str:
        mode = self.config.bn  # type: ignore[attr-defined]
        if mode == "auto":
            return "frozen" if self.backbone.weights == "pretrained" else "train"
        return mode

    def regularization(self) -> torch.Tensor | None:
        lam = self.config.reg_lambda  # type: ignore[attr-defined]
        if not lam:
            return None
        return lam * sum(p.norm() for p in self.trainable_parameters())
