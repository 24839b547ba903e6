"""Colours from the system palette, so plots, badges and labels read on a light and a dark desktop alike.
Series colours (one per task) are Tableau's 10, which stay distinct on both backgrounds; everything else —
plot backgrounds, axes, text, guide lines — comes from the palette at the time a panel is built."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

SERIES = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
BADGE = (
    "QLabel { background: palette(alternate-base); border: 1px solid palette(mid); border-radius: 6px; "
    "padding: 6px 10px; }"
)


def _palette() -> QPalette:
    return QApplication.palette()


def colour(role: QPalette.ColorRole) -> QColor:
    return _palette().color(role)


def text() -> QColor:
    return colour(QPalette.ColorRole.WindowText)


def faint() -> QColor:
    """Guide lines and secondary labels: between the text and the background."""
    return colour(QPalette.ColorRole.Mid)


def is_dark() -> bool:
    return colour(QPalette.ColorRole.Window).lightness() < 128


def plot_widget() -> pg.PlotWidget:
    """A plot on the palette's base colour with axes and labels in its text colour."""
    plot = pg.PlotWidget(background=colour(QPalette.ColorRole.Base))
    for name in ("left", "bottom", "right", "top"):
        axis = plot.getAxis(name)
        axis.setPen(pg.mkPen(faint()))
        axis.setTextPen(pg.mkPen(text()))
    return plot
