"""'auto' input size: the backbone's own, or a smaller one when the first task's images are small — decided
once, before the first task trains, written in project.json with the reason, and kept for later tasks."""

from __future__ import annotations

import pytest
from PIL import Image

from clstudio.engine import events as ev
from clstudio.engine.data import input_size
from clstudio.engine.data.input_size import auto_input_size, typical_side
from clstudio.engine.data.synthetic import make_task_folder
from clstudio.engine.project import Project

FAST = dict(epochs=1, augment="none")


def test_auto_size_rule():
    assert auto_input_size(224, 28) == 160  # Fashion-MNIST on an ImageNet net: measured as accurate
    assert auto_input_size(224, 64) == 160
    assert auto_input_size(224, 65) == 224  # photos keep the backbone's own size
    assert auto_input_size(224, None) == 224  # nothing readable: no reason to deviate
    assert auto_input_size(32, 28) == 32  # never upwards: a CIFAR net keeps its 32 px


def test_typical_side_reads_headers(tmp_path):
    sizes = [(28, 28)] * 5 + [(300, 200)] * 2
    items = []
    for i, wh in enumerate(sizes):
        Image.new("RGB", wh).save(tmp_path / f"{i}.png")
        items.append((f"{i}.png", 0))
    (tmp_path / "broken.png").write_bytes(b"not an image")
    assert typical_side(tmp_path, [*items, ("broken.png", 0)]) == 28  # the median, the broken file ignored
    assert typical_side(tmp_path, [("broken.png", 0)]) is None
    assert typical_side(tmp_path, []) is None


@pytest.fixture
def small_input(monkeypatch):
    # The tiny test backbone's own size is 32 px: pretend 16 is the size for small images, so the rule fires.
    monkeypatch.setattr(input_size, "SMALL_IMAGE_INPUT", 16)


def test_first_task_decides_and_later_tasks_keep_it(tmp_path, small_input):
    a = make_task_folder(tmp_path / "a", ("red", "green"), 6, size=32, seed=1)
    b = make_task_folder(tmp_path / "b", ("circle", "square"), 6, size=32, seed=2)
    p = Project.create(tmp_path / "p", strategy="linear_probe", backbone="tiny", config=FAST)
    assert p.doc["preprocessing"]["image_size"] == 32
    p.add_task(a)
    p.add_task(b)
    seen: list[ev.Event] = []
    p.train_task("a", observers=[seen.append])
    chosen = [e for e in seen if isinstance(e, ev.InputSizeChosen)]
    assert chosen == [ev.InputSizeChosen("a", 32, 16, 32)]
    assert p.doc["preprocessing"]["image_size"] == 16
    assert p.doc["preprocessing"]["auto_from_image_side"] == 32
    seen.clear()
    p.train_task("b", observers=[seen.append])
    assert not [e for e in seen if isinstance(e, ev.InputSizeChosen)]  # decided once, for every task
    reopened = Project.open(tmp_path / "p")
    assert reopened.preprocessing.image_size == 16
    history = (tmp_path / "p" / "history.jsonl").read_text()
    assert '"event": "InputSizeChosen"' in history


def test_an_explicit_size_is_kept(tmp_path, small_input):
    a = make_task_folder(tmp_path / "a", ("red", "green"), 6, size=32, seed=1)
    p = Project.create(tmp_path / "p", strategy="linear_probe", backbone="tiny", config={**FAST, "image_size": 24})
    p.add_task(a)
    seen: list[ev.Event] = []
    p.train_task("a", observers=[seen.append])
    assert p.doc["preprocessing"]["image_size"] == 24
    assert "auto_from_image_side" not in p.doc["preprocessing"]
    assert not [e for e in seen if isinstance(e, ev.InputSizeChosen)]


def test_large_images_keep_the_backbones_size(tmp_path, small_input):
    a = make_task_folder(tmp_path / "a", ("red", "green"), 6, size=80, seed=1)
    p = Project.create(tmp_path / "p", strategy="linear_probe", backbone="tiny", config=FAST)
    p.add_task(a)
    p.train_task("a")
    assert p.doc["preprocessing"]["image_size"] == 32
    assert "auto_from_image_side" not in p.doc["preprocessing"]


def test_the_view_says_what_auto_may_become_until_decided(tmp_path, small_input):
    from clstudio.engine.views import SavedProject

    p = Project.create(tmp_path / "p", strategy="linear_probe", backbone="tiny", config=FAST)
    p.add_task(make_task_folder(tmp_path / "a", ("red", "green"), 6, size=32, seed=1))
    assert SavedProject(tmp_path / "p").auto_size_note() == "; 16 for images ≤ 64 px"
    p.train_task("a")
    assert SavedProject(tmp_path / "p").auto_size_note() == ""  # decided: the settings show the size itself
