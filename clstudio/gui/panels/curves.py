"""Accuracy per task over the whole stream (one curve per task, task boundaries marked) and the loss of
the task being trained. One PlotDataItem per task, updated with setData."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from clstudio.gui import theme
from clstudio.gui.session import Curves


class CurvesPanel(QWidget):
    def __init__(self) -> None:
        super().__init__()
        self.acc = theme.plot_widget()
        self.acc.setLabel("left", "accuracy")
        self.acc.setLabel("bottom", "epochs, across all tasks")
        self.acc.setYRange(0, 1.02)
        self.acc.showGrid(x=True, y=True, alpha=0.2)
        self.legend = self.acc.addLegend(
            offset=(-10, -10), labelTextColor=theme.text()
        )  # bottom right: boundary labels sit at the top
        self.loss = theme.plot_widget()
        self.loss.setLabel("left", "train loss")
        self.loss.setLabel("bottom", "epoch of the current task")
        self.loss.showGrid(x=True, y=True, alpha=0.2)
        self.loss_item = self.loss.plot([], [], pen=pg.mkPen(theme.text(), width=2), symbol="o", symbolSize=5)
        self.items: dict[str, pg.PlotDataItem] = {}
        self.lines: list[pg.InfiniteLine] = []
        layout = QVBoxLayout(self)
        layout.addWidget(
            QLabel(
                "<b>Accuracy per task</b> — validation during a task's own training, then its "
                "evaluation after every later task. Flat lines mean nothing was forgotten."
            )
        )
        layout.addWidget(self.acc, 3)
        layout.addWidget(self.loss, 2)

    def show_data(self, curves: Curves) -> None:
        for task in list(self.items):
            if task not in curves.points:
                self.acc.removeItem(self.items.pop(task))
                self.legend.removeItem(task)
        for i, (task, pts) in enumerate(curves.points.items()):
            if task not in self.items:
                color = theme.SERIES[i % len(theme.SERIES)]
                self.items[task] = self.acc.plot(
                    [],
                    [],
                    name=task,
                    pen=pg.mkPen(color, width=2),
                    symbol="o",
                    symbolSize=5,
                    symbolBrush=color,
                    symbolPen=color,
                )
            self.items[task].setData([x for x, _ in pts], [y for _, y in pts])
        for line in self.lines:
            self.acc.removeItem(line)
        self.lines = []
        for x, task in curves.boundaries:
            line = pg.InfiniteLine(
                pos=x,
                angle=90,
                pen=pg.mkPen(theme.faint(), style=pg.QtCore.Qt.DashLine),
                label=f"end of {task}",
                labelOpts={"position": 0.97, "color": theme.text(), "anchors": [(1, 0), (1, 0)]},
            )
            self.acc.addItem(line)
            self.lines.append(line)
        self.loss_item.setData([x for x, _ in curves.loss], [y for _, y in curves.loss])

    def task_curve(self, task: str) -> tuple[list[float], list[float]]:
        """The plotted (x, y) of one task's curve, for tests."""
        x, y = self.items[task].getData()
        return list(x), list(y)
