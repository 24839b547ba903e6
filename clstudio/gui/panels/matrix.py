"""The accuracy matrix R as a heatmap (rows: after task i, columns: task j), values written in the cells,
fixed colour scale 0-1, and ACC / BWT / forgetting badges whose tooltips give the formulas. One-head
strategies (SparCL, DER++, ER) have two matrices: Task-IL (argmax inside the task's classes) and Class-IL
(argmax over every class seen); a selector switches between them."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from clstudio.engine import metrics
from clstudio.gui import theme


class MatrixPanel(QWidget):
    cell_clicked = Signal(int, int)  # (row: after task i, column: task j) of a filled cell
    proof_requested = Signal()  # the zero-forgetting badge's link: show the proof

    def __init__(self) -> None:
        super().__init__()
        self.plot = theme.plot_widget()
        self.plot.setAspectLocked(False)
        self.plot.invertY(True)
        self.plot.setMouseEnabled(False, False)
        self.plot.hideButtons()
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        self.plot.scene().sigMouseClicked.connect(self._clicked)
        self.colorbar = pg.ColorBarItem(
            values=(0, 1), colorMap=pg.colormap.get("viridis"), interactive=False, label="accuracy"
        )
        self.colorbar.setImageItem(self.image, insert_in=self.plot.getPlotItem())
        self.plot.setLabel("left", "after training task")
        self.plot.setLabel("bottom", "accuracy on task")
        self.texts: list[pg.TextItem] = []
        self.values: np.ndarray = np.zeros((0, 0))
        self.badges = {k: QLabel() for k in ("ACC", "BWT", "forgetting")}
        for key, label in self.badges.items():
            label.setStyleSheet(theme.BADGE)
            label.setToolTip(metrics.FORMULAS[key] or "")
        self.proof_badge = QLabel()
        self.proof_badge.setStyleSheet(theme.BADGE)
        self.proof_badge.setToolTip(
            "Each task's weights and answers, digested when trained, checked after every later task"
        )
        self.proof_badge.linkActivated.connect(lambda _link: self.proof_requested.emit())
        self.proof_badge.hide()
        self.empty = QLabel("The matrix fills in as tasks finish: row i is measured right after task i is learned.")
        self.scenario = QComboBox()
        self.scenario.addItems(["Class-IL", "Task-IL"])
        self.scenario.setToolTip(
            "Class-IL: the model must pick among every class learned so far (harder). "
            "Task-IL: it is told the task and picks among that task's classes."
        )
        self.scenario.currentTextChanged.connect(lambda _: self._draw())
        self.views: dict[str, tuple[list[list[float | None]], dict[str, float | None]]] = {}
        self.names: list[str] = []
        badges = QHBoxLayout()
        for label in self.badges.values():
            badges.addWidget(label)
        badges.addWidget(self.proof_badge)
        badges.addStretch(1)
        badges.addWidget(self.scenario)
        layout = QVBoxLayout(self)
        layout.addLayout(badges)
        layout.addWidget(self.empty)
        layout.addWidget(self.plot, 1)
        self.click_hint = QLabel("Click a cell to open its confusion matrix and images.")
        layout.addWidget(self.click_hint)

    def _clicked(self, event: object) -> None:
        pos = self.plot.getPlotItem().vb.mapSceneToView(event.scenePos())  # type: ignore[attr-defined]
        i, j = int(pos.y()), int(pos.x())
        if 0 <= j <= i < len(self.values) and pos.x() >= 0 and pos.y() >= 0:
            self.cell_clicked.emit(i, j)

    def show_data(
        self,
        names: list[str],
        R: list[list[float | None]],
        summary: dict[str, float | None],
        class_il: tuple[list[list[float | None]], dict[str, float | None]] | None = None,
        proof: dict[str, dict] | None = None,
    ) -> None:
        self.names = names
        self._show_proof(proof or {})
        self.views = {"Task-IL": (R, summary)}
        if class_il is not None:
            self.views["Class-IL"] = class_il
        self.scenario.setVisible(class_il is not None)
        self._draw()

    def _show_proof(self, proof: dict[str, dict]) -> None:
        """A badge for strategies with a zero-forgetting proof: how many earlier tasks were checked unchanged,
        linking to the proof itself (the Forgetting tab)."""
        self.proof_badge.setVisible(bool(proof))
        checked = [p for p in proof.values() if p["unchanged"] is not None]
        changed = [name for name, p in proof.items() if p["unchanged"] is False]
        if changed:
            text = f"<b>Changed since trained:</b> {', '.join(changed)}"
        elif checked:
            text = f"<b>Zero forgetting</b> ✓ {len(checked)} earlier task(s) checked unchanged since trained"
        else:
            text = "<b>Zero forgetting</b>: checked after the next task"
        self.proof_badge.setText(f"{text} · <a href='proof'>proof</a>")

    def _draw(self) -> None:
        names = self.names
        R, summary = self.views.get(self.scenario.currentText()) or self.views["Task-IL"]
        T = len(R)
        self.values = np.array([[np.nan if v is None else v for v in row] for row in R], dtype=float).reshape(T, T)
        for t in self.texts:
            self.plot.removeItem(t)
        self.texts = []
        self.empty.setVisible(T == 0)
        self.click_hint.setVisible(T > 0)
        if T:
            self.image.setImage(self.values, levels=(0, 1))
            self.image.setLookupTable(pg.colormap.get("viridis").getLookupTable(nPts=256))
            self.image.setLevels((0, 1))
            for i in range(T):
                for j in range(T):
                    v = self.values[i, j]
                    if np.isnan(v):
                        continue
                    text = pg.TextItem(f"{v:.1%}", color="w" if v < 0.6 else "k", anchor=(0.5, 0.5))
                    text.setPos(j + 0.5, i + 0.5)
                    self.plot.addItem(text)
                    self.texts.append(text)
            ticks = [(k + 0.5, n) for k, n in enumerate(names)]
            self.plot.getAxis("bottom").setTicks([ticks])
            self.plot.getAxis("left").setTicks([ticks])
            self.plot.setXRange(0, T, padding=0.02)
            self.plot.setYRange(0, T, padding=0.02)
        else:
            self.image.clear()
        for key, label in self.badges.items():
            v = summary.get(key)
            shown = "n/a" if v is None else (f"{v:+.1%}" if key == "BWT" else f"{v:.1%}")
            label.setText(f"<b>{key}</b> {shown}")
