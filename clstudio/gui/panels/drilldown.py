"""One number of R opened up: the task's confusion matrix as it was after a given task, its per-class
precision / recall / F1, and a gallery of the images of the chosen confusion cell (thumbnails, file name,
probabilities, open the folder). When the moment is not the first, it also shows which of the task's images
went right → wrong and wrong → right since the task before: the forgetting explorer, one cell at a time.
A view over plain data from the engine (``TaskAnswers``, ``per_class``); it never touches a model."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from clstudio.engine.formatting import format_share
from clstudio.engine.per_class import per_class_scores
from clstudio.engine.views import TaskAnswers
from clstudio.gui.panels.gallery import ImageGallery


class DrillDownDialog(QDialog):
    def __init__(
        self,
        answers: TaskAnswers,
        flips: tuple[list[int], list[int]] | None = None,
        proof: str | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.answers = answers
        self.setWindowTitle(f"{answers.task} — after training {answers.after}")
        counts = answers.confusion()
        readable = sum(1 for p in answers.pred if p >= 0)
        right = sum(counts[c][c] for c in range(len(counts)))
        head = QLabel(
            f"<b>{answers.task}</b>, measured after training <b>{answers.after}</b>: {right} of {readable} "
            f"images right ({right / max(readable, 1):.1%}). Click a cell to see its images."
        )
        head.setWordWrap(True)
        self.confusion = self._confusion_table(counts)
        self.scores = self._scores_table(counts)
        self.gallery = ImageGallery()
        tables = QHBoxLayout()
        tables.addWidget(self.confusion, 3)
        tables.addWidget(self.scores, 2)
        layout = QVBoxLayout(self)
        layout.addWidget(head)
        if proof:
            badge = QLabel(f"Zero-forgetting proof: {proof}")
            badge.setWordWrap(True)
            layout.addWidget(badge)
        layout.addLayout(tables, 2)
        if flips is not None:
            layout.addLayout(self._flip_buttons(*flips))
        layout.addWidget(self.gallery, 3)
        self.resize(900, 720)
        wrong = max(
            ((i, j) for i in range(len(counts)) for j in range(len(counts)) if i != j and counts[i][j]),
            key=lambda ij: counts[ij[0]][ij[1]],
            default=(0, 0),
        )
        self.show_cell(*wrong)  # open on the largest mistake: what a person looks for first

    def _confusion_table(self, counts: list[list[int]]) -> QTableWidget:
        classes = self.answers.classes
        table = QTableWidget(len(classes), len(classes))
        table.setHorizontalHeaderLabels([f"→ {c}" for c in classes])
        table.setVerticalHeaderLabels(classes)
        table.setToolTip("Rows: the true class. Columns: what the model said.")
        highlight = self.palette().highlight().color()
        for i, row in enumerate(counts):
            total = max(sum(row), 1)
            for j, v in enumerate(row):
                item = QTableWidgetItem(str(v))
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                shade = QColor(highlight)
                shade.setAlphaF(0.15 + 0.85 * v / total if v else 0.0)
                item.setBackground(shade)
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                table.setItem(i, j, item)
        table.cellClicked.connect(self.show_cell)
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        return table

    def _scores_table(self, counts: list[list[int]]) -> QTableWidget:
        rows = per_class_scores(counts, self.answers.classes)
        table = QTableWidget(len(rows), 4)
        table.setHorizontalHeaderLabels(["precision", "recall", "F1", "images"])
        table.setVerticalHeaderLabels([r["class"] for r in rows])
        for i, r in enumerate(rows):
            for j, text in enumerate(
                [format_share(r["precision"]), format_share(r["recall"]), format_share(r["f1"]), str(r["support"])]
            ):
                item = QTableWidgetItem(text)
                item.setFlags(Qt.ItemFlag.ItemIsEnabled)
                table.setItem(i, j, item)
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        return table

    def _flip_buttons(self, lost: list[int], gained: list[int]) -> QHBoxLayout:
        row = QHBoxLayout()
        row.addWidget(QLabel("Since the task before:"))
        for label, positions in (("right → wrong", lost), ("wrong → right", gained)):
            button = QPushButton(f"{len(positions)} {label}")
            button.setEnabled(bool(positions))
            button.clicked.connect(lambda _=False, p=positions, t=label: self.show_images(p, f"Images that went {t}"))
            row.addWidget(button)
        row.addStretch(1)
        return row

    def show_cell(self, true_class: int, predicted: int) -> None:
        a = self.answers
        kind = "right" if true_class == predicted else "mistaken for"
        title = f"{a.classes[true_class]}, {kind} {a.classes[predicted]}" if kind != "right" else ""
        self.show_images(a.cell(true_class, predicted), title or f"{a.classes[true_class]}, right")

    def show_images(self, positions: list[int], title: str) -> None:
        self.gallery.show_images(self.answers, positions, title)
