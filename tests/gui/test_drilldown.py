"""Issue 14 in the app: a click on a cell of R opens that task's confusion matrix as evaluated then, a click
on a confusion cell shows its images; the flips since the task before; File ▸ Export report…; all from a
project reopened from disk."""

from __future__ import annotations

from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QLabel, QPushButton

from clstudio.engine.views import SavedProject

from .conftest import trained_window


def _click_cell(qtbot, window, row: int, col: int) -> None:
    plot = window.matrix.plot
    scene = plot.getPlotItem().vb.mapViewToScene(QPointF(col + 0.5, row + 0.5))
    qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=plot.mapFromScene(scene))


def test_clicking_R_opens_the_confusion_matrix_then_the_images(qtbot, tmp_path, folders, monkeypatch):
    window, opened = trained_window(qtbot, tmp_path, folders, monkeypatch)
    qtbot.waitExposed(window)
    _click_cell(qtbot, window, 1, 0)  # stripes, as measured after colours
    qtbot.waitUntil(lambda: len(opened) == 1, timeout=5000)
    dialog = opened[0]
    view = SavedProject(window.session.folder)
    expected = view.per_class("stripes", "colours")
    shown = [
        [int(dialog.confusion.item(i, j).text()) for j in range(dialog.confusion.columnCount())]
        for i in range(dialog.confusion.rowCount())
    ]
    assert shown == expected["confusion"] and dialog.answers.after == "colours"
    assert "unchanged since trained" in " ".join(w.text() for w in dialog.findChildren(QLabel))
    for i in range(2):
        for j in range(2):
            dialog.confusion.cellClicked.emit(i, j)
            answers = view.answers("stripes", "colours")
            assert dialog.gallery.files() == [answers.files[k] for k in answers.cell(i, j)]
    # CLR: nothing changed since the task before, and the buttons say so.
    flips = [b.text() for b in dialog.findChildren(QPushButton) if "→" in b.text()]
    assert flips == ["0 right → wrong", "0 wrong → right"]
    dialog.close()
    window.close()


def test_fine_tune_flips_show_their_images_and_the_report_exports(qtbot, tmp_path, folders, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    window, opened = trained_window(qtbot, tmp_path, folders, monkeypatch, "finetune")
    window.open_drilldown(1, 0)
    dialog = opened[0]
    lost = SavedProject(window.session.folder).flips()[0]["right_to_wrong"]
    button = next(b for b in dialog.findChildren(QPushButton) if "right → wrong" in b.text())
    assert button.text() == f"{len(lost)} right → wrong" and button.isEnabled() == bool(lost)
    if lost:
        button.click()
        assert len(dialog.gallery.files()) == len(lost)
    out = tmp_path / "report.html"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), ""))
    window.export_report_dialog()  # written by a worker thread: the window stays responsive
    qtbot.waitUntil(lambda: "Report written" in window.statusBar().currentMessage(), timeout=30000)
    assert out.exists() and "Forgetting: answers that changed" in out.read_text(encoding="utf-8")
    assert not window.jobs.busy
    dialog.close()
    window.close()
