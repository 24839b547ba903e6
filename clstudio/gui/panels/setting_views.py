"""How each strategy setting reads in the app: a label with its unit, Basic or Advanced, how a special value
reads ("auto (224 px)"), choice names in words, and when a setting applies at all (DER++'s α only with DER++
replay). Pure data: the form (train.py) draws it; the engine's configs stay the single source of defaults
and help texts (the tooltips)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

BASIC, ADVANCED = "basic", "advanced"


@dataclass(frozen=True)
class SettingView:
    label: str
    group: str = ADVANCED  # hardware and rarely-touched settings are Advanced (collapsed)
    # How the value 0 reads, e.g. "auto" ("{size}": the project's input size; "{note}": what 'auto' may become).
    special: str = ""
    # Floats read as Python's shortest form (0.5, 0.001, 1e-05), never as 0.000010.
    percent: bool = False  # a 0-1 share shown as 75 %
    choices: dict[str, str] = field(default_factory=dict)  # value → words
    applies: Callable[[dict[str, Any]], bool] | None = None  # None: always


def _on(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda values: bool(values.get(name, True))


def _replay(kind: str) -> Callable[[dict[str, Any]], bool]:
    return lambda values: values.get("replay") == kind


VIEWS: dict[str, SettingView] = {
    "epochs": SettingView("Epochs per task", BASIC, applies=lambda v: v.get("fit") != "lbfgs"),
    "lr": SettingView("Learning rate", BASIC, applies=lambda v: v.get("fit") != "lbfgs"),
    "augment": SettingView(
        "Augmentation",
        BASIC,
        choices={
            "light": "light (crop and flip)",
            "none": "none",
            "crop_pad": "CIFAR-style (pad, crop, flip)",
            "strong": "strong (wide crops, flip, brightness, contrast)",
        },
    ),
    "replay": SettingView("Replay", BASIC, choices={"derpp": "DER++ (logits and labels)", "er": "ER (labels)"}),
    "buffer_size": SettingView("Replay buffer (images)", BASIC),
    "sparsity": SettingView("Weight sparsity", BASIC, percent=True),
    "fit": SettingView(
        "How the head is fit", BASIC, choices={"lbfgs": "L-BFGS on features (seconds)", "adam": "Adam, epochs"}
    ),
    "patience": SettingView("Stop after epochs without gain", applies=lambda v: v.get("fit") != "lbfgs"),
    "batch_size": SettingView("Batch size (images)"),
    "image_size": SettingView("Image size (px)", special="auto ({size} px{note})"),
    "seed": SettingView("Random seed"),
    "lr_steps": SettingView("Learning-rate drops per task", applies=lambda v: v.get("fit") != "lbfgs"),
    "keep_best": SettingView("Keep the best epoch", applies=lambda v: v.get("fit") != "lbfgs"),
    "break_ties_by_loss": SettingView("Break ties by validation loss", applies=lambda v: v.get("fit") != "lbfgs"),
    "probe_head": SettingView("Start from a fitted linear head"),
    "head_warmup": SettingView("Head-only warm-up (epochs)", special="none", applies=lambda v: not v.get("probe_head")),
    "full": SettingView("CLR-Full (also 1×1 convolutions)"),
    "adapters": SettingView("Train the CLR layers"),
    "adapter_lr": SettingView("CLR layers' learning rate", special="same as learning rate"),
    "replace_probe": SettingView(
        "CLR replaces the probe",
        choices={"clearly_better": "only when clearly better", "better": "whenever better on validation"},
    ),
    "reg_lambda": SettingView("Weight penalty λ"),
    "bn": SettingView(
        "BatchNorm statistics",
        choices={"auto": "auto (frozen when pretrained)", "frozen": "frozen (pretrained)", "train": "re-estimated"},
    ),
    "alpha": SettingView("DER++ logit weight α", applies=_replay("derpp")),
    "beta": SettingView("DER++ label weight β", applies=_replay("derpp")),
    "er_weight": SettingView("ER label weight", applies=_replay("er")),
    "tdm": SettingView("Dynamic weight masks (TDM)"),
    "ddr": SettingView("Drop easy images early (DDR)"),
    "dgm": SettingView("Sparse gradient updates (DGM)"),
    "masked_lr": SettingView("Masked convs' learning rate", special="same as learning rate", applies=_on("tdm")),
    "tdm_lambda": SettingView("Mask importance: gradient weight λ", applies=_on("tdm")),
    "mutation": SettingView("Mask regrowth per update", percent=True, applies=_on("tdm")),
    "update_every": SettingView(
        "Mask and DDR update period (share of a task)",
        percent=True,
        applies=lambda v: bool(v.get("tdm", True) or v.get("ddr", True)),
    ),
    "mutation_stop": SettingView("Masks stop changing after (share of a task)", percent=True, applies=_on("tdm")),
    "ddr_ratio": SettingView("Images DDR removes", percent=True, applies=_on("ddr")),
    "ddr_cutoff": SettingView("DDR's last removal (share of a task)", percent=True, applies=_on("ddr")),
    "gradient_sparsity": SettingView(
        "Gradient sparsity", percent=True, special="auto (from weight sparsity)", applies=_on("dgm")
    ),
    "dgm_refresh": SettingView("Gradient-mask refresh (steps)", applies=_on("dgm")),
    "prune_start": SettingView(
        "How the first task reaches the sparsity",
        choices={"one-shot": "one-shot prune before training (paper)", "cubic": "cubic ramp (Zhu & Gupta)"},
        applies=_on("tdm"),
    ),
    "prune_ramp": SettingView(
        "Sparsity ramp length (share of the first task)",
        percent=True,
        applies=lambda v: bool(v.get("tdm", True)) and v.get("prune_start") == "cubic",
    ),
    "eval_batch_size": SettingView("Evaluation batch (images)"),
    "num_workers": SettingView("Image-loading processes", special="none (in the trainer)"),
    "cache_mb": SettingView("Decoded-image cache (MB)", special="off"),
}


def view_of(name: str) -> SettingView:
    """A setting no table entry names yet still shows, under Advanced, with its field name in words."""
    return VIEWS.get(name) or SettingView(name.replace("_", " ").capitalize())


def strategy_title(description: str) -> str:
    """The method's name as a person reads it, from its one-line description ("CLR: frozen …" → "CLR",
    "Fine-tune everything (baseline): …" → "Fine-tune everything")."""
    return description.split(":")[0].split(" (")[0]
