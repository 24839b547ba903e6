"""Strategy picker, a settings form generated from the strategy's config dataclass, and the run controls
with progress, images/s and ETA."""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

from clstudio.engine import events as ev
from clstudio.engine.formatting import format_duration, format_loss
from clstudio.engine.strategies import get_strategy_class, list_strategies
from clstudio.gui.panels.setting_views import BASIC, SettingView, strategy_title, view_of


class ShortFloatSpinBox(QDoubleSpinBox):
    """A float in its shortest exact form (0.5, 0.001, 1e-05): a learning rate reads as people write it."""

    def __init__(self) -> None:
        super().__init__()
        self.setDecimals(12)  # the shown text is textFromValue's; this only keeps small values exact
        self.setRange(0.0, 1e3)

    def textFromValue(self, value: float) -> str:  # noqa: N802 - Qt override
        return f"{value:g}"

    def valueFromText(self, text: str) -> float:  # noqa: N802 - Qt override
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int) -> tuple[QValidator.State, str, int]:
        try:
            float(text)
        except ValueError:
            ok = text in ("", ".", "-") or text.lower().endswith(("e", "e-", "e+"))
            return (QValidator.State.Intermediate if ok else QValidator.State.Invalid, text, pos)
        return (QValidator.State.Acceptable, text, pos)


class ConfigForm(QWidget):
    """One editor per config field, labelled in words with units (setting_views.py): the Basic ones first,
    the rest (hardware and rarely touched) under a collapsed Advanced; a setting that does not apply with
    the others as they are is hidden. Tooltips are the fields' help texts."""

    changed = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.basic = QFormLayout()
        self.advanced_form = QFormLayout()
        advanced_body = QWidget()
        advanced_body.setLayout(self.advanced_form)
        self.advanced = QCollapsible("Advanced settings", expandedIcon="▼", collapsedIcon="▶")
        self.advanced.addWidget(advanced_body)
        self.advanced.setDuration(0)  # no animation: the form is inside a scroll area
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self.basic)
        layout.addWidget(self.advanced)
        layout.addStretch(1)
        self.editors: dict[str, tuple[QWidget, type]] = {}
        self._rows: dict[str, tuple[QFormLayout, QWidget]] = {}
        self.image_size = 224  # the backbone's own input size: what "auto" means for image_size

    def build(self, config_cls: type, values: dict[str, Any], image_size: int | None = None) -> None:
        if image_size:
            self.image_size = image_size
        for form in (self.basic, self.advanced_form):
            while form.rowCount():
                form.removeRow(0)
        self.editors.clear()
        self._rows.clear()
        for f in dataclasses.fields(config_cls):
            view = view_of(f.name)
            w = self._editor(f, view, values.get(f.name, f.default))
            help_text = f.metadata.get("help", "")
            w.setToolTip(help_text)
            label = QLabel(view.label)
            label.setToolTip(help_text)
            form = self.basic if view.group == BASIC else self.advanced_form
            form.addRow(label, w)
            self.editors[f.name] = (w, type(f.default))
            self._rows[f.name] = (form, w)
        self._apply_visibility()

    def _editor(self, f: dataclasses.Field, view: SettingView, value: Any) -> QWidget:
        kind = type(f.default)
        choices = f.metadata.get("choices") or ()
        w: QWidget
        if kind is bool:
            box = QCheckBox()
            box.setChecked(bool(value))
            box.toggled.connect(self._changed)
            return box
        if kind is int:
            spin = QSpinBox()
            spin.setRange(0, 1_000_000)
            if view.special:
                spin.setSpecialValueText(view.special.format(size=self.image_size))
            spin.setValue(int(value))
            spin.valueChanged.connect(self._changed)
            return spin
        if kind is float and view.percent:
            pct = QDoubleSpinBox()
            pct.setRange(0.0, 100.0)
            pct.setDecimals(1)
            pct.setSuffix(" %")
            if view.special:
                pct.setSpecialValueText(view.special)
            pct.setValue(float(value) * 100)
            pct.valueChanged.connect(self._changed)
            return pct
        if kind is float:
            short = ShortFloatSpinBox()
            if value:
                short.setSingleStep(10 ** math.floor(math.log10(abs(value))))
            short.setValue(float(value))
            short.valueChanged.connect(self._changed)
            return short
        if choices:
            combo = QComboBox()
            for choice in choices:
                combo.addItem(view.choices.get(choice, choice), choice)
            combo.setCurrentIndex(max(0, combo.findData(str(value))))
            combo.currentIndexChanged.connect(self._changed)
            return combo
        w = QLineEdit(str(value))
        w.textChanged.connect(self._changed)
        return w

    def _changed(self, *_args: Any) -> None:
        self._apply_visibility()
        self.changed.emit()

    def _apply_visibility(self) -> None:
        values = self.values()
        for name, (form, w) in self._rows.items():
            applies = view_of(name).applies
            form.setRowVisible(w, applies is None or applies(values))
        self.advanced.setVisible(self.advanced_form.rowCount() > 0)

    def is_shown(self, name: str) -> bool:
        """Whether a setting's row is shown (in Basic, or in Advanced when it is expanded)."""
        form, w = self._rows[name]
        applies = view_of(name).applies
        return applies is None or applies(self.values())

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, (w, kind) in self.editors.items():
            if isinstance(w, QCheckBox):
                out[name] = w.isChecked()
            elif isinstance(w, QSpinBox):
                out[name] = w.value()
            elif isinstance(w, QDoubleSpinBox):
                out[name] = w.value() / 100 if view_of(name).percent else w.value()
            elif isinstance(w, QComboBox):
                out[name] = w.currentData()
            elif isinstance(w, QLineEdit):
                out[name] = kind(w.text()) if kind in (int, float, str) else w.text()
        return out

    def set_enabled(self, enabled: bool) -> None:
        for w, _ in self.editors.values():
            w.setEnabled(enabled)


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
        self.status = QLabel("Idle")
        self.status.setWordWrap(True)
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
        self, strategy: str, config: dict[str, Any], locked: bool, image_size: int | None = None, blurb: str = ""
    ) -> None:
        """``blurb``: what each task costs on the project's backbone (engine views), for ``strategy``."""
        self._locked = locked
        self._project_strategy, self._blurb = strategy, blurb
        self.strategy.blockSignals(True)
        self.strategy.setCurrentIndex(max(0, self.strategy.findData(strategy)))
        self.strategy.blockSignals(False)
        self.form.build(get_strategy_class(strategy).Config, config, image_size)
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
            self.task_bar.setRange(0, e.epochs * max(e.steps, 1))
            self.task_bar.setValue(0)
            self.epoch_bar.setRange(0, max(e.steps, 1))
            self.epoch_bar.setValue(0)
            self.status.setText(f"Training '{e.task}' on {e.device}…")
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
        elif isinstance(e, ev.TaskResumed):
            self.status.setText(f"Continuing '{e.task}' after epoch {e.from_epoch} (it was interrupted).")
            self.task_bar.setValue(e.from_epoch * max(self._steps, 1))
            self._epochs_before = e.from_epoch
        elif isinstance(e, ev.Paused):
            self.status.setText(f"Paused '{e.task}'. The model stays loaded; Resume continues from this batch.")
        elif isinstance(e, ev.Cancelled):
            self.status.setText(f"Cancelled '{e.task}': it stays untrained; earlier tasks are kept.")
