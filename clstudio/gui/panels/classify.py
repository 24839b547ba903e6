"""Try it: drop or open images, pick a task (its classes shown), see the top classes with probability bars.
Runs on the last saved weights, so it works while another task trains."""

from __future__ import annotations

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
    QVBoxLayout,
    QWidget,
)

from clstudio.engine.data.decode import IMAGE_EXTENSIONS
from clstudio.engine.views import ProjectView
from clstudio.gui.panels.preflight import thumbnail


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
        grid.addWidget(QLabel(f"<b>{result['path'].rsplit('/', 1)[-1]}</b>"), 0, 0, 1, 2)
        self.rows: list[tuple[str, float]] = []
        if "error" in result:
            grid.addWidget(QLabel(f"Cannot classify: {result['error']}"), 1, 0, 1, 2)
        for r, (cls, p) in enumerate(result.get("top", []), start=1):
            bar = QProgressBar()
            bar.setRange(0, 1000)
            bar.setValue(int(round(p * 1000)))
            bar.setFormat(f"{p:.1%}")
            grid.addWidget(QLabel(cls), r, 0)
            grid.addWidget(bar, r, 1)
            self.rows.append((cls, p))
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
        self.status = QLabel("Drop images here, or open them, to classify them for the chosen task.")
        self.cards: list[ResultCard] = []
        self.results = QWidget()
        self.results_layout = QVBoxLayout(self.results)
        self.results_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.results)
        top = QHBoxLayout()
        top.addWidget(QLabel("Task"))
        top.addWidget(self.task, 1)
        top.addWidget(self.open)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.classes)
        layout.addWidget(self.status)
        layout.addWidget(scroll, 1)
        self._state: ProjectView | None = None
        self.task.currentIndexChanged.connect(self._task_changed)

    def show_data(self, state: ProjectView) -> None:
        self._state = state
        current = self.task.currentText()
        self.task.blockSignals(True)
        self.task.clear()
        for t in state.trained_tasks():
            self.task.addItem(t["name"])
        if current and self.task.findText(current) >= 0:
            self.task.setCurrentText(current)
        self.task.blockSignals(False)
        self.open.setEnabled(self.task.count() > 0)
        self._task_changed()

    def _task_changed(self) -> None:
        name = self.task.currentText()
        t = self._state.task(name) if self._state and name else None
        self.classes.setText("Classes: " + ", ".join(t["classes"]) if t else "No trained task yet.")

    def _open(self) -> None:
        patterns = " ".join(f"*{e}" for e in sorted(IMAGE_EXTENSIONS))
        paths, _ = QFileDialog.getOpenFileNames(self, "Images to classify", "", f"Images ({patterns})")
        if paths:
            self.request(paths)

    def request(self, paths: list[str]) -> None:
        if not self.task.count():
            self.status.setText("Train a task first: there is nothing to classify with yet.")
            return
        self.status.setText(f"Classifying {len(paths)} image(s) for '{self.task.currentText()}'…")
        self.classify_requested.emit(paths, self.task.currentText())

    def show_results(self, results: list[dict[str, Any]]) -> None:
        for card in self.cards:
            self.results_layout.removeWidget(card)
            card.deleteLater()
        self.cards = [ResultCard(r) for r in results]
        for i, card in enumerate(self.cards):
            self.results_layout.insertWidget(i, card)
        ok = sum("top" in r for r in results)
        self.status.setText(f"{ok} of {len(results)} image(s) classified for '{self.task.currentText()}'.")

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.request(paths)
