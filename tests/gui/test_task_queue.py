"""Issue 16 in the app: remove a waiting task (confirmed, undone with Ctrl+Z), rename it (F2), drag the
queue into another order; a trained task offers none of it."""

from __future__ import annotations

from PySide6.QtCore import Qt

from clstudio.engine.project import Project


def _add(qtbot, window, folders) -> None:
    window.confirm_preflight = lambda report: report.name
    window.handle_dropped([folders["stripes"], folders["colours"]])
    qtbot.waitUntil(lambda: len(window.session.tasks) == 2 and not window.jobs.busy, timeout=20000)


def test_remove_confirm_and_undo_with_ctrl_z(qtbot, window, folders):
    _add(qtbot, window, folders)
    asked = []
    window.confirm_remove = lambda name: asked.append(name) or False
    window.tasks.remove_requested.emit("stripes")
    assert asked == ["stripes"] and window.tasks.task_names() == ["stripes", "colours"]  # said no: kept
    window.confirm_remove = lambda name: True
    window.tasks.list.setCurrentRow(0)
    window.tasks.list.setFocus()
    qtbot.keyClick(window.tasks.list, Qt.Key.Key_Delete)
    assert window.tasks.task_names() == ["colours"]
    assert [t["name"] for t in Project.open(window.session.folder).tasks] == ["colours"]
    assert window.undo_action.isEnabled() and "stripes" in window.undo_action.text()
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.tasks.task_names() == ["stripes", "colours"] and not window.undo_action.isEnabled()
    assert "back in the queue" in window.statusBar().currentMessage()


def test_rename_with_f2_and_reorder_by_dragging(qtbot, window, folders):
    _add(qtbot, window, folders)
    window.ask_task_name = lambda name: "lines"
    window.tasks.list.setCurrentRow(0)
    window.tasks.list.setFocus()
    qtbot.keyClick(window.tasks.list, Qt.Key.Key_F2)
    assert window.tasks.task_names() == ["lines", "colours"]
    model = window.tasks.list.model()
    model.moveRow(model.index(0, 0).parent(), 1, model.index(0, 0).parent(), 0)  # what a drag does
    assert window.tasks.task_names() == ["colours", "lines"]
    assert [t["name"] for t in Project.open(window.session.folder).pending_tasks()] == ["colours", "lines"]
    window.ask_task_name = lambda name: "colours"  # taken: refused with a readable error, nothing changes
    window.rename_task("lines")
    assert "already" in window.last_error and window.tasks.task_names() == ["colours", "lines"]


def _train(qtbot, window) -> None:
    window.train.form.editors["epochs"][0].setValue(2)
    window.train.start.click()
    qtbot.waitUntil(lambda: window.training is None and not window.jobs.busy, timeout=120000)


def test_a_trained_clr_task_is_deleted_with_confirmation_and_comes_back_with_undo(qtbot, window, folders):
    _add(qtbot, window, folders)
    _train(qtbot, window)
    item = window.tasks.list.item(0)
    assert not item.flags() & Qt.ItemFlag.ItemIsDragEnabled  # trained: its place is part of R
    R = Project.open(window.session.folder).doc["R"]
    asked = []
    window.confirm_delete = lambda name: asked.append(name) or True
    window.tasks.list.setCurrentRow(0)
    window.tasks.list.setFocus()
    qtbot.keyClick(window.tasks.list, Qt.Key.Key_Delete)
    qtbot.waitUntil(lambda: len(window.session.tasks) == 1 and not window.jobs.busy, timeout=60000)
    assert asked == ["stripes"] and window.tasks.task_names() == ["colours"]
    assert Project.open(window.session.folder).doc["R"] == [[R[1][1]]]  # colours' own number, untouched
    assert window.matrix.names == ["colours"]
    assert "colours" in window.curves.items and "stripes" not in window.curves.items
    assert "Undo delete 'stripes'" in window.undo_action.text().replace("&", "")
    window.undo_action.trigger()
    assert window.tasks.task_names() == ["stripes", "colours"]
    assert Project.open(window.session.folder).doc["R"] == R


def test_a_fine_tune_task_offers_no_delete(qtbot, window, folders):
    window.session.view.doc["strategy"]["per_task"] = {"params": 0, "bytes": 0, "shared_params": 1}
    window.render_all()  # as a fine-tune project's document says: the backbone is shared and trained
    _add(qtbot, window, folders)
    asked = []
    window.confirm_remove = lambda name: asked.append(name) or False
    window.confirm_delete = lambda name: asked.append(("delete", name)) or False
    window.tasks.list.setCurrentRow(0)
    window.tasks.list.setFocus()
    qtbot.keyClick(window.tasks.list, Qt.Key.Key_Delete)
    assert asked == ["stripes"]  # a waiting task: removed from the queue, not "deleted"
