"""Issue 16's task queue edits: remove a waiting task and bring it back, rename it, change the training
order; trained tasks refuse every edit (their name and place are part of R and its proof)."""

from __future__ import annotations

import pytest

from clstudio.engine import task_edits
from clstudio.engine.data.synthetic import make_task_folder
from clstudio.engine.errors import ProjectError
from clstudio.engine.project import Project

FAST = dict(epochs=2, lr=1e-2, augment="none", patience=100)


@pytest.fixture
def project(tmp_path):
    p = Project.create(tmp_path / "p", backbone="tiny", config=FAST)
    for name, seed in (("a", 1), ("b", 2), ("c", 3)):
        p.add_task(make_task_folder(tmp_path / name, ("x", "y"), 12, size=32, seed=seed))
    return p


def names(p: Project) -> list[str]:
    return [t["name"] for t in Project.open(p.store.folder).tasks]


def test_remove_and_undo_bring_back_the_same_task_at_its_place(project):
    store = project.store
    index_file = store.folder / project.task("b")["index"]
    removed = task_edits.remove_waiting(store, "b")
    assert names(project) == ["a", "c"] and not index_file.exists()
    back = task_edits.restore_waiting(store, removed)
    assert names(project) == ["a", "b", "c"] and back == removed["entry"] and index_file.exists()
    assert Project.open(store.folder).task_index(back) == removed["index"]


def test_undo_after_the_same_folder_was_added_again_is_refused(project, tmp_path):
    removed = task_edits.remove_waiting(project.store, "b")
    project.add_task(tmp_path / "b")
    with pytest.raises(ProjectError, match="added again"):
        task_edits.restore_waiting(project.store, removed)


def test_rename_checks_the_name_and_reorder_sets_the_training_order(project):
    store = project.store
    task_edits.rename_waiting(store, "c", "  zebras ")
    assert names(project) == ["a", "b", "zebras"]
    for bad in ("", "a", "x/y", "tab\there"):
        with pytest.raises(ProjectError):
            task_edits.rename_waiting(store, "b", bad)
    with pytest.raises(ProjectError, match="every waiting task"):
        task_edits.reorder_waiting(store, ["zebras", "a"])
    task_edits.reorder_waiting(store, ["zebras", "a", "b"])
    p = Project.open(store.folder)
    p.train_pending()
    assert p.trained_names() == ["zebras", "a", "b"]  # trained in the new order


def test_trained_tasks_refuse_every_edit(project):
    project.train_task("a")
    for edit, args in (
        (task_edits.remove_waiting, ("a",)),
        (task_edits.rename_waiting, ("a", "new")),
    ):
        with pytest.raises(ProjectError, match="only waiting tasks"):
            edit(project.store, *args)
    task_edits.reorder_waiting(project.store, ["c", "b"])  # the waiting ones only; 'a' stays first
    assert names(project) == ["a", "c", "b"]


def test_removing_an_interrupted_task_drops_its_checkpoint(project):
    ckpt = project.store.checkpoint_path(project.task("b"))
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    ckpt.write_bytes(b"partial run")
    task_edits.remove_waiting(project.store, "b")
    assert not ckpt.exists()
