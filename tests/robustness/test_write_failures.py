"""Every write of project state is atomic: a failure injected at each write site in turn leaves a project
that opens in its last good state, says what went wrong, and finishes the same when run again."""

from __future__ import annotations

import os

import pytest

from clstudio.engine import storage
from clstudio.engine.data.synthetic import make_task_folder
from clstudio.engine.errors import ProjectError, StorageError
from clstudio.engine.project import Project
from clstudio.engine.storage import load_tensors

CFG = {"epochs": 2, "lr": 0.01, "augment": "none", "patience": 100}


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    d = tmp_path_factory.mktemp("wf")
    return [
        make_task_folder(d / "a", ("horizontal", "vertical"), 10, size=32, seed=1),
        make_task_folder(d / "b", ("red", "green"), 10, size=32, seed=2),
    ]


def flow(folder, tasks) -> Project:
    if not (folder / "project.json").exists():
        Project.create(folder, backbone="tiny", config=CFG)
    p = Project.open(folder)
    known = {t["source"] for t in p.tasks}
    for t in tasks:
        if str(t) not in known:
            p.add_task(t)
    p.train_pending(resume=True)
    return p


class Injected:
    """os.replace that fails (ENOSPC) on its n-th write into the project folder, counting those writes.
    (Writes elsewhere, like the scan cache, are best-effort by design and not counted.)"""

    real = os.replace

    def __init__(self, folder, fail_at: int | None) -> None:
        self.folder = str(folder)
        self.calls = 0
        self.fail_at = fail_at

    def __call__(self, src, dst):
        if str(dst).startswith(self.folder + os.sep):
            self.calls += 1
            if self.calls == self.fail_at:
                raise OSError(28, "No space left on device")
        return Injected.real(src, dst)


def test_failure_at_every_write_site_leaves_last_good_state(tmp_path, tasks, monkeypatch):
    counter = Injected(tmp_path / "ref", None)
    monkeypatch.setattr(storage.os, "replace", counter)
    reference = flow(tmp_path / "ref", tasks)
    total = counter.calls
    assert total >= 8  # anchor, project.json ×N, task index ×2, checkpoints, weights
    for k in range(1, total + 1):
        folder = tmp_path / f"run{k}"
        injected = Injected(folder, k)
        monkeypatch.setattr(storage.os, "replace", injected)
        with pytest.raises(StorageError, match="No space left on device.*disk is full"):
            flow(folder, tasks)
        monkeypatch.setattr(storage.os, "replace", Injected(folder, None))
        if not (folder / "project.json").exists():
            with pytest.raises(ProjectError, match="No CL Studio project"):
                Project.open(folder)
        else:
            p = Project.open(folder)  # opens: the last good state
            assert len(p.doc["R"]) == len(p.trained_tasks())
            for t in p.trained_tasks():
                load_tensors(folder / t["weights"])
            assert p.strategy is not None  # every referenced file loads
        assert not [f for f in folder.rglob("*.tmp")], "a temporary file was left behind"
        finished = flow(folder, tasks)  # and running again completes exactly like an undisturbed run
        assert finished.doc["R"] == reference.doc["R"], f"write {k}"


def test_cli_reports_a_full_disk_in_one_line(tmp_path, tasks, monkeypatch, capsys):
    from clstudio.cli import run

    monkeypatch.setattr(storage.os, "replace", Injected(tmp_path / "p", 6))
    code = run(
        [
            "train",
            "--project",
            str(tmp_path / "p"),
            "--backbone",
            "tiny",
            "--epochs",
            "2",
            "--task",
            str(tasks[0]),
            "--task",
            str(tasks[1]),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "clstudio: error: Could not save" in err and "disk is full" in err and "Traceback" not in err
