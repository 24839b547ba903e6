"""Model cost per task. For SparCL: a layers × tasks sparsity heatmap and training FLOPs vs dense (the
strategy is not in this version yet, and the panel says so). For per-task-parameter strategies (CLR,
linear probe, fine-tune): what each task adds, in bytes and as a percentage of the backbone."""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget


class SparsityPanel(QWidget):
    def __init__(self) -> None:
        super().__init__()
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setLabel("left", "% of backbone parameters")
        self.plot.setMouseEnabled(False, False)
        self.plot.hideButtons()
        self.bars: pg.BarGraphItem | None = None
        self.texts: list[pg.TextItem] = []
        self.note = QLabel(
            "SparCL's sparsity heatmap (layers × tasks) and FLOPs counter appear here once the "
            "SparCL strategy is available; it is not part of this version yet."
        )
        self.note.setWordWrap(True)
        self.note.setStyleSheet("QLabel { color: #666; }")
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.note)

    def render(self, info: dict[str, Any]) -> None:
        for t in self.texts:
            self.plot.removeItem(t)
        self.texts = []
        if self.bars is not None:
            self.plot.removeItem(self.bars)
            self.bars = None
        trained = [t for t in info["tasks"] if t["trained"]]
        backbone = info.get("backbone_params") or 1
        strategy = info["strategy"]
        shared = info.get("shared_bytes", 0)
        head = f"<b>Per-task cost ({strategy}, {info['backbone']} backbone of {backbone:,} parameters)</b>"
        if shared:
            head += f"<br>All tasks share {shared / 1e6:.1f} MB of weights that every new task changes."
        self.title.setText(head)
        if not trained:
            self.title.setText(head + "<br>Nothing trained yet.")
            return
        pct = [100 * t["trainable_params"] / backbone for t in trained]
        self.bars = pg.BarGraphItem(x=list(range(len(trained))), height=pct, width=0.6, brush="#4c78a8")
        self.plot.addItem(self.bars)
        for i, (t, p) in enumerate(zip(trained, pct, strict=True)):
            text = pg.TextItem(f"{p:.2f} %\n{t['bytes'] / 1024:.0f} KB", color="k", anchor=(0.5, 1.0))
            text.setPos(i, p)
            self.plot.addItem(text)
            self.texts.append(text)
        self.plot.getAxis("bottom").setTicks([[(i, t["name"]) for i, t in enumerate(trained)]])
        self.plot.setYRange(0, max(pct) * 1.35)
        self.plot.setXRange(-0.6, len(trained) - 0.4)
