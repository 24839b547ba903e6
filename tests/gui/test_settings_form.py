"""Issue 16's settings people understand: Basic and a collapsed Advanced, labels with units, "auto (N px)",
short floats, settings that do not apply hidden, and blurbs measured on the project's own backbone."""

from __future__ import annotations

import dataclasses

import pytest
from PySide6.QtWidgets import QLabel

from clstudio.engine.project import Project
from clstudio.engine.strategies import get_strategy_class
from clstudio.engine.views import SavedProject
from clstudio.gui.panels.train import TrainPanel


def _panel(qtbot, strategy: str, image_size: int = 224, blurb: str = "") -> TrainPanel:
    panel = TrainPanel("cpu")
    qtbot.addWidget(panel)
    panel.show_project(strategy, {}, locked=False, image_size=image_size, blurb=blurb)
    return panel


def _label(panel: TrainPanel, name: str) -> str:
    form, w = panel.form._rows[name]
    label = form.labelForField(w)
    assert isinstance(label, QLabel)
    return label.text()


@pytest.mark.parametrize("strategy", ["clr", "sparcl", "linear_probe", "finetune", "derpp", "er"])
def test_every_strategy_reads_in_words_and_round_trips_its_defaults(qtbot, strategy):
    panel = _panel(qtbot, strategy)
    defaults = dataclasses.asdict(get_strategy_class(strategy).Config())
    assert panel.form.values() == pytest.approx(defaults)  # percent and choice editors give engine values back
    for name in defaults:
        assert "_" not in _label(panel, name)  # no raw field names
    assert not panel.form.advanced.isExpanded()  # Advanced starts collapsed
    basic = {n for n, (form, _) in panel.form._rows.items() if form is panel.form.basic}
    assert {"epochs", "lr"} <= basic or strategy == "linear_probe"
    assert not basic & {"num_workers", "cache_mb", "eval_batch_size", "seed"}  # hardware: Advanced


def test_special_values_units_and_short_floats(qtbot):
    panel = _panel(qtbot, "clr", image_size=224)
    ed = panel.form.editors
    assert ed["image_size"][0].text() == "auto (224 px)" and _label(panel, "image_size") == "Image size (px)"
    assert ed["lr"][0].text() == "0.001" and ed["reg_lambda"][0].text() == "1e-05"
    assert ed["num_workers"][0].text() == "none (in the trainer)"
    assert ed["adapter_lr"][0].text() == "same as learning rate"  # 0 means lr: a float's special value says so
    ed["lr"][0].lineEdit().setText("3e-4")
    ed["lr"][0].interpretText()
    assert panel.form.values()["lr"] == pytest.approx(3e-4)
    assert ed["augment"][0].currentText() == "light (crop and flip)" and panel.form.values()["augment"] == "light"


def test_auto_image_size_says_what_small_images_get(qtbot):
    panel = TrainPanel("cpu")
    qtbot.addWidget(panel)
    panel.show_project("clr", {}, locked=False, image_size=224, size_note="; 160 for images ≤ 64 px")
    assert panel.form.editors["image_size"][0].text() == "auto (224 px; 160 for images ≤ 64 px)"
    panel.show_project("clr", {}, locked=True, image_size=160)  # decided by the first task's images
    assert panel.form.editors["image_size"][0].text() == "auto (160 px)"


@pytest.mark.parametrize("strategy", ["sparcl", "clr"])
def test_the_expanded_form_fits_a_small_windows_column_without_scrolling_sideways(qtbot, strategy):
    # At 1280 × 800 the form's column is about 530 px wide; SparCL's Advanced rows (long choices, the
    # "auto (…)" size) used to need 587 and showed a horizontal scroll bar.
    panel = TrainPanel("cpu")
    qtbot.addWidget(panel)
    panel.show_project(strategy, {}, locked=False, image_size=224, size_note="; 160 for images ≤ 64 px")
    panel.show()
    panel.form.advanced.expand()
    qtbot.wait(50)
    assert panel.form.minimumSizeHint().width() <= 480
    for name in ("image_size", "gradient_sparsity") if strategy == "sparcl" else ("image_size",):
        auto = panel.form.editors[name][0]
        assert auto.text().startswith("auto (")
        assert auto.lineEdit().cursorPosition() == 0  # narrowed, it still shows "auto (…" from the start


def test_settings_that_do_not_apply_are_hidden(qtbot):
    panel = _panel(qtbot, "sparcl")
    form = panel.form
    assert form.is_shown("alpha") and not form.is_shown("er_weight")  # DER++ replay: α, β apply; ER's weight not
    replay = form.editors["replay"][0]
    replay.setCurrentIndex(replay.findData("er"))
    assert not form.is_shown("alpha") and form.is_shown("er_weight")
    assert form.editors["sparsity"][0].text() == "75.0 %"
    form.editors["ddr"][0].setChecked(False)
    assert not form.is_shown("ddr_ratio") and form.is_shown("gradient_sparsity")
    assert form.values()["ddr"] is False and form.values()["sparsity"] == pytest.approx(0.75)
    clr = _panel(qtbot, "clr").form
    assert not clr.is_shown("head_warmup")  # replaced by the probe head while that is on
    clr.editors["probe_head"][0].setChecked(False)
    assert clr.is_shown("head_warmup")


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("clr", "Each task adds 9.0% of Tiny CNN"),
        ("linear_probe", "Each task adds only its own linear head"),
        ("finetune", "earlier tasks drift"),
        ("sparcl", "One shared Tiny CNN for every task"),
    ],
)
def test_blurbs_are_measured_on_the_projects_backbone(qtbot, tmp_path, strategy, expected):
    folder = Project.create(tmp_path / strategy, strategy=strategy, backbone="tiny").folder
    view = SavedProject(folder)
    assert expected in view.strategy_blurb()
    panel = _panel(qtbot, strategy, blurb=view.strategy_blurb())
    assert view.strategy_blurb() in panel.strategy_note.text()
    other = "linear_probe" if strategy != "linear_probe" else "clr"
    panel.strategy.setCurrentIndex(panel.strategy.findData(other))
    assert view.strategy_blurb() not in panel.strategy_note.text()  # it describes the project's method only
