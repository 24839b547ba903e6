"""Many images at once (a dropped folder): one sortable row per image, exportable to CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTableWidget, QTableWidgetItem

from clstudio.engine.results_csv import csv_rows

COLUMNS = ("Image", "Folder", "Task", "Top class", "Probability", "Runner-up", "Note")


class _Number(QTableWidgetItem):
    """Sorts by value, not by the text it shows."""

    def __init__(self, value: float | None, text: str) -> None:
        super().__init__(text)
        self.value = -1.0 if value is None else value

    def __lt__(self, other: QTableWidgetItem) -> bool:
        return self.value < getattr(other, "value", -1.0)


class ResultsTable(QTableWidget):
    def __init__(self) -> None:
        super().__init__(0, len(COLUMNS))
        self.setHorizontalHeaderLabels(COLUMNS)
        self.setSortingEnabled(True)
        self.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.verticalHeader().setVisible(False)
        self.horizontalHeader().setStretchLastSection(True)
        self.results: list[dict[str, Any]] = []

    def show_results(self, results: list[dict[str, Any]]) -> None:
        self.results = results
        self.setSortingEnabled(False)  # filling a sorted table moves rows under the loop
        self.setRowCount(len(results))
        for row, (r, flat) in enumerate(zip(results, csv_rows(results), strict=True)):
            top = r.get("top", [])
            path = Path(r["path"])
            second = f"{top[1][0]} ({top[1][1]:.0%})" if len(top) > 1 else ""
            if "error" in r:
                note = f"cannot read: {r['error']}"
            elif r.get("none_of_my_tasks"):
                note = f"none of my tasks (nearest: {r['route']['nearest']})"
            elif len(top) > 1 and top[0][1] - top[1][1] < 0.1:
                note = "near tie"
            else:
                note = ""
            cells = [
                QTableWidgetItem(path.name),
                QTableWidgetItem(str(path.parent)),
                QTableWidgetItem(flat["task"] or ("—" if "top" in r else "")),
                QTableWidgetItem(flat["top_class"]),
                _Number(top[0][1] if top else None, f"{top[0][1]:.1%}" if top else ""),
                QTableWidgetItem(second),
                QTableWidgetItem(note),
            ]
            cells[0].setToolTip(str(path))
            cells[0].setData(Qt.ItemDataRole.UserRole, str(path))
            for col, item in enumerate(cells):
                self.setItem(row, col, item)
        self.setSortingEnabled(True)
        self.resizeColumnsToContents()

    def column_values(self, column: str) -> list[str]:
        """The cells of one column, top to bottom as shown (after any sort)."""
        c = COLUMNS.index(column)
        return [item.text() if (item := self.item(r, c)) else "" for r in range(self.rowCount())]
