"""File ▸ New project…: a name and a place, the backbone (or the person's own ResNet weights file), the
method, its preset and the device, each with a line saying what it means. The dialog only collects plain
choices; the window creates the project in a worker (building a backbone takes seconds)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from clstudio.engine.device import available_devices
from clstudio.engine.models.backbones import list_backbones
from clstudio.engine.strategies.registry import get_strategy_class, list_strategies
from clstudio.gui.panels.setting_views import strategy_title

PRESET_WORDS = {  # what each preset means, in a person's words
    "app": "CL Studio's settings for small folders on an ordinary computer (recommended)",
    "faithful": "the paper's own recipe: slower (60 epochs, no augmentation), for comparing with it",
    "paper": "the SparCL paper's setup: a CIFAR ResNet-18 trained from scratch on 32 px images",
}
OWN_WEIGHTS = ("resnet18", "resnet50")  # backbones that accept a weights file the person already has


@dataclass(frozen=True)
class NewProjectChoice:
    folder: Path
    strategy: str
    backbone: str
    preset: str
    weights_file: str | None
    device: str


class NewProjectDialog(QDialog):
    def __init__(self, parent_folder: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New project")
        self.name = QLineEdit("my-project")
        self.place = QLineEdit(str(parent_folder))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_place)
        place_row = QHBoxLayout()
        place_row.addWidget(self.place, 1)
        place_row.addWidget(browse)
        self.path_note = QLabel()
        self.strategy = QComboBox()
        for name, description in list_strategies().items():
            self.strategy.addItem(strategy_title(description), name)
        self.strategy_note = QLabel()
        self.preset = QComboBox()
        self.preset_note = QLabel()
        self.backbone = QComboBox()
        for name, description in list_backbones().items():
            self.backbone.addItem(description.split(" (")[0], name)
        self.backbone_note = QLabel()
        self.weights = QLineEdit()
        self.weights.setPlaceholderText("your torchvision ResNet weights file (.pth); empty: downloaded once")
        weights_browse = QPushButton("Browse…")
        weights_browse.clicked.connect(self._browse_weights)
        self.weights_row = QWidget()
        weights_layout = QHBoxLayout(self.weights_row)
        weights_layout.setContentsMargins(0, 0, 0, 0)
        weights_layout.addWidget(self.weights, 1)
        weights_layout.addWidget(weights_browse)
        self.device = QComboBox()
        for choice, label in available_devices():
            self.device.addItem(label, choice)
        for note in (self.path_note, self.strategy_note, self.preset_note, self.backbone_note):
            note.setWordWrap(True)
            note.setEnabled(False)  # drawn greyed: an explanation, not a field
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Saved in", place_row)
        form.addRow("", self.path_note)
        form.addRow("Method", self.strategy)
        form.addRow("", self.strategy_note)
        form.addRow("Preset", self.preset)
        form.addRow("", self.preset_note)
        form.addRow("Backbone", self.backbone)
        form.addRow("", self.backbone_note)
        form.addRow("Weights file", self.weights_row)
        form.addRow("Train on", self.device)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Create")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.buttons)
        self.form = form
        self.strategy.currentIndexChanged.connect(self._strategy_changed)
        self.preset.currentIndexChanged.connect(self._preset_changed)
        self.backbone.currentIndexChanged.connect(self._update)
        self.name.textChanged.connect(self._update)
        self.place.textChanged.connect(self._update)
        self.weights.textChanged.connect(self._update)
        self._strategy_changed()
        self.setMinimumWidth(640)

    def choice(self) -> NewProjectChoice:
        weights = self.weights.text().strip() if self.backbone.currentData() in OWN_WEIGHTS else ""
        return NewProjectChoice(
            folder=self.folder(),
            strategy=self.strategy.currentData(),
            backbone=self.backbone.currentData(),
            preset=self.preset.currentData(),
            weights_file=weights or None,
            device=self.device.currentData(),
        )

    def folder(self) -> Path:
        return Path(self.place.text().strip()).expanduser() / self.name.text().strip()

    def problem(self) -> str | None:
        """Why Create is disabled, in words; None when the choice can be created."""
        name = self.name.text().strip()
        if not name:
            return "Give the project a name."
        if re.search(r'[\\/:*?"<>|]', name):
            return 'A name cannot hold any of \\ / : * ? " < > |'
        folder = self.folder()
        if (folder / "project.json").exists():
            return f"{folder} is a project already: open it with File ▸ Open project…"
        if folder.exists() and any(folder.iterdir()):
            return f"{folder} exists and is not empty: choose another name."
        weights = self.weights.text().strip()
        if self.backbone.currentData() in OWN_WEIGHTS and weights and not Path(weights).expanduser().is_file():
            return f"No weights file at {weights}."
        return None

    def _strategy_changed(self) -> None:
        cls = get_strategy_class(self.strategy.currentData())
        self.strategy_note.setText(cls.description)
        self.preset.blockSignals(True)
        self.preset.clear()
        for name in sorted(cls.PRESETS, key=lambda n: n != "app"):  # the app's preset first: the default
            self.preset.addItem(name, name)
        self.preset.blockSignals(False)
        self._preset_changed()

    def _preset_changed(self) -> None:
        cls = get_strategy_class(self.strategy.currentData())
        preset = self.preset.currentData() or "app"
        self.preset_note.setText(PRESET_WORDS.get(preset, ""))
        implied = cls.preset_backbone(preset)
        if implied:
            self.backbone.setCurrentIndex(self.backbone.findData(implied))
        self._update()

    def _update(self) -> None:
        backbone = self.backbone.currentData()
        self.backbone_note.setText(list_backbones()[backbone])
        self.form.setRowVisible(self.weights_row, backbone in OWN_WEIGHTS)
        problem = self.problem()
        self.path_note.setText(problem or f"The project will be the folder {self.folder()}")
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(problem is None)
        self.adjustSize()  # the notes change length: the dialog grows rather than clipping them

    def _browse_place(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Where to save the project", self.place.text())
        if folder:
            self.place.setText(folder)

    def _browse_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "ResNet weights file", "", "PyTorch weights (*.pth *.pt)")
        if path:
            self.weights.setText(path)
