"""Issue 14 in the app: a click on a cell of R opens that task's confusion matrix as evaluated then, a click
on a confusion cell shows its images; the flips since the task before; File ▸ Export report…; all from a
project reopened from disk."""

from __future__ import annotations

from PySide6.QtCore import QPointF, Qt

from clstudio.engine.project import Project
from clstudio.engine.views import SavedProject

from .conftest import FAST


def _trained_window(qtbot, tmp_path, folders, monkeypatch, strategy="clr"):
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


def _click_cell(qtbot, window, row: int, col: int) -> None:
    plot = window.matrix.plot
    scene = plot.getPlotItem().vb.mapViewToScene(QPointF(col + 0.5, row + 0.5))
    qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=plot.mapFromScene(scene))


def test_clicking_R_opens_the_confusion_matrix_then_the_images(qtbot, tmp_path, folders, monkeypatch):
    window, opened = _trained_window(qtbot, tmp_path, folders, monkeypatch)
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
    assert "unchanged since trained" in " ".join(w.text() for w in dialog.findChildren(type(dialog.caption)))
    for i in range(2):
        for j in range(2):
            dialog.confusion.cellClicked.emit(i, j)
            assert dialog.gallery.count() == expected["confusion"][i][j]
            files = [dialog.gallery.item(k).data(Qt.ItemDataRole.UserRole) for k in range(dialog.gallery.count())]
            answers = view.answers("stripes", "colours")
            assert files == [answers.files[k] for k in answers.cell(i, j)]
    # CLR: nothing changed since the task before, and the buttons say so.
    flips = [b.text() for b in dialog.findChildren(type(dialog.open_button)) if "→" in b.text()]
    assert flips == ["0 right → wrong", "0 wrong → right"]
    dialog.close()
    window.close()


def test_fine_tune_flips_show_their_images_and_the_report_exports(qtbot, tmp_path, folders, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    window, opened = _trained_window(qtbot, tmp_path, folders, monkeypatch, "finetune")
    window.open_drilldown(1, 0)
    dialog = opened[0]
    lost = SavedProject(window.session.folder).flips()[0]["right_to_wrong"]
    button = next(b for b in dialog.findChildren(type(dialog.open_button)) if "right → wrong" in b.text())
    assert button.text() == f"{len(lost)} right → wrong" and button.isEnabled() == bool(lost)
    if lost:
        button.click()
        assert dialog.gallery.count() == len(lost)
    out = tmp_path / "report.html"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), ""))
    window.export_report_dialog()
    assert out.exists() and "Forgetting: answers that changed" in out.read_text(encoding="utf-8")
    assert "Report written" in window.statusBar().currentMessage()
    dialog.close()
    window.close()
