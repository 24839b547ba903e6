"""Classify on the CPU through ONNX Runtime (engine/serving.py): the same answers as eager torch (≤ 1e-4,
the same top class and route), each task's model exported once into the cache and read back by later
processes, a changed task never served from an old file, and torch answering whenever the fast path is off
or breaks."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from clstudio.engine import export
from clstudio.engine.data.synthetic import make_task_folder
from clstudio.engine.paths import cache_dir
from clstudio.engine.project import Project
from clstudio.engine.serving import RUNTIME_ENV

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def two_task_project(tmp_path_factory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("serving")
    a = make_task_folder(root / "stripes", ("horizontal", "vertical"), 10, size=32, seed=1)
    b = make_task_folder(root / "colours", ("red", "green", "blue"), 10, size=32, seed=2)
    project = Project.create(root / "p", "clr", backbone="tiny", config=dict(epochs=2, lr=0.01))
    for folder in (a, b):
        project.add_task(folder)
    project.train_pending()
    images = sorted(a.rglob("*.png"))[:5] + sorted(b.rglob("*.png"))[:5] + [root / "missing.png"]
    return root / "p", images


def _onnx_files() -> list[Path]:
    return sorted((cache_dir() / "onnx").glob("*.onnx"))


def _answers(folder: Path, images: list[Path], task: str) -> list[dict]:
    return Project.open(folder, device="cpu").classify(images, task, top_k=9)


def _same(fast: list[dict], slow: list[dict]) -> None:
    for f, s in zip(fast, slow, strict=True):
        assert f.get("error") == s.get("error") and f.get("task") == s.get("task")
        if "top" in s:
            assert f["top"][0][0] == s["top"][0][0]
            assert max(abs(pf - dict(s["top"])[c]) for c, pf in f["top"]) <= 1e-4
            assert f.get("route", {}).get("nearest") == s.get("route", {}).get("nearest")


@pytest.mark.parametrize("task", ["stripes", "colours", "auto"])
def test_onnx_runtime_gives_torchs_answers(two_task_project, monkeypatch, task):
    folder, images = two_task_project
    fast = _answers(folder, images, task)
    expected_files = 3 if task == "auto" else 1  # Auto: the anchor and both routed tasks
    assert len(_onnx_files()) == expected_files, "classify did not go through ONNX Runtime"
    monkeypatch.setenv(RUNTIME_ENV, "torch")
    _same(fast, _answers(folder, images, task))
    assert "error" in fast[-1] and "top" not in fast[-1]  # the missing file is a row with its error


def test_exported_once_then_read_from_the_cache(two_task_project, monkeypatch):
    folder, images = two_task_project
    first = _answers(folder, images, "stripes")
    (cached,) = _onnx_files()
    written = cached.stat().st_mtime_ns

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although the cache holds this task's model")

    monkeypatch.setattr(export, "onnx_bytes", no_export)
    _same(_answers(folder, images, "stripes"), first)  # a new process's Project, the same file
    assert _onnx_files() == [cached] and cached.stat().st_mtime_ns >= written


def test_a_changed_task_is_never_served_from_an_old_file(two_task_project, tmp_path):
    folder, images = two_task_project
    _answers(folder, images, "stripes")
    (old,) = _onnx_files()
    # The same task folder learned again in another project (another seed of the same data): other
    # weights, so another cache key, even though the task's name, classes and backbone are the same.
    src = make_task_folder(tmp_path / "stripes", ("horizontal", "vertical"), 10, size=32, seed=1)
    other = Project.create(tmp_path / "q", "clr", backbone="tiny", config=dict(epochs=1, lr=0.05, seed=7))
    other.add_task(src)
    other.train_pending()
    other.classify(images[:2], "stripes")
    assert len(_onnx_files()) == 2 and old in _onnx_files()


def test_torch_answers_when_the_export_fails(two_task_project, monkeypatch, caplog):
    folder, images = two_task_project
    monkeypatch.setenv(RUNTIME_ENV, "torch")
    slow = _answers(folder, images, "colours")
    monkeypatch.delenv(RUNTIME_ENV)

    def broken(*args, **kwargs):
        raise RuntimeError("an operator this exporter does not know")

    monkeypatch.setattr(export, "onnx_bytes", broken)
    with caplog.at_level(logging.WARNING, logger="clstudio.engine.serving"):
        fast = _answers(folder, images, "colours")
    assert fast == slow  # the very same torch answers, bit for bit
    assert "classifying with torch" in caplog.text and not _onnx_files()


def test_the_runtime_switch_keeps_torch(two_task_project, monkeypatch):
    folder, images = two_task_project
    monkeypatch.setenv(RUNTIME_ENV, "torch")
    _answers(folder, images, "auto")
    assert not _onnx_files()


def test_prepare_classify_exports_every_task_and_the_anchor(two_task_project, monkeypatch):
    folder, images = two_task_project
    assert Project.open(folder, device="cpu").prepare_classify() == 3
    files = _onnx_files()
    assert len(files) == 3

    def no_export(*args, **kwargs):
        raise AssertionError("classify exported although prepare_classify had")

    monkeypatch.setattr(export, "onnx_bytes", no_export)
    _answers(folder, images, "auto")
    assert _onnx_files() == files
