"""The desktop app driven as a person would: drop folders, train, watch, classify, reopen."""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QMimeData, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from clstudio.engine import events as ev
from clstudio.engine.data.synthetic import make_task_folder
from clstudio.engine.project import Project

from .conftest import FAST


def drop(widget, paths) -> bool:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = widget.rect().center()
    enter = QDragEnterEvent(QPointF(pos), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(widget, enter)
    accepted = enter.isAccepted()
    QApplication.sendEvent(widget, QDropEvent(QPointF(pos), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
    return accepted


def add_tasks(qtbot, window, folders) -> None:
    assert drop(window, folders)
    qtbot.waitUntil(lambda: len(window.session.tasks) == len(folders) and not window.jobs.busy, timeout=20000)


def train_all(qtbot, window, events=None) -> None:
    if events is not None:
        original = window.on_event
        window.on_event = lambda e: (events.append(e), original(e))
    window.train.start.click()
    qtbot.waitUntil(lambda: window.training is None and not window.jobs.busy, timeout=120000)


def test_opens_empty_with_drop_hint_and_closes(window):
    assert "Drop a folder of images here" in window.tasks.hint.text()
    assert window.tasks.list.count() == 0
    assert not window.train.start.isEnabled()  # nothing to train yet
    assert window.train.strategy.currentData() == "clr"
    assert "Device: cpu" in window.train.device.text()


def test_dropping_folders_adds_tasks_after_preflight(qtbot, window, folders):
    seen = []
    window.confirm_preflight = lambda report: seen.append(report) or f"my-{report.name}"
    add_tasks(qtbot, window, [folders["stripes"], folders["colours"]])
    assert [r.classes for r in seen] == [["horizontal", "vertical"], ["blue", "green", "red"]]
    assert [t["name"] for t in window.session.tasks] == ["my-stripes", "my-colours"]
    assert window.tasks.task_names() == ["my-stripes", "my-colours"]
    assert window.train.start.isEnabled()


def test_rejected_preflight_adds_nothing_and_a_file_is_explained(qtbot, window, folders, tmp_path):
    window.confirm_preflight = lambda report: None
    drop(window, [folders["stripes"]])
    qtbot.waitUntil(lambda: not window.jobs.busy, timeout=20000)
    assert window.session.tasks == []
    f = tmp_path / "note.txt"
    f.write_text("x")
    drop(window, [f])
    assert "not a folder" in window.statusBar().currentMessage()


def test_unusable_folder_shows_a_readable_error(qtbot, window, tmp_path):
    (tmp_path / "one" / "only").mkdir(parents=True)
    drop(window, [tmp_path / "one"])
    qtbot.waitUntil(lambda: getattr(window, "last_error", None) is not None, timeout=20000)
    assert "only one class" in window.last_error
    assert window.session.tasks == []


def test_two_task_clr_run_fills_matrix_and_curves(qtbot, window, folders):
    add_tasks(qtbot, window, [folders["stripes"], folders["colours"]])
    events: list = []
    train_all(qtbot, window, events)
    kinds = {type(e).__name__ for e in events}
    assert {"TaskStarted", "StepProgress", "EpochEnded", "EvalFinished", "TaskFinished"} <= kinds
    R = Project.open(window.session.folder).doc["R"]
    shown = window.matrix.values
    assert shown.shape == (2, 2) and np.isnan(shown[0, 1])
    assert shown[0, 0] == R[0][0] and shown[1, 0] == R[1][0] and shown[1, 1] == R[1][1]
    assert window.matrix.badges["BWT"].text().endswith("+0.0%")
    x, y = window.curves.task_curve("stripes")
    assert len(x) == FAST["epochs"] + 2  # its own epochs, then its evaluation after each task
    assert y[-1] == R[1][0]
    assert all(t["trained"] for t in window.session.tasks)
    assert window.classify.task.count() == 3  # Auto, then the two tasks
    assert window.classify.chosen_task() == "auto"  # the default once there are two tasks
    assert not window.train.strategy.isEnabled()  # fixed now that tasks are trained


def test_cancel_mid_task_leaves_it_untrained_and_app_usable(qtbot, window, folders):
    add_tasks(qtbot, window, [folders["stripes"]])
    cancelled = []

    def cancel_on_second_epoch(e):
        if isinstance(e, ev.EpochEnded) and e.epoch == 2:
            window.cancel_training()
        cancelled.append(e)

    original = window.on_event
    window.on_event = lambda e: (cancel_on_second_epoch(e), original(e))
    # 40 epochs of a few milliseconds: a cancel sent at epoch 2 lands long before the task could end (with
    # 4, the training process sometimes finished before the event reached the window on a loaded machine).
    window.train.form.editors["epochs"][0].setValue(40)
    window.train.start.click()
    qtbot.waitUntil(lambda: window.training is None and not window.jobs.busy, timeout=60000)
    assert any(isinstance(e, ev.Cancelled) for e in cancelled), [type(e).__name__ for e in cancelled]
    assert [t["trained"] for t in window.session.tasks] == [False]
    assert window.session.curves.points == {}  # the cancelled task's partial curve is gone
    assert window.train.start.isEnabled()
    window.on_event = original
    train_all(qtbot, window)
    assert [t["trained"] for t in window.session.tasks] == [True]


def test_pause_and_resume_take_effect_quickly(qtbot, window, folders):
    add_tasks(qtbot, window, [folders["colours"]])
    events: list = []
    original = window.on_event
    window.on_event = lambda e: (events.append((time.monotonic(), e)), original(e))
    window.train.start.click()
    qtbot.waitUntil(lambda: any(isinstance(e, ev.StepProgress) for _, e in events), timeout=30000)
    t0 = time.monotonic()
    window.train.pause.click()
    qtbot.waitUntil(lambda: any(isinstance(e, ev.Paused) for _, e in events), timeout=5000)
    assert time.monotonic() - t0 < 1.0
    n = len(events)
    qtbot.wait(300)
    assert not any(isinstance(e, ev.StepProgress) for _, e in events[n:])  # really paused
    window.train.pause.click()
    qtbot.waitUntil(lambda: window.training is None and not window.jobs.busy, timeout=60000)
    assert any(isinstance(e, ev.Resumed) for _, e in events)
    assert window.session.tasks[0]["trained"]


def test_classify_view_shows_right_top1(qtbot, window, tmp_path):
    # 40 images per class: 26 to train on once 35 % are held out, enough for the tiny random backbone.
    colours = make_task_folder(tmp_path / "more" / "colours", ("red", "green", "blue"), 40, size=32, seed=2)
    add_tasks(qtbot, window, [colours])
    window.train.form.editors["epochs"][0].setValue(20)  # set in the form, as a person would
    train_all(qtbot, window)
    assert Project.open(window.session.folder).doc["strategy"]["config"]["epochs"] == 20
    assert window.classify.task.count() == 1  # one task: nothing to choose between, no Auto
    window.classify.task.setCurrentText("colours")
    # Images the task trained on: this checks the view shows the model's answer, not how well a tiny random
    # backbone generalises to the held-out images (the accuracy matrix measures that).
    index = Project.open(window.session.folder).task_index(Project.open(window.session.folder).tasks[0])
    images = [
        colours / next(r for r, y in index["train"] if index["classes"][y] == c) for c in ("red", "green", "blue")
    ]
    window.classify.request([str(p) for p in images])
    qtbot.waitUntil(lambda: len(window.classify.cards) == 3, timeout=30000)
    top1 = [card.rows[0][0] for card in window.classify.cards]
    assert top1 == ["red", "green", "blue"]
    assert all(abs(sum(p for _, p in c.rows) - 1) < 1e-4 for c in window.classify.cards)


def test_auto_classify_a_folder_fills_a_table_that_exports_csv(qtbot, window, folders, tmp_path):
    add_tasks(qtbot, window, [folders["stripes"], folders["colours"]])
    train_all(qtbot, window)
    assert window.classify.chosen_task() == "auto"
    (folders["colours"] / "red" / "broken.png").write_bytes(b"no image")
    window.classify.request([str(folders["colours"])])  # a folder: every image inside, into the table
    qtbot.waitUntil(lambda: not window.jobs.busy and bool(window.classify.last_results), timeout=60000)
    table = window.classify.table
    assert window.classify.views.currentWidget() is table and table.rowCount() == 61
    tasks = set(table.column_values("Task"))
    assert tasks <= {"stripes", "colours", "—", ""}
    assert any("cannot read" in note for note in table.column_values("Note"))
    table.sortItems(4)  # by probability: sorted by value
    shown = [table.item(r, 4).text() for r in range(table.rowCount()) if table.item(r, 4).text()]
    assert [float(v.rstrip("%")) for v in shown] == sorted(float(v.rstrip("%")) for v in shown)
    out = tmp_path / "labels.csv"
    window.classify.save_csv(str(out))
    lines = out.read_text().splitlines()
    assert lines[0].startswith("path,task,top_class") and len(lines) == 62
    assert "Saved 61 row(s)" in window.classify.status.text()


def test_export_model_from_the_task_menu(qtbot, window, folders, tmp_path):
    assert not window.export_action.isEnabled()  # nothing trained yet
    add_tasks(qtbot, window, [folders["colours"]])
    train_all(qtbot, window)
    assert window.export_action.isEnabled()
    window.export_model("colours", "onnx", tmp_path / "colours.onnx")
    qtbot.waitUntil(lambda: not window.jobs.busy, timeout=60000)
    assert (tmp_path / "colours.onnx").stat().st_size > 0 and (tmp_path / "colours.onnx.json").exists()
    assert "Exported 'colours'" in window.statusBar().currentMessage()


def test_reopen_shows_same_tasks_matrix_and_curves(qtbot, window, folders, project):
    from clstudio.gui.main_window import MainWindow

    add_tasks(qtbot, window, [folders["stripes"], folders["colours"]])
    train_all(qtbot, window)
    values, points = window.matrix.values.copy(), dict(window.session.curves.points)
    window.close()
    again = MainWindow(project)
    qtbot.addWidget(again)
    try:
        assert again.tasks.task_names() == ["stripes", "colours"]
        assert np.array_equal(again.matrix.values, values, equal_nan=True)
        assert again.session.curves.points == points
        assert again.classify.task.count() == 3
    finally:
        again.close()


def test_ui_thread_stays_responsive_while_training(qtbot, window, folders):
    add_tasks(qtbot, window, [folders["stripes"], folders["colours"]])
    gaps: list[float] = []
    last = [time.monotonic()]

    def tick():
        now = time.monotonic()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(tick)
    timer.start()
    train_all(qtbot, window)
    timer.stop()
    assert len(gaps) > 10
    # What this proves: training never runs on the UI thread (a task trained there would freeze it for
    # seconds). How short the stalls are is a speed target, measured by bench/gui_latency.py (100 ms): a
    # 250 ms bound here failed on a loaded machine while nothing in the app had changed.
    assert max(gaps) < 1.0, f"the UI thread stalled {max(gaps) * 1000:.0f} ms"


def test_close_during_training_cancels_and_joins(qtbot, window, folders):
    add_tasks(qtbot, window, [folders["stripes"]])
    started = []
    original = window.on_event
    window.on_event = lambda e: (started.append(e), original(e))
    window.train.start.click()
    qtbot.waitUntil(lambda: any(isinstance(e, ev.StepProgress) for e in started), timeout=30000)
    asked = []
    window.confirm_close = lambda: asked.append(1) or True
    window.close()
    assert asked and not window.jobs.busy
    assert not Project.open(window.session.folder).tasks[0]["trained"]


def test_training_process_killed_mid_task_gives_a_readable_error_and_resumes(qtbot, window, folders):
    """Training runs in a child process; if the OS kills it, the app says so and the next Start resumes."""
    import multiprocessing
    import os
    import signal

    add_tasks(qtbot, window, [folders["stripes"]])
    window.train.form.editors["epochs"][0].setValue(8)
    seen: list = []
    original = window.on_event
    window.on_event = lambda e: (seen.append(e), original(e))
    window.train.start.click()
    qtbot.waitUntil(lambda: any(isinstance(e, ev.EpochEnded) and e.epoch == 2 for e in seen), timeout=60000)
    children = [c for c in multiprocessing.active_children() if c.name == "clstudio-train"]
    assert len(children) == 1
    os.kill(children[0].pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: window.training is None and not window.jobs.busy, timeout=30000)
    assert "stopped unexpectedly" in (window.last_error or "")
    assert [t["trained"] for t in window.session.tasks] == [False]
    seen.clear()
    train_all(qtbot, window)
    assert [t["trained"] for t in window.session.tasks] == [True]
    resumed = [e for e in seen if isinstance(e, ev.TaskResumed)]
    # it continued from its last saved epoch (1 or 2: the kill races the save of epoch 2)
    assert resumed and resumed[0].from_epoch >= 1


def test_preflight_shows_what_trains_what_picks_the_epoch_and_what_measures(qtbot, folders):
    from clstudio.engine.data.scan import scan_folder
    from clstudio.gui.panels.preflight import PreflightDialog

    report = scan_folder(folders["colours"])
    dialog = PreflightDialog(report)
    qtbot.addWidget(dialog)
    columns = [dialog.table.horizontalHeaderItem(c).text() for c in range(2, 5)]
    assert columns == ["Train", "Pick epoch", "Measure"]
    rows = [[int(dialog.table.item(r, c).text()) for c in range(2, 5)] for r in range(dialog.table.rowCount())]
    assert [sum(col) for col in zip(*rows, strict=True)] == [len(report.train), len(report.val), len(report.test)]
    assert all(r[2] >= 1 for r in rows)  # every class has held-out images to be measured on
    items = [dialog.problems.item(i).text() for i in range(dialog.problems.count())]
    assert any("fewer than 10 test images per class" in t for t in items)


def test_the_probe_model_answers_in_classify_while_clr_trains(qtbot, tmp_path, folders):
    """CLR on a pretrained-like setting (frozen BN) starts from a probe head: the app says a first model is
    ready, lists it in Classify and answers with it while CLR trains (paused here, so it is surely still
    training), then says which model the task kept."""
    from clstudio.gui.main_window import MainWindow

    folder = Project.create(tmp_path / "live", backbone="tiny", config={**FAST, "bn": "frozen", "epochs": 6}).folder
    window = MainWindow(folder)
    window.confirm_preflight = lambda report: report.name
    window.confirm_close = lambda: True
    qtbot.addWidget(window)
    window.show()
    add_tasks(qtbot, window, [folders["colours"]])
    events: list = []
    original = window.on_event

    def follow(e):
        events.append(e)
        original(e)
        if isinstance(e, ev.ModelLive):
            window.train.pause.click()  # the person looks at the first model while CLR waits

    window.on_event = follow
    window.train.start.click()
    qtbot.waitUntil(lambda: any(isinstance(e, ev.Paused) for e in events), timeout=60000)
    assert "probe model live" in window.tasks.list.item(0).text()
    assert window.train.live.isVisible() and "try it in Classify now" in window.train.live.text()
    assert window.classify.task.count() == 1 and "probe model (CLR still training)" in window.classify.task.itemText(0)
    image = next(p for p in sorted((folders["colours"] / "red").iterdir()))
    window.classify.request([str(image)])
    qtbot.waitUntil(lambda: len(window.classify.cards) == 1, timeout=30000)
    assert abs(sum(p for _, p in window.classify.cards[0].rows) - 1) < 1e-4
    assert not window.session.tasks[0]["trained"]  # all of that while the task is still in training
    window.train.pause.click()
    qtbot.waitUntil(lambda: window.training is None and not window.jobs.busy, timeout=120000)
    task = window.session.tasks[0]
    assert task["trained"]
    kept = "the probe model stayed" if task["best_epoch"] == 0 else "CLR replaced the probe"
    assert kept in window.tasks.list.item(0).text()
    assert ("stayed" if task["best_epoch"] == 0 else "CLR replaced the probe") in window.train.live.text()
    assert window.classify.task.itemText(0) == "colours"
    window.close()
