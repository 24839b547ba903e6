"""A task's model exported to ONNX and TorchScript gives the app's probabilities (max abs diff ≤ 1e-4) on
image files, read back by onnxruntime and torch.jit; the sidecar says how to feed it."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from clstudio.engine.data.dataset import load_uint8
from clstudio.engine.data.synthetic import make_task_folder
from clstudio.engine.errors import ProjectError
from clstudio.engine.project import Project
from clstudio.engine.serving import RUNTIME_ENV

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(autouse=True)
def app_answers_from_torch(monkeypatch):
    """The app's probabilities come from eager torch here, so the export is checked against the network
    itself, not against the ONNX file classify would otherwise serve (tests/engine/test_serving.py)."""
    monkeypatch.setenv(RUNTIME_ENV, "torch")


def _images(folder: Path, n: int = 6) -> list[Path]:
    return sorted(folder.rglob("*.png"))[:n]


def _pixels(paths: list[Path], size: int) -> np.ndarray:
    """What the sidecar says goes in: RGB resized to S×S, float32 in 0..1, [N, 3, S, S]."""
    return (torch.stack([load_uint8(str(p), size) for p in paths]).float() / 255.0).numpy()


def _app_probabilities(project: Project, paths: list[Path], task: str) -> np.ndarray:
    results = project.classify(paths, task, top_k=99)
    classes = project.task(task)["classes"]
    return np.array([[dict(r["top"])[c] for c in classes] for r in results])


def _check_parity(project: Project, task: str, paths: list[Path], tmp_path: Path) -> None:
    want = _app_probabilities(project, paths, task)
    onnx_file, meta = project.export_model(task, "onnx", tmp_path / "m.onnx")
    side = json.loads(meta.read_text())
    assert side["classes"] == project.task(task)["classes"] and side["normalisation"]["inside_model"]
    size = side["input"]["shape"][2]
    x = _pixels(paths, size)
    got = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    assert np.abs(got - want).max() <= 1e-4
    one = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"]).run(None, {"image": x[:1]})[0]
    assert np.abs(one - want[:1]).max() <= 1e-4  # the batch dimension is free
    ts_file, _ = project.export_model(task, "torchscript", tmp_path)  # a folder: <task>.pt inside
    assert ts_file == tmp_path / f"{task}.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load is marked deprecated in torch 2.14
        scripted = torch.jit.load(str(ts_file))
    got_ts = scripted(torch.from_numpy(x)).detach().numpy()
    assert np.abs(got_ts - want).max() <= 1e-4


def test_clr_task_exports_with_the_apps_probabilities(tmp_path):
    a = make_task_folder(tmp_path / "stripes", ("horizontal", "vertical"), 12, size=32, seed=1)
    b = make_task_folder(tmp_path / "colours", ("red", "green", "blue"), 12, size=32, seed=2)
    project = Project.create(tmp_path / "p", "clr", backbone="tiny", config=dict(epochs=2, lr=0.01))
    for folder in (a, b):
        project.add_task(folder)
    project.train_pending()
    # The first task, after the second trained: its own adapters and BN, not the last task's.
    _check_parity(project, "stripes", _images(a), tmp_path)
    _check_parity(project, "colours", _images(b), tmp_path)


def test_efficientnet_lite0_clr_task_exports_with_the_apps_probabilities(tmp_path):
    """The real backbone the app uses by default, with CLR's wrapped convs and per-task BatchNorm."""
    a = make_task_folder(tmp_path / "shapes", ("circle", "square"), 8, size=64, seed=4)
    project = Project.create(tmp_path / "p", "clr", config=dict(epochs=1, image_size=64))
    project.add_task(a)
    project.train_pending()
    _check_parity(project, "shapes", _images(a, 4), tmp_path)


def test_export_refuses_clearly(tmp_path):
    a = make_task_folder(tmp_path / "t", ("red", "green"), 6, size=32, seed=5)
    project = Project.create(tmp_path / "p", "clr", backbone="tiny", config=dict(epochs=1))
    project.add_task(a)
    with pytest.raises(ProjectError, match="not trained"):
        project.export_model("t", "onnx", tmp_path / "m.onnx")
    project.train_pending()
    with pytest.raises(ProjectError, match="Unknown export format"):
        project.export_model("t", "tflite", tmp_path / "m.tflite")
    assert not (tmp_path / "m.onnx").exists()
