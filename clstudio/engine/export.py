"""One task's model as a file other programs run: ONNX (onnxruntime, any language) or TorchScript (C++,
Python without CL Studio), plus a JSON sidecar saying what goes in and what comes out.

The exported network is the task's whole path from pixels to probabilities: normalisation, the backbone
with the task's own tensors (CLR: adapters and BatchNorm), the task's head and the softmax. Its input is
float32 RGB ``[N, 3, S, S]`` in 0..1, the image resized to S×S (squashed, not cropped) as CL Studio does.
The files are written next to their destination and renamed into place, so a failed export leaves nothing
half-written.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clstudio import __version__
from clstudio.engine.data.dataset import Preprocessing
from clstudio.engine.errors import ProjectError
from clstudio.engine.records import TaskEntry
from clstudio.engine.storage import atomic_write_bytes
from clstudio.engine.strategies.base import Strategy

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
ONNX_OPSET = 17  # onnxruntime ≥ 1.12 runs it; old enough for most deployment runtimes


class TaskModel(nn.Module):
    """Pixels in 0..1 → class probabilities, for one task, detached from the project's shared network."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, features: nn.Module, head: nn.Module, prep: Preprocessing) -> None:
        super().__init__()
        self.features, self.head = features, head
        self.register_buffer("mean", torch.tensor(prep.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(prep.std).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features((images - self.mean) / self.std)).softmax(dim=1)


def task_model(strategy: Strategy, task: TaskEntry, prep: Preprocessing) -> TaskModel:
    """A copy of the network with the task's tensors in place, in float32 eval mode on the CPU."""
    if not task["trained"]:
        raise ProjectError(f"Task '{task['name']}' is not trained yet; train it before exporting it.")
    if strategy.class_incremental:
        raise ProjectError(
            f"Strategy {strategy.name} keeps one head over every task's classes; exporting one task of it is not "
            "supported. CLR, the linear probe and fine-tune have a model per task."
        )
    strategy.activate_task(task["id"])
    assert strategy.head is not None
    model = TaskModel(copy.deepcopy(strategy.features), copy.deepcopy(strategy.head), prep)
    return model.to("cpu", torch.float32).eval()


def sidecar(task: TaskEntry, prep: Preprocessing, fmt: str, backbone: str, strategy: str) -> dict[str, Any]:
    return {
        "format": fmt,
        "exported_by": f"clstudio {__version__}",
        "task": task["name"],
        "classes": task["classes"],
        "backbone": backbone,
        "strategy": strategy,
        "input": {
            "name": "image",
            "shape": ["N", 3, prep.image_size, prep.image_size],
            "dtype": "float32",
            "range": [0.0, 1.0],
            "channels": "RGB",
            "resize": f"{prep.resize}: the whole image resized to {prep.image_size}×{prep.image_size}, not cropped",
        },
        "normalisation": {"mean": list(prep.mean), "std": list(prep.std), "inside_model": True},
        "output": {"name": "probabilities", "shape": ["N", len(task["classes"])], "softmax": True},
    }


def export_task(
    strategy: Strategy, task: TaskEntry, prep: Preprocessing, fmt: str, out: str | Path, backbone: str
) -> tuple[Path, Path]:
    """Write the task's model in ``fmt`` to ``out`` and its sidecar to ``out`` + '.json'; returns both paths."""
    if fmt not in FORMATS:
        raise ProjectError(f"Unknown export format '{fmt}'. Formats: {', '.join(FORMATS)}")
    out = Path(out).expanduser()
    if out.is_dir():
        out = out / f"{task['name']}{FORMATS[fmt]}"
    model = task_model(strategy, task, prep)
    data = onnx_bytes(model, prep.image_size) if fmt == "onnx" else torchscript_bytes(model, prep.image_size)
    atomic_write_bytes(out, data)
    meta = out.with_name(out.name + ".json")
    doc = sidecar(task, prep, fmt, backbone, strategy.name)
    atomic_write_bytes(meta, (json.dumps(doc, indent=2) + "\n").encode())
    return out, meta


def onnx_bytes(model: nn.Module, image_size: int, output: str = "probabilities") -> bytes:
    """``model`` (float32 pixels [N,3,S,S] in, one output) as ONNX with a free batch dimension."""
    buffer = io.BytesIO()
    with _quiet_tracer():
        torch.onnx.export(
            model,
            (torch.rand(1, 3, image_size, image_size),),
            buffer,  # type: ignore[arg-type]  # the TorchScript-based exporter writes to any binary file
            dynamo=False,
            input_names=["image"],
            output_names=[output],
            dynamic_axes={"image": {0: "N"}, output: {0: "N"}},
            opset_version=ONNX_OPSET,
        )
    return buffer.getvalue()


def torchscript_bytes(model: nn.Module, image_size: int) -> bytes:
    buffer = io.BytesIO()
    with _quiet_tracer():
        torch.jit.save(torch.jit.trace(model, torch.rand(1, 3, image_size, image_size)), buffer)
    return buffer.getvalue()


@contextlib.contextmanager
def _quiet_tracer() -> Iterator[None]:
    # torch 2.14 marks both tracers deprecated in favour of torch.export; they are what onnxruntime and
    # libtorch load today, and the version is pinned.
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        yield
