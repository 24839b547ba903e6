"""Issue 16, a first-time user's path: File ▸ New project with a chosen method and backbone, "Try with demo
data" on the empty state, train, classify; the dialog says why Create is disabled; recent projects; the
icon; ``clstudio-gui PATH`` and ``--version``."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QApplication, QDialogButtonBox, QMessageBox

from clstudio.engine.project import Project
from clstudio.gui.identity import APP_ID
from clstudio.gui.panels.new_project import NewProjectDialog


def _choose(dialog: NewProjectDialog, name: str, strategy: str, backbone: str, preset: str = "app") -> None:
    dialog.name.setText(name)
    dialog.strategy.setCurrentIndex(dialog.strategy.findData(strategy))
    dialog.preset.setCurrentIndex(dialog.preset.findData(preset))
    dialog.backbone.setCurrentIndex(dialog.backbone.findData(backbone))


def test_first_time_user_creates_a_project_tries_the_demo_trains_and_classifies(qtbot, window, tmp_path):
    def ask():
        dialog = NewProjectDialog(tmp_path)
        _choose(dialog, "birds", "clr", "tiny")
        assert dialog.problem() is None and dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).isEnabled()
        return dialog.choice()

    window.ask_new_project = ask
    file_menu = window.menuBar().actions()[0].menu()
    next(a for a in file_menu.actions() if a.text() == "&New project…").trigger()
    qtbot.waitUntil(lambda: window.session.folder == tmp_path / "birds" and not window.jobs.busy, timeout=30000)
    assert Project.open(tmp_path / "birds").doc["backbone"]["name"] == "tiny"
    assert window.windowTitle() == "CL Studio — birds"
    assert not window.tasks.demo_button.isHidden()  # the empty state offers the demo
    window.tasks.demo_button.click()
    qtbot.waitUntil(lambda: len(window.session.tasks) == 2 and not window.jobs.busy, timeout=30000)
    assert [t["name"] for t in window.session.tasks] == ["shapes", "colours"]
    assert window.tasks.demo_button.isHidden()
    window.train.form.editors["epochs"][0].setValue(3)
    window.train.start.click()
    qtbot.waitUntil(lambda: window.training is None and not window.jobs.busy, timeout=120000)
    assert len(Project.open(window.session.folder).trained_tasks()) == 2
    shapes = Project.open(window.session.folder).answers("shapes")
    window.classify.task.setCurrentText("shapes")
    window.classify.request(shapes.files[:2])
    qtbot.waitUntil(lambda: len(window.classify.cards) == 2, timeout=30000)
    said = [card.rows[0][0] for card in window.classify.cards]
    assert said == [shapes.classes[p] for p in shapes.pred[:2]]  # what the accuracy matrix counted


def test_new_project_dialog_says_why_it_cannot_create(qtbot, tmp_path):
    Project.create(tmp_path / "taken", backbone="tiny")
    dialog = NewProjectDialog(tmp_path)
    qtbot.addWidget(dialog)
    create = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    dialog.name.setText("")
    assert not create.isEnabled() and "name" in dialog.path_note.text()
    dialog.name.setText("taken")
    assert not create.isEnabled() and "is a project already" in dialog.path_note.text()
    dialog.name.setText("a/b")
    assert not create.isEnabled()
    _choose(dialog, "fresh", "clr", "resnet50")
    assert not dialog.weights_row.isHidden()  # "use my ResNet weights file"
    dialog.weights.setText(str(tmp_path / "missing.pth"))
    assert not create.isEnabled() and "No weights file" in dialog.path_note.text()
    dialog.weights.setText("")
    assert create.isEnabled() and str(tmp_path / "fresh") in dialog.path_note.text()
    dialog.backbone.setCurrentIndex(dialog.backbone.findData("efficientnet_lite0"))
    assert dialog.weights_row.isHidden()
    _choose(dialog, "sparse", "sparcl", "efficientnet_lite0")
    dialog.preset.setCurrentIndex(dialog.preset.findData("paper"))
    assert dialog.backbone.currentData() == "resnet18_cifar"  # the paper preset implies its network
    assert "from scratch" in dialog.preset_note.text() and "SparCL" in dialog.strategy_note.text()
    assert dialog.choice().strategy == "sparcl" and dialog.choice().weights_file is None
    assert [dialog.device.itemData(i) for i in range(2)] == ["auto", "cpu"]


def test_recent_projects_and_the_icon(qtbot, window, tmp_path):
    from clstudio.gui.main_window import recent_projects

    other = Project.create(tmp_path / "other", backbone="tiny").folder
    first = window.session.folder
    window.open_project(other)
    assert recent_projects()[:2] == [other.resolve(), first.resolve()]
    window.recent_menu.aboutToShow.emit()
    entries = [a.text() for a in window.recent_menu.actions()]
    assert entries == [f"{first.name}  —  {first.resolve().parent}"]  # the project open now is not listed
    window.recent_menu.actions()[0].trigger()
    assert window.session.folder.resolve() == first.resolve()
    assert not window.windowIcon().isNull()
    assert {s.width() for s in window.windowIcon().availableSizes()} >= {16, 32, 256}


def test_clstudio_gui_opens_the_project_given_and_refuses_a_folder_that_is_not_one(
    qtbot, tmp_path, monkeypatch, capsys
):
    from clstudio.gui import app as gui_app

    with pytest.raises(SystemExit) as stop:
        gui_app.run_app(["clstudio-gui", "--version"])
    assert stop.value.code == 0 and "CL Studio 0." in capsys.readouterr().out
    errors: list[str] = []
    monkeypatch.setattr(QMessageBox, "critical", lambda _parent, _title, text: errors.append(text))
    assert gui_app.run_app(["clstudio-gui", str(tmp_path)]) == 1
    assert "is not a CL Studio project" in errors[0]
    folder = Project.create(tmp_path / "mine", backbone="tiny").folder
    shown: list = []

    def exec_and_close() -> int:
        from clstudio.gui.main_window import MainWindow

        window = next(w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible())
        shown.append((window.session.folder, QApplication.desktopFileName()))
        window.confirm_close = lambda: True
        window.close()
        return 0

    monkeypatch.setattr(QApplication, "exec", staticmethod(exec_and_close))
    assert gui_app.run_app(["clstudio-gui", str(folder)]) == 0
    assert shown == [(folder.resolve(), APP_ID)]


def test_the_smoke_mode_adds_a_task_trains_it_through_start_and_quits(qtbot, tmp_path, capsys):
    """What packaging/smoke.sh runs in the built app, here unbundled: the same window, Start, child process."""
    from clstudio.engine.data.synthetic import make_demo
    from clstudio.gui import app as gui_app

    folder = Project.create(tmp_path / "p", backbone="tiny", config={"epochs": 2}).folder
    _shapes, colours = make_demo(tmp_path / "demo", per_class=12)
    argv = ["clstudio-gui", str(folder), "--smoke-train", str(colours), "--quit-after", "0.2"]
    assert gui_app.run_app(argv) == 0
    assert "1 task(s) trained" in capsys.readouterr().out
    assert [t["name"] for t in Project.open(folder).trained_tasks()] == ["colours"]


def test_start_says_why_it_is_disabled_and_runs_have_keys(qtbot, window, folders):
    from PySide6.QtCore import Qt

    hint = window.train.start_hint
    assert not window.train.start.isEnabled() and "Add a task first" in hint.text() and not hint.isHidden()
    assert window.train.keys == {"F5": window.train.start, "F6": window.train.pause, "Shift+F5": window.train.cancel}
    qtbot.keyClick(window, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert window.tabs.currentWidget() is window.curves
    window.confirm_preflight = lambda report: report.name
    window.handle_dropped([folders["stripes"]])
    qtbot.waitUntil(lambda: len(window.session.tasks) == 1 and not window.jobs.busy, timeout=20000)
    assert window.train.start.isEnabled() and hint.isHidden()
    qtbot.keyClick(window, Qt.Key.Key_F5)  # from the curves tab: the key starts training, as the button does
    qtbot.waitUntil(lambda: window.training is None and not window.jobs.busy, timeout=120000)
    assert window.session.view.trained_names() == ["stripes"]
    assert not window.train.start.isEnabled() and "Every task is trained" in hint.text()


def test_the_epoch_bar_is_honest_while_validating_and_the_eta_stays(qtbot):
    from clstudio.engine import events as ev
    from clstudio.gui.panels.train import TrainPanel

    panel = TrainPanel("cpu")
    qtbot.addWidget(panel)
    panel.on_event(ev.TaskStarted(task="t", epochs=4, steps=5, device="cpu"))
    panel.on_event(ev.StepProgress(task="t", epoch=1, step=3, steps=5, loss=1.0, images_per_s=50, eta_s=30))
    assert panel.epoch_bar.maximum() == 5 and "task ETA" in panel.status.text()
    panel.on_event(ev.StepProgress(task="t", epoch=1, step=5, steps=5, loss=1.0, images_per_s=50, eta_s=25))
    assert panel.epoch_bar.maximum() == 0 and "evaluating" in panel.status.text()  # busy, not "full"
    panel.on_event(ev.EpochEnded("t", 1, 4, 1.0, 0.5, 0.5, 1, 1e-3, 0))
    assert panel.epoch_bar.maximum() == 5 and "task ETA" in panel.status.text()
    panel.on_event(ev.EpochEnded("t", 2, 4, 0.8, 0.75, 0.75, 2, 1e-3, 0))
    x, y = panel.mini_curve.getData()
    assert list(x) == [1, 2] and list(y) == [0.5, 0.75]  # the live mini curve on the Train tab


def test_recent_projects_keep_their_order_across_three_opens(tmp_path):
    from clstudio.gui.main_window import recent_projects, remember_project

    folders = [Project.create(tmp_path / n, backbone="tiny").folder.resolve() for n in ("a", "b", "c")]
    for f in (folders[0], folders[1], folders[0], folders[2]):
        remember_project(f)  # the first call stores a one-item list, which the INI file reads back as a string
    assert recent_projects()[:3] == [folders[2], folders[0], folders[1]]
