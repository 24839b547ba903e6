"""The pre-flight sheet shown before a folder becomes a task: name, classes with counts and a thumbnail,
the split, and every problem found, in words."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from clstudio.engine.data.decode import DecodeError, decode_rgb
from clstudio.engine.data.scan import ScanReport

THUMB = 48


def thumbnail(path: str | Path, size: int = THUMB) -> QPixmap | None:
    """A decoded, upright thumbnail via the engine's decoder (same EXIF/CMYK handling as training)."""
    screen = QGuiApplication.primaryScreen()
    ratio = screen.devicePixelRatio() if screen is not None else 1.0  # 2 on a HiDPI screen: decode 2× the pixels
    try:
        rgb = decode_rgb(path, round(size * ratio))
    except DecodeError:
        return None
    image = QImage(rgb.data, rgb.shape[1], rgb.shape[0], 3 * rgb.shape[1], QImage.Format.Format_RGB888)
    pixmap = QPixmap.fromImage(image.copy())
    pixmap.setDevicePixelRatio(ratio)  # laid out at ``size`` logical pixels, drawn sharp
    return pixmap


class PreflightDialog(QDialog):
    def __init__(self, report: ScanReport, parent=None) -> None:
        super().__init__(parent)
        self.report = report
        self.setWindowTitle(f"Add task from '{report.name}'")
        self.name_edit = QLineEdit(report.name)
        split = "from the train / val / test folders" if report.layout == "split" else "65 / 15 / 20 % of each class"
        held = "held out to measure accuracy" if report.eval_on == "test" else "measure accuracy (and pick the epoch)"
        split_label = QLabel(
            f"{len(report.train)} train, {len(report.val)} to pick the best epoch, {len(report.eval_split)} "
            f"{held} ({split})"
        )
        split_label.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Task name", self.name_edit)
        form.addRow("Folder", QLabel(report.root))
        form.addRow("Images", split_label)
        val_counts = [0] * len(report.classes)
        for _, y in report.val:
            val_counts[y] += 1
        self.table = QTableWidget(len(report.classes), 5)
        self.table.setHorizontalHeaderLabels(["", "Class", "Train", "Pick epoch", "Measure"])
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        first: dict[int, str] = {}
        for rel, y in report.train:
            first.setdefault(y, rel)
        for row, (cls, (n_train, n_eval)) in enumerate(report.counts().items()):
            self.table.setRowHeight(row, THUMB + 6)
            pix = thumbnail(Path(report.root) / first[row]) if row in first else None
            cell = QLabel()
            if pix:
                cell.setPixmap(pix)
            cell.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self.table.setCellWidget(row, 0, cell)
            self.table.setItem(row, 1, QTableWidgetItem(cls))
            self.table.setItem(row, 2, QTableWidgetItem(str(n_train)))
            self.table.setItem(row, 3, QTableWidgetItem(str(val_counts[row])))
            self.table.setItem(row, 4, QTableWidgetItem(str(n_eval)))
        self.table.setColumnWidth(0, THUMB + 12)
        self.problems = QListWidget()
        self.problems.setWordWrap(True)
        for p in report.problems:
            self.problems.addItem(f"Left out {p.path}: {p.reason}")
        for w in report.warnings:
            self.problems.addItem(f"Warning: {w}")
        if report.skipped:
            self.problems.addItem(f"Skipped {len(report.skipped)} hidden, system or non-image entries")
        if not self.problems.count():
            self.problems.addItem("No problems found: every image decodes.")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Add task")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(QLabel(f"<b>{len(report.classes)} classes</b>"))
        layout.addWidget(self.table, 2)
        layout.addWidget(QLabel("<b>Problems and warnings</b>"))
        layout.addWidget(self.problems, 1)
        layout.addWidget(buttons)
        self.resize(620, 560)

    def task_name(self) -> str:
        return self.name_edit.text().strip() or self.report.name
