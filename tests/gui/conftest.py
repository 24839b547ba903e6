from __future__ import annotations

import gc

import pytest
from PySide6.QtWidgets import QApplication

from clstudio.engine.data.synthetic import make_task_folder
from clstudio.engine.project import Project

FAST = {"epochs": 4, "lr": 0.01, "augment": "none", "patience": 100}


@pytest.fixture(autouse=True)
def qt_objects_die_here(qapp):
    """After each test, collect the garbage here, on the main thread between tests, where no Qt call is
    under way. Otherwise a window kept alive only by a reference cycle (a slot that is a
    lambda over ``self``) is destroyed by Python's cyclic GC whenever an allocation triggers it: once inside
    QObject::disconnect, whose signal mutex its destructor then waits for — the suite hung there (py-spy:
    gc_collect_main under qobjectDisconnectCallback → ~QObject → QBasicMutex::lockInternal), and the
    earlier one-off segfaults fit the same cause."""
    yield
    QApplication.processEvents()
    gc.collect()


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


def trained_window(qtbot, tmp_path, folders, monkeypatch, strategy="clr"):
    """A window over a project with two trained tasks (stripes, then colours), reopened from disk; the
    drill-down dialog's exec is replaced so a test can look at the dialogs it opened."""
    from clstudio.gui import main_window
    from clstudio.gui.main_window import MainWindow

    p = Project.create(tmp_path / f"p-{strategy}", strategy=strategy, backbone="tiny", config=FAST)
    for f in (folders["stripes"], folders["colours"]):
        p.add_task(f)
    p.train_pending()
    opened: list = []
    monkeypatch.setattr(main_window.DrillDownDialog, "exec", lambda self: opened.append(self) or 0)
    w = MainWindow(p.store.folder)
    w.confirm_close = lambda: True
    qtbot.addWidget(w)
    w.show()
    w.tabs.setCurrentWidget(w.matrix)
    return w, opened
