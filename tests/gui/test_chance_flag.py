"""A task the model learned nothing of is flagged in the task list, not ticked (issue 13): its accuracy after
training sits within two standard errors of guessing."""

from __future__ import annotations

import numpy as np
from PIL import Image

from clstudio.engine.project import Project
from clstudio.gui.panels.tasks import TasksPanel
from clstudio.gui.session import SavedProject


def _noise_task(root, classes=("a", "b", "c"), per_class=30):
    rng = np.random.default_rng(5)
    for cls in classes:
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    return root


def test_a_task_at_chance_is_flagged_and_a_learned_one_ticked(qtbot, tmp_path, folders):
    # The linear probe: on the tiny random backbone it learns colours in seconds (CLR needs more steps).
    project = Project.create(tmp_path / "p", "linear_probe", backbone="tiny")
    project.add_task(folders["colours"])
    project.add_task(_noise_task(tmp_path / "noise"))
    project.train_pending()
    view = SavedProject(project.folder)
    weak = view.near_chance_when_trained()
    assert list(weak) == ["noise"] and weak["noise"] < 0.6
    panel = TasksPanel()
    qtbot.addWidget(panel)
    panel.show_data(view)
    colours, noise = (panel.list.item(i) for i in range(2))
    assert "✓ trained" in colours.text()
    assert "✓" not in noise.text() and "near chance" in noise.text() and "guessing: 33%" in noise.text()
    assert "learned nothing usable" in noise.toolTip()
