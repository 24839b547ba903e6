"""Which device training and inference run on, and the mixed precision each device gets.

Kept apart from the training loop so the GUI can name the device without importing anything that trains.
"""

from __future__ import annotations

import contextlib

import torch

from clstudio.engine.errors import CLStudioError


def resolve_device(preference: str = "auto") -> str:
    if preference == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if preference.startswith("cuda") and not torch.cuda.is_available():
        raise CLStudioError("CUDA was asked for, but this machine has no usable NVIDIA GPU. Use --device cpu.")
    return preference


def device_label(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return "cpu"


def available_devices() -> list[tuple[str, str]]:
    """(choice, what a person reads) for every device this machine can train on: auto first, then the CPU,
    then each CUDA GPU by name."""
    auto = device_label(resolve_device("auto"))
    out = [("auto", f"Automatic (now: {auto})"), ("cpu", "CPU")]
    if torch.cuda.is_available():
        out += [(f"cuda:{i}", f"cuda:{i} ({torch.cuda.get_device_name(i)})") for i in range(torch.cuda.device_count())]
    return out


def autocast(device: torch.device, allow_fp16: bool = True) -> contextlib.AbstractContextManager:
    """bf16 where the GPU has it, else fp16 (only for loops with a loss scaler: ``allow_fp16``); CPU: fp32."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    if torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if allow_fp16:
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()
