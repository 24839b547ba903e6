"""The settings form generated from a strategy's config dataclass: one editor per field, labelled and grouped
as setting_views.py says, values given back as the engine's config expects them."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

from clstudio.gui.panels.setting_views import BASIC, SettingView, view_of


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


EDITOR_MIN_WIDTH = 90  # px: a number still reads whole; a long choice shows its start


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
        self.size_note = ""  # e.g. "; 160 for images ≤ 64 px" while the first task can still choose it

    def build(
        self, config_cls: type, values: dict[str, Any], image_size: int | None = None, size_note: str | None = None
    ) -> None:
        if image_size:
            self.image_size = image_size
        if size_note is not None:
            self.size_note = size_note
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
            # Wide editors (choices, "auto (…)" texts) may narrow, so on a small window the form fits its
            # column instead of scrolling sideways. (Wrapped labels would be clipped: QFormLayout does not
            # give them the height they wrap to inside a scroll area.)
            if not isinstance(w, QCheckBox):
                w.setMinimumWidth(min(w.minimumSizeHint().width(), EDITOR_MIN_WIDTH))
            if isinstance(w, QAbstractSpinBox):
                w.lineEdit().setCursorPosition(0)  # a narrowed "auto (…)" shows its start, not its end
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
                spin.setSpecialValueText(view.special.format(size=self.image_size, note=self.size_note))
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
            if view.special:
                short.setSpecialValueText(view.special)
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
        applies = view_of(name).applies
        return name in self._rows and (applies is None or applies(self.values()))

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
