"""SparCL in the app: the strategy is offered, trains through the GUI's worker, and its views fill in:
the layers × tasks sparsity heatmap with FLOPs vs dense, and the Class-IL / Task-IL matrix selector."""

from __future__ import annotations

import numpy as np

from clstudio.engine import events as ev
from clstudio.engine.project import Project

from .test_main_window import add_tasks, train_all

SPARCL_FAST = dict(epochs=3, batch_size=8, lr=0.05, buffer_size=20, augment="none", sparsity=0.8)


def test_sparcl_run_shows_sparsity_heatmap_flops_and_both_matrices(qtbot, tmp_path, folders):
    from clstudio.gui.main_window import MainWindow

    folder = Project.create(tmp_path / "sparcl", strategy="sparcl", backbone="tiny", config=SPARCL_FAST).folder
    window = MainWindow(folder)
    window.confirm_preflight = lambda report: report.name
    window.confirm_close = lambda: True
    qtbot.addWidget(window)
    window.show()
    try:
        strategies = [window.train.strategy.itemData(i) for i in range(window.train.strategy.count())]
        assert strategies[:2] == ["clr", "sparcl"] and {"derpp", "er"} <= set(strategies)
        assert window.train.strategy.currentData() == "sparcl"
        assert window.train.form.values()["sparsity"] == 0.8
        add_tasks(qtbot, window, [folders["stripes"], folders["colours"]])
        events: list = []
        train_all(qtbot, window, events)
        live = [e for e in events if isinstance(e, ev.SparsityUpdated) and e.per_layer]
        assert live and all(0.79 <= v <= 1.0 for _, v in live[-1].per_layer)

        project = Project.open(folder)
        report = project.sparsity_report()
        panel = window.sparsity
        assert panel.stack.currentWidget() is panel.heat_plot
        shown = panel.image.image
        expected = np.array([t["sparsity"] for t in report["tasks"]]).T
        assert shown.shape == (3, 2) and np.allclose(shown, expected)  # every dense conv but the stem, 2 tasks
        assert "fewer" in panel.flops.text()
        # The layer rule in words, and how much of the network the masks reach (the task's measured shares)
        title = panel.title.text()
        assert "every dense conv but the stem" in title and "larger than 1×1" not in title
        assert f"{report['masked_weight_share']:.1%} of the backbone's weights" in title

        matrix = window.matrix
        assert not matrix.scenario.isHidden() and matrix.scenario.currentText() == "Class-IL"
        cil = project.doc["R_class_il"]
        assert matrix.values[1, 0] == cil[1][0] and matrix.values[1, 1] == cil[1][1]
        matrix.scenario.setCurrentText("Task-IL")
        assert matrix.values[1, 0] == project.doc["R"][1][0]

        image = sorted(folders["colours"].rglob("*.png"))[0]
        top = project.classify([image], "colours")[0]["top"]
        assert {c for c, _ in top} <= {"red", "green", "blue"}
    finally:
        window.close()
    assert not window.jobs.busy
