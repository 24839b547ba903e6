"""Try it: drop or open images or folders, pick a task — or Auto, which picks the task and says "none of my
tasks" for an image unlike all of them — and see the top classes. A few images show as cards with probability
bars; a folder (or many images) fills a sortable table that exports to CSV. Runs on the last saved weights,
so it works while another task trains."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from clstudio.engine.classify import AUTO
from clstudio.engine.data.decode import IMAGE_EXTENSIONS
from clstudio.engine.errors import CLStudioError
from clstudio.engine.results_csv import write_csv
from clstudio.engine.views import ProjectView
from clstudio.gui.panels.classify_table import ResultsTable
from clstudio.gui.panels.preflight import thumbnail

CARDS_AT_MOST = 12  # more images than this, or any folder, go to the table
NEAR_TIE = 0.1  # top two probabilities closer than this: say the answer is uncertain


def route_text(result: dict[str, Any]) -> str:
    """One line on how the task was chosen, for Auto results."""
    route = result.get("route")
    if route is None:
        return ""
    if result["none_of_my_tasks"]:
        return (
            f"<span style='color:#c0392b'><b>None of my tasks</b></span> — nearest is '{route['nearest']}'; best guess:"
        )
    return f"Task <b>{result['task']}</b> (chosen automatically)"


class ResultCard(QWidget):
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__()
        layout = QHBoxLayout(self)
        image = QLabel()
        pix = thumbnail(result["path"], 112)
        if pix:
            image.setPixmap(pix)
        image.setFixedSize(120, 120)
        image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(image)
        grid = QGridLayout()
        grid.addWidget(QLabel(f"<b>{Path(result['path']).name}</b>"), 0, 0, 1, 2)
        self.route = QLabel(route_text(result))
        grid.addWidget(self.route, 1, 0, 1, 2)
        self.rows: list[tuple[str, float]] = []
        if "error" in result:
            grid.addWidget(QLabel(f"Cannot classify: {result['error']}"), 2, 0, 1, 2)
        top = result.get("top", [])
        for r, (cls, p) in enumerate(top, start=2):
            bar = QProgressBar()
            bar.setRange(0, 1000)
            bar.setValue(int(round(p * 1000)))
            bar.setFormat(f"{p:.1%}")
            grid.addWidget(QLabel(f"<b>{cls}</b>" if r == 2 else cls), r, 0)
            grid.addWidget(bar, r, 1)
            self.rows.append((cls, p))
        if len(top) > 1 and top[0][1] - top[1][1] < NEAR_TIE:
            grid.addWidget(
                QLabel(f"Near tie: '{top[0][0]}' and '{top[1][0]}' are almost as likely."), len(top) + 2, 0, 1, 2
            )
        layout.addLayout(grid, 1)


class ClassifyPanel(QWidget):
    classify_requested = Signal(list, str)

    def __init__(self) -> None:
        super().__init__()
        self.setAcceptDrops(True)
        self.task = QComboBox()
        self.classes = QLabel()
        self.classes.setWordWrap(True)
        self.open = QPushButton("Open images…")
        self.open.clicked.connect(self._open)
        self.open_folder = QPushButton("Open folder…")
        self.open_folder.clicked.connect(self._open_folder)
        self.export_csv = QPushButton("Export CSV…")
        self.export_csv.clicked.connect(self._export_csv)
        self.export_csv.setEnabled(False)
        self.status = QLabel("Drop images or folders here, or open them, to classify them.")
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.cards: list[ResultCard] = []
        self.results = QWidget()
        self.results_layout = QVBoxLayout(self.results)
        self.results_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.results)
        self.table = ResultsTable()
        self.views = QStackedWidget()
        self.views.addWidget(scroll)
        self.views.addWidget(self.table)
        top = QHBoxLayout()
        top.addWidget(QLabel("Task"))
        top.addWidget(self.task, 1)
        for button in (self.open, self.open_folder, self.export_csv):
            top.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.classes)
        layout.addWidget(self.status)
        layout.addWidget(self.progress)
        layout.addWidget(self.views, 1)
        self._state: ProjectView | None = None
        self._as_table = False
        self._had_auto = False
        self.last_results: list[dict[str, Any]] = []
        self.task.currentIndexChanged.connect(self._task_changed)

    # --- the task picker ---------------------------------------------------------------------------------
    def show_data(self, state: ProjectView) -> None:
        self._state = state
        current = self.task.currentData()
        trained = state.trained_tasks()
        auto = len(trained) >= 2 and state.can_route
        self.task.blockSignals(True)
        self.task.clear()
        if auto:
            self.task.addItem("Auto — choose the task for me", AUTO)
        for t in state.tasks:
            if t["trained"]:
                self.task.addItem(t["name"], t["name"])
            elif state.live_model(t["name"]) is not None:
                self.task.addItem(f"{t['name']} — probe model (CLR still training)", t["name"])
        index = self.task.findData(current) if current else -1
        # Auto is the default once there are two tasks to choose from (and stays the person's choice after).
        if auto and not self._had_auto:
            index = 0
        self._had_auto = auto
        self.task.setCurrentIndex(max(index, 0))
        self.task.blockSignals(False)
        for button in (self.open, self.open_folder):
            button.setEnabled(self.task.count() > 0)
        self._task_changed()

    def chosen_task(self) -> str:
        return str(self.task.currentData() or "")

    def _task_changed(self) -> None:
        name = self.chosen_task()
        if not self._state or not name:
            self.classes.setText("No trained task yet.")
        elif name == AUTO:
            self.classes.setText(
                "Each image goes to the task it looks like (by the backbone's features); an image unlike every "
                "task is marked 'none of my tasks'. Tasks: " + ", ".join(self._state.trained_names())
            )
        else:
            self.classes.setText("Classes: " + ", ".join(self._state.task(name)["classes"]))

    # --- asking ------------------------------------------------------------------------------------------
    def _open(self) -> None:
        patterns = " ".join(f"*{e}" for e in sorted(IMAGE_EXTENSIONS))
        paths, _ = QFileDialog.getOpenFileNames(self, "Images to classify", "", f"Images ({patterns})")
        if paths:
            self.request(paths)

    def _open_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A folder of images to classify (subfolders included)")
        if folder:
            self.request([folder])

    def request(self, paths: list[str]) -> None:
        if not self.task.count():
            self.status.setText("Train a task first: there is nothing to classify with yet.")
            return
        self._as_table = len(paths) > CARDS_AT_MOST or any(Path(p).is_dir() for p in paths)
        target = "the task each belongs to" if self.chosen_task() == AUTO else f"'{self.chosen_task()}'"
        self.status.setText(f"Classifying for {target}…")
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.classify_requested.emit(paths, self.chosen_task())

    def show_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.setFormat(f"{done} of {total} images")

    # --- answers -----------------------------------------------------------------------------------------
    def show_results(self, results: list[dict[str, Any]]) -> None:
        self.progress.setVisible(False)
        self.last_results = results
        for card in self.cards:
            self.results_layout.removeWidget(card)
            card.deleteLater()
        self.cards = []
        if self._as_table:
            self.table.show_results(results)
            self.views.setCurrentWidget(self.table)
        else:
            self.cards = [ResultCard(r) for r in results]
            for i, card in enumerate(self.cards):
                self.results_layout.insertWidget(i, card)
            self.views.setCurrentIndex(0)
        self.export_csv.setEnabled(bool(results))
        ok = sum("top" in r for r in results)
        none = sum(bool(r.get("none_of_my_tasks")) for r in results)
        bad = len(results) - ok
        parts = [f"{ok} of {len(results)} image(s) classified"]
        if none:
            parts.append(f"{none} unlike every task")
        if bad:
            parts.append(f"{bad} could not be read")
        self.status.setText("; ".join(parts) + ".")

    def show_failure(self) -> None:
        self.progress.setVisible(False)
        self.status.setText("Classifying failed; see the message.")

    def _export_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export results as CSV", "classified.csv", "CSV (*.csv)")
        if path:
            self.save_csv(path)

    def save_csv(self, path: str) -> None:
        try:
            write_csv(path, self.last_results)
        except CLStudioError as e:
            self.status.setText(str(e))
            return
        self.status.setText(f"Saved {len(self.last_results)} row(s) to {path}.")

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.request(paths)
