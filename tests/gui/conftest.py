from __future__ import annotations

import pytest

from clstudio.engine.data.synthetic import make_task_folder
from clstudio.engine.project import Project

FAST = {"epochs": 4, "lr": 0.01, "augment": "none", "patience": 100}


@pytest.fixture
def folders(tmp_path):
    return {
        "stripes": make_task_folder(tmp_path / "stripes", ("horizontal", "vertical"), 20, size=32, seed=1),
        "colours": make_task_folder(tmp_path / "colours", ("red", "green", "blue"), 20, size=32, seed=2),
    }


@pytest.fixture
def project(tmp_path):
    """A tiny-backbone CLR project (the GUI's default would load EfficientNet: slower, same code path)."""
    return Project.create(tmp_path / "project", backbone="tiny", config=FAST).folder


@pytest.fixture
def window(qtbot, project):
    from clstudio.gui.main_window import MainWindow

    w = MainWindow(project)
    w.confirm_preflight = lambda report: report.name
    w.confirm_close = lambda: True
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()
    assert not w.jobs.busy, "a QThread outlived its window"
