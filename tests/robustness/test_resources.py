"""Out of GPU memory halves the batch and goes on; cancel and pause land within a second on slow disks."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from clstudio.engine import events as ev
from clstudio.engine.cancel import CancelToken, PauseToken
from clstudio.engine.data import dataset as dataset_module
from clstudio.engine.data.synthetic import make_task_folder
from clstudio.engine.errors import Cancelled, CLStudioError
from clstudio.engine.project import Project
from clstudio.engine.training.per_task import PerTaskHeadTraining
from clstudio.engine.training.rehearsal import RehearsalTraining


@pytest.fixture
def project(tmp_path):
    folder = make_task_folder(tmp_path / "colours", ("red", "green", "blue"), 20, size=32, seed=2)
    p = Project.create(tmp_path / "p", backbone="tiny", config={"epochs": 2, "batch_size": 32, "patience": 100})
    p.add_task(folder)
    return p


def _fails_above(limit: int, real_step, sizes: list[int]):
    """A training step that runs out of GPU memory on batches above ``limit`` images (the batch is its last
    argument), recording each batch size it was given."""

    def step(self, *args, **kwargs):
        sizes.append(len(args[-1]))
        if sizes[-1] > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_step(self, *args, **kwargs)

    return step


def test_out_of_memory_halves_the_batch_and_tells_the_user(project, monkeypatch):
    sizes: list[int] = []
    monkeypatch.setattr(PerTaskHeadTraining, "train_step", _fails_above(8, PerTaskHeadTraining.train_step, sizes))
    seen: list = []
    task = project.train_task("colours", observers=[seen.append])
    warnings = [e.message for e in seen if isinstance(e, ev.Warning)]
    assert warnings == [
        "'colours': out of GPU memory at batch size 32; retrying the epoch with batch size 16.",
        "'colours': out of GPU memory at batch size 16; retrying the epoch with batch size 8.",
    ]
    assert task["trained"] and max(sizes[2:]) <= 8
    assert [e.epoch for e in seen if isinstance(e, ev.EpochEnded)] == [1, 2]


def test_rehearsal_out_of_memory_halves_the_batch_too(tmp_path, monkeypatch):
    folder = make_task_folder(tmp_path / "colours", ("red", "green", "blue"), 20, size=32, seed=2)
    p = Project.create(tmp_path / "p", strategy="sparcl", backbone="tiny", config={"epochs": 2, "batch_size": 16})
    p.add_task(folder)
    sizes: list[int] = []
    monkeypatch.setattr(RehearsalTraining, "step", _fails_above(4, RehearsalTraining.step, sizes))
    seen: list = []
    task = p.train_task("colours", observers=[seen.append])
    warnings = [e.message for e in seen if isinstance(e, ev.Warning)]
    assert warnings == [
        "'colours': out of GPU memory at batch size 16; retrying the epoch with batch size 8.",
        "'colours': out of GPU memory at batch size 8; retrying the epoch with batch size 4.",
    ]
    assert task["trained"] and sizes[:2] == [16, 8] and set(sizes[2:]) == {4}
    assert [e.epoch for e in seen if isinstance(e, ev.EpochEnded)] == [1, 2]
    # The dense FLOPs reference keeps the configured schedule (batch 16), whatever the back-off did.
    assert task["dense_iterations"] == 2 * (len(p.task_index(task)["train"]) // 16)


def test_out_of_memory_at_one_image_is_a_clear_error(project, monkeypatch):
    def step(self, xb, yb, share=1.0):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(PerTaskHeadTraining, "train_step", step)
    with pytest.raises(CLStudioError, match="even with one image per batch"):
        project.train_task("colours")
    assert not Project.open(project.folder).tasks[0]["trained"]


def _slow_decoding(monkeypatch, seconds: float) -> list[float]:
    loads: list[float] = []
    real = dataset_module.load_uint8

    def slow(path, size):
        time.sleep(seconds)
        loads.append(time.monotonic())
        return real(path, size)

    monkeypatch.setattr(dataset_module, "load_uint8", slow)
    return loads


def test_cancel_lands_within_a_second_with_slow_loading(project, monkeypatch):
    loads = _slow_decoding(monkeypatch, 0.1)  # a 32-image batch takes 3.2 s to load
    token = CancelToken()
    done: dict = {}

    def train():
        try:
            project.train_task("colours", cancel=token)
        except Cancelled:
            done["cancelled_at"] = time.monotonic()

    t = threading.Thread(target=train)
    t.start()
    while len(loads) < 5:
        time.sleep(0.01)
    asked = time.monotonic()
    token.cancel()
    t.join(30)
    assert "cancelled_at" in done and done["cancelled_at"] - asked < 1.0


def test_pause_lands_within_a_second_with_slow_loading(project, monkeypatch):
    loads = _slow_decoding(monkeypatch, 0.1)
    pause, token = PauseToken(), CancelToken()
    seen: list = []
    t = threading.Thread(
        target=lambda: project.train_task("colours", observers=[seen.append], cancel=token, pause=pause)
    )
    t.start()
    while len(loads) < 5:
        time.sleep(0.01)
    pause.pause()
    time.sleep(1.0)
    n = len(loads)
    time.sleep(0.8)
    assert len(loads) == n  # nothing loads while paused
    assert any(isinstance(e, ev.Paused) for e in seen)
    pause.resume()
    t.join(60)
    assert Project.open(project.folder).tasks[0]["trained"]
