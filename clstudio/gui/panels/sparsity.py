"""What learning costs. SparCL: a layers × tasks heatmap of weight sparsity (after each task, plus the task
training now, live) with a colour bar, and training FLOPs counted against the dense method. Dense rehearsal
(DER++, ER): the FLOPs it spends. Per-task-parameter strategies (CLR, linear probe, fine-tune): what each
task adds, in bytes and as a percentage of the backbone."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QStackedWidget, QVBoxLayout, QWidget

from clstudio.engine import events as ev
from clstudio.gui import theme


class SparsityPanel(QWidget):
    def __init__(self) -> None:
        super().__init__()
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.flops = QLabel()
        self.flops.setWordWrap(True)
        self.stack = QStackedWidget()
        self.bars_plot = self._plot("% of backbone parameters")
        self.heat_plot = self._plot("")
        self.heat_plot.invertY(True)
        self.heat_plot.setLabel("bottom", "after task")
        self.image = pg.ImageItem(axisOrder="row-major")
        self.heat_plot.addItem(self.image)
        self.colorbar = pg.ColorBarItem(
            values=(0, 1), colorMap=pg.colormap.get("magma"), interactive=False, label="weight sparsity"
        )
        self.colorbar.setImageItem(self.image, insert_in=self.heat_plot.getPlotItem())
        self.stack.addWidget(self.bars_plot)
        self.stack.addWidget(self.heat_plot)
        self.bars: pg.BarGraphItem | None = None
        self.texts: list[pg.TextItem] = []  # cell values of the heatmap
        self.bar_texts: list[pg.TextItem] = []
        self.report: dict[str, Any] | None = None
        self.live: tuple[str, int, dict[str, float], float] | None = None  # task, epoch, layer → sparsity, ratio
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.flops)
        layout.addWidget(self.stack, 1)

    @staticmethod
    def _plot(left: str) -> pg.PlotWidget:
        plot = theme.plot_widget()
        if left:
            plot.setLabel("left", left)
        plot.setMouseEnabled(False, False)
        plot.hideButtons()
        return plot

    def _clear(self) -> None:
        for t in self.texts:
            self.heat_plot.removeItem(t)
        for t in self.bar_texts:
            self.bars_plot.removeItem(t)
        self.texts, self.bar_texts = [], []
        if self.bars is not None:
            self.bars_plot.removeItem(self.bars)
            self.bars = None

    def show_data(self, info: dict[str, Any]) -> None:
        self._clear()
        self.live = None
        if info.get("class_incremental"):
            self.report = info.get("sparsity") or {"layers": [], "tasks": [], "flops_used": 0, "flops_dense": 0}
            self._render_rehearsal(info)
        else:
            self.report = None
            self._render_per_task(info)

    # --- SparCL / DER++ / ER ---------------------------------------------------------------------------------
    def on_event(self, event: ev.Event) -> None:
        """Live column for the task being trained (SparsityUpdated carries plain per-layer values)."""
        if self.report is None or not isinstance(event, ev.SparsityUpdated):
            return
        self.live = (event.task, event.epoch, dict(event.per_layer), event.flops_ratio)
        self._draw_rehearsal()

    def _render_rehearsal(self, info: dict[str, Any]) -> None:
        strategy = info["strategy"]
        assert self.report is not None
        reach = ""
        weights, macs = self.report.get("masked_weight_share"), self.report.get("masked_mac_share")
        if weights is not None and macs is not None:
            reach = f" The masks reach {weights:.1%} of the backbone's weights and {macs:.1%} of its MACs."
        self.title.setText(
            f"<b>Sparsity per masked layer ({strategy}, {info['backbone']})</b> — the fraction of weights masked "
            f"out in each conv SparCL masks: every dense conv but the stem and 1×1 shortcuts; depthwise convs, "
            f"BatchNorm and the head stay dense.{reach}"
        )
        self._draw_rehearsal()

    def _draw_rehearsal(self) -> None:
        assert self.report is not None
        for t in self.texts:
            self.heat_plot.removeItem(t)
        self.texts = []
        layers = list(self.report["layers"])
        columns = [(t["name"], t["sparsity"]) for t in self.report["tasks"]]
        if self.live is not None and self.live[2]:
            task, epoch, per_layer, _ = self.live
            layers = layers or list(per_layer)
            columns.append((f"{task} (epoch {epoch})", [per_layer.get(k, np.nan) for k in layers]))
        used, dense = self.report["flops_used"], self.report["flops_dense"]
        text = ""
        if used:
            text = (
                f"Training FLOPs so far: {used:.3g} counted vs {dense:.3g} for the dense method on the same schedule "
                f"— <b>{dense / used:.2f}× fewer</b>."
            )
        if self.live is not None and self.live[3]:
            text += f"<br>Task training now: {self.live[3]:.2f}× fewer FLOPs than dense so far."
        if not layers:
            self.stack.setCurrentWidget(self.bars_plot)
            self._clear()
            self.flops.setText(
                (text or "Nothing trained yet.")
                + "<br>This strategy trains every weight (no masks), so there is no sparsity to show."
            )
            return
        self.flops.setText(text or "The heatmap fills in as training runs: one column per task.")
        self.stack.setCurrentWidget(self.heat_plot)
        values = np.array([col for _, col in columns], dtype=float).T.reshape(len(layers), len(columns))
        self.image.setImage(values, levels=(0, 1))
        self.image.setLookupTable(pg.colormap.get("magma").getLookupTable(nPts=256))
        self.image.setLevels((0, 1))
        for j in range(len(columns)):
            for i in range(len(layers)):
                if np.isfinite(values[i, j]) and len(layers) <= 24 and len(columns) <= 12:
                    colour = "w" if values[i, j] < 0.7 else "k"
                    label = pg.TextItem(f"{values[i, j]:.3f}", color=colour, anchor=(0.5, 0.5))
                    label.setPos(j + 0.5, i + 0.5)
                    self.heat_plot.addItem(label)
                    self.texts.append(label)
        self.heat_plot.getAxis("bottom").setTicks([[(j + 0.5, name) for j, (name, _) in enumerate(columns)]])
        self.heat_plot.getAxis("left").setTicks([[(i + 0.5, name) for i, name in enumerate(layers)]])
        self.heat_plot.setXRange(0, len(columns), padding=0.02)
        self.heat_plot.setYRange(0, len(layers), padding=0.02)

    # --- CLR, linear probe, fine-tune --------------------------------------------------------------------------
    def _render_per_task(self, info: dict[str, Any]) -> None:
        self.stack.setCurrentWidget(self.bars_plot)
        self.flops.setText("")
        trained = [t for t in info["tasks"] if t["trained"]]
        backbone = info.get("backbone_params") or 1
        shared = info.get("shared_bytes", 0)
        head = f"<b>Per-task cost ({info['strategy']}, {info['backbone']} backbone of {backbone:,} parameters)</b>"
        if shared:
            head += f"<br>All tasks share {shared / 1e6:.1f} MB of weights that every new task changes."
        self.title.setText(head)
        if not trained:
            self.title.setText(head + "<br>Nothing trained yet.")
            return
        pct = [100 * t["trainable_params"] / backbone for t in trained]
        self.bars = pg.BarGraphItem(x=list(range(len(trained))), height=pct, width=0.6, brush=theme.SERIES[0])
        self.bars_plot.addItem(self.bars)
        for i, (t, p) in enumerate(zip(trained, pct, strict=True)):
            text = pg.TextItem(f"{p:.2f} %\n{t['bytes'] / 1024:.0f} KB", color=theme.text(), anchor=(0.5, 1.0))
            text.setPos(i, p)
            self.bars_plot.addItem(text)
            self.bar_texts.append(text)
        self.bars_plot.getAxis("bottom").setTicks([[(i, t["name"]) for i, t in enumerate(trained)]])
        self.bars_plot.setYRange(0, max(pct) * 1.35)
        self.bars_plot.setXRange(-0.6, len(trained) - 0.4)
