"""Strategy picker, a settings form generated from the strategy's config dataclass, and the run controls
with progress, images/s and ETA."""

from __future__ import annotations

import time
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from clstudio.engine import events as ev
from clstudio.engine.formatting import format_duration, format_loss
from clstudio.engine.strategies import get_strategy_class, list_strategies
from clstudio.gui import theme
from clstudio.gui.panels.config_form import ConfigForm
from clstudio.gui.panels.setting_views import strategy_title


class TrainPanel(QWidget):
    start_requested = Signal(str, dict)
    pause_requested = Signal(bool)  # True = pause, False = resume
    cancel_requested = Signal()

    def __init__(self, device: str) -> None:
        super().__init__()
        self.strategy = QComboBox()
        for name, desc in list_strategies().items():
            self.strategy.addItem(strategy_title(desc), name)
            self.strategy.setItemData(self.strategy.count() - 1, desc, 3)  # Qt.ToolTipRole
        self.strategy_note = QLabel()
        self.strategy_note.setWordWrap(True)
        self.form = ConfigForm()
        self.device = QLabel(f"Device: {device}")
        self.start = QPushButton("Start training")
        self.pause = QPushButton("Pause")
        self.pause.setCheckable(True)
        self.cancel = QPushButton("Cancel")
        # The keys of a run in IDEs: F5 starts, F6 pauses / resumes, Shift+F5 stops. The window binds them,
        # so they work from every tab (a button's own shortcut works only while it is visible).
        self.keys = {"F5": self.start, "F6": self.pause, "Shift+F5": self.cancel}
        for key, button in self.keys.items():
            button.setToolTip(f"{button.text()} ({key})")
        self.start_hint = QLabel()  # why Start is greyed out, in words
        self.start_hint.setWordWrap(True)
        self.start_hint.setEnabled(False)
        self.task_bar = QProgressBar()
        self.epoch_bar = QProgressBar()
        # The task's validation accuracy per epoch, live: the Train tab shows whether training is going
        # anywhere without switching to the curves.
        self.mini = theme.plot_widget()
        self.mini.setFixedHeight(150)
        self.mini.setYRange(0, 1.02)
        self.mini.setMouseEnabled(False, False)
        self.mini.hideButtons()
        self.mini.setLabel("left", "val acc")
        self.mini.setLabel("bottom", "epoch")
        self.mini_curve = self.mini.plot([], [], pen=pg.mkPen(theme.SERIES[0], width=2), symbol="o", symbolSize=5)
        self._mini: list[tuple[int, float]] = []
        self.mini.hide()  # shown from the first epoch of a run: an empty plot says nothing
        self.status = QLabel("Idle")
        self.status.setWordWrap(True)
        # Which model of the task in training Classify uses: the probe while CLR trains, then the winner.
        self.live = QLabel()
        self.live.setWordWrap(True)
        self.live.setVisible(False)
        self._live_acc: float | None = None
        self._locked = False
        self._running = False
        self._project_strategy, self._blurb = "", ""
        self._task_started = 0.0
        self._steps = 1
        self._epochs_before = 0  # epochs done before this run of the task (a resumed task)

        top = QGroupBox("Strategy")
        tl = QVBoxLayout(top)
        tl.addWidget(self.strategy)
        tl.addWidget(self.strategy_note)
        # SparCL has 26 settings: the form scrolls rather than squeezing its rows on a small window.
        scroll = QScrollArea()
        scroll.setWidget(self.form)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        tl.addWidget(scroll, 1)
        run = QGroupBox("Run")
        rl = QVBoxLayout(run)
        buttons = QHBoxLayout()
        for b in (self.start, self.pause, self.cancel):
            buttons.addWidget(b)
        rl.addWidget(self.device)
        rl.addLayout(buttons)
        rl.addWidget(self.start_hint)
        rl.addWidget(QLabel("Epoch"))
        rl.addWidget(self.epoch_bar)
        rl.addWidget(QLabel("Task"))
        rl.addWidget(self.task_bar)
        rl.addWidget(self.status)
        rl.addWidget(self.live)
        rl.addWidget(self.mini)
        rl.addStretch(1)
        layout = QHBoxLayout(self)
        layout.addWidget(top, 3)
        layout.addWidget(run, 2)

        self.strategy.currentIndexChanged.connect(self._strategy_changed)
        self.start.clicked.connect(lambda: self.start_requested.emit(self.strategy.currentData(), self.form.values()))
        self.pause.toggled.connect(self._pause_toggled)
        self.cancel.clicked.connect(self.cancel_requested)
        self.set_running(False)

    def show_project(
        self,
        strategy: str,
        config: dict[str, Any],
        locked: bool,
        image_size: int | None = None,
        blurb: str = "",
        size_note: str = "",
    ) -> None:
        """``blurb``: what each task costs on the project's backbone (engine views), for ``strategy``;
        ``size_note``: what 'auto' image size may still become (the first task's images decide it)."""
        self._locked = locked
        self._project_strategy, self._blurb = strategy, blurb
        self.strategy.blockSignals(True)
        self.strategy.setCurrentIndex(max(0, self.strategy.findData(strategy)))
        self.strategy.blockSignals(False)
        self.form.build(get_strategy_class(strategy).Config, config, image_size, size_note)
        self._apply_lock()

    def _strategy_changed(self) -> None:
        name = self.strategy.currentData()
        self.form.build(get_strategy_class(name).Config, {})
        self._apply_lock()

    def _apply_lock(self) -> None:
        editable = not self._locked and not self._running
        self.strategy.setEnabled(editable)
        self.form.set_enabled(editable)
        name = self.strategy.currentData()
        desc = list_strategies()[name]
        blurb = f" {self._blurb}" if self._blurb and name == self._project_strategy else ""
        note = " Fixed: this project has trained tasks (File ▸ New project… to change)." if self._locked else ""
        self.strategy_note.setText(desc + blurb + note)

    def set_running(self, running: bool, can_start: bool = True, why_not: str = "") -> None:
        """``why_not``: what the person must do before Start can be pressed (shown under the buttons)."""
        self._running = running
        self.start.setEnabled(not running and can_start)
        self.start_hint.setText("" if self.start.isEnabled() or running else why_not)
        self.start_hint.setVisible(bool(self.start_hint.text()))
        self.pause.setEnabled(running)
        self.cancel.setEnabled(running)
        if not running:
            self.pause.blockSignals(True)
            self.pause.setChecked(False)
            self.pause.setText("Pause")
            self.pause.blockSignals(False)
        self._apply_lock()

    def _pause_toggled(self, paused: bool) -> None:
        self.pause.setText("Resume" if paused else "Pause")
        self.pause_requested.emit(paused)

    def on_event(self, e: ev.Event) -> None:
        if isinstance(e, ev.TaskStarted):
            self._task_started = time.monotonic()
            self._epochs, self._steps = e.epochs, e.steps
            self._epochs_before = 0
            self._mini = []
            self.mini_curve.setData([], [])
            self.mini.setXRange(0, max(e.epochs, 1))
            self.task_bar.setRange(0, e.epochs * max(e.steps, 1))
            self.task_bar.setValue(0)
            self.epoch_bar.setRange(0, max(e.steps, 1))
            self.epoch_bar.setValue(0)
            self.status.setText(f"Training '{e.task}' on {e.device}…")
            self.live.setVisible(False)
            self._live_acc = None
        elif isinstance(e, ev.ModelLive):
            self._live_acc = e.val_acc
            self.live.setText(
                f"✓ A first model of '{e.task}' is ready after {format_duration(e.seconds)} (a linear probe, val "
                f"acc {e.val_acc:.1%}): try it in Classify now. CLR keeps training and replaces it only if it "
                "does clearly better on the validation images."
            )
            self.live.setVisible(True)
        elif isinstance(e, ev.StepProgress):
            self.epoch_bar.setRange(0, e.steps)
            self.epoch_bar.setValue(e.step)
            self.task_bar.setValue((e.epoch - 1) * e.steps + e.step)
            epoch_eta = (e.steps - e.step) * e.eta_s / max(1, self.task_bar.maximum() - self.task_bar.value())
            if e.step == e.steps:  # the epoch's last batch: validation runs now, with no step events
                self.epoch_bar.setRange(0, 0)  # a busy bar, not a full one that seems stuck
                self.status.setText(
                    f"'{e.task}': epoch {e.epoch} · evaluating on the validation images… · "
                    f"task ETA {format_duration(e.eta_s)}"
                )
                return
            self.status.setText(
                f"'{e.task}': epoch {e.epoch}, step {e.step}/{e.steps} · loss {format_loss(e.loss)} · "
                f"{e.images_per_s:.0f} images/s · epoch ETA {format_duration(epoch_eta)} · "
                f"task ETA {format_duration(e.eta_s)}"
            )
        elif isinstance(e, ev.EpochEnded):
            self._mini.append((e.epoch, e.val_acc))
            self.mini.show()
            self.mini_curve.setData([x for x, _ in self._mini], [y for _, y in self._mini])
            self.epoch_bar.setRange(0, max(self._steps, 1))
            self.epoch_bar.setValue(self.epoch_bar.maximum())
            # The ETA stays on screen between epochs: the time per epoch so far, times the epochs left.
            per_epoch = (time.monotonic() - self._task_started) / max(e.epoch - self._epochs_before, 1)
            self.status.setText(
                f"'{e.task}': epoch {e.epoch}/{e.epochs} done · val acc {e.val_acc:.1%} (best {e.best_val_acc:.1%}, "
                f"epoch {e.best_epoch}) · task ETA {format_duration(per_epoch * (e.epochs - e.epoch))}"
            )
        elif isinstance(e, ev.TaskFinished):
            self.task_bar.setValue(self.task_bar.maximum())
            self.status.setText(
                f"Finished '{e.task}' in {format_duration(e.seconds)} · best val acc {e.best_val_acc:.1%}"
            )
            if self.live.isVisible() and self._live_acc is not None:
                self.live.setText(
                    f"The probe model stayed (val acc {self._live_acc:.1%}): no CLR epoch beat it clearly on the "
                    "validation images."
                    if e.best_epoch == 0
                    else f"CLR replaced the probe model: val acc {self._live_acc:.1%} → {e.best_val_acc:.1%}"
                    + (" (the same accuracy at a lower validation loss)." if e.best_val_acc == self._live_acc else ".")
                )
        elif isinstance(e, ev.TaskResumed):
            self.status.setText(f"Continuing '{e.task}' after epoch {e.from_epoch} (it was interrupted).")
            self.task_bar.setValue(e.from_epoch * max(self._steps, 1))
            self._epochs_before = e.from_epoch
        elif isinstance(e, ev.Paused):
            self.status.setText(f"Paused '{e.task}'. The model stays loaded; Resume continues from this batch.")
        elif isinstance(e, ev.Cancelled):
            self.status.setText(f"Cancelled '{e.task}': it stays untrained; earlier tasks are kept.")
