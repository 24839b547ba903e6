"""Issue 16's task queue edits: remove a waiting task and bring it back, rename it, change the training
order; trained tasks refuse every edit (their name and place are part of R and its proof)."""

from __future__ import annotations

import pytest
import torch

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


@pytest.fixture
def trained(project):
    project.train_pending()
    return project


def _strip(R, r):
    return [row[:r] + row[r + 1 :] for i, row in enumerate(R) if i != r]


def test_deleting_a_trained_clr_task_leaves_the_others_exactly_and_undo_restores_it(trained, tmp_path):
    folder = trained.store.folder
    before = Project.open(folder)
    doc = before.doc
    a_answers = before.answers("a", "c")
    deleted = trained.delete_task("b")
    after = Project.open(folder)  # reopens: the document validates
    assert after.trained_names() == ["a", "c"]
    assert after.doc["R"] == _strip(doc["R"], 1) and after.doc["R_routed"] == _strip(doc["R_routed"], 1)
    assert "deleted since" in after.routed()["note"]
    assert after.answers("a", "c") == a_answers  # rows after the deletion keep their per-image answers
    assert all(v["verdict"].startswith("unchanged") for v in after.verify().values())  # others exactly as trained
    # The router's sums are those of a project that never learned 'b' (same tasks, same seed).
    other = Project.create(tmp_path / "never-b", backbone="tiny", config=FAST)
    for name in ("a", "c"):
        other.add_task(tmp_path / name)
    other.train_pending()
    mine, theirs = after.store.router_shared(), other.store.router_shared()
    assert int(mine["samples"]) == int(theirs["samples"]) and int(mine["classes"]) == int(theirs["classes"])
    assert torch.allclose(mine["scatter"].double(), theirs["scatter"].double(), rtol=1e-9, atol=1e-9)
    said = after.classify(after.answers("c").files[:3], "auto")
    assert all(r["task"] in ("a", "c") for r in said)
    task_edits.restore_deleted(after.store, deleted)
    back = Project.open(folder)
    assert back.doc == doc and back.trained_names() == ["a", "b", "c"]
    assert all(v["verdict"].startswith("unchanged") for v in back.verify().values())
    assert not (folder / deleted["trash"]).exists()


def test_undo_of_a_deletion_is_refused_once_the_project_changed(trained, tmp_path):
    deleted = trained.delete_task("a")
    Project.open(trained.store.folder).add_task(make_task_folder(tmp_path / "d", ("x", "y"), 12, size=32, seed=4))
    with pytest.raises(ProjectError, match="changed since"):
        task_edits.restore_deleted(trained.store, deleted)
    assert (trained.store.folder / deleted["trash"]).exists()  # its files are kept, and the message says where


def test_shared_weight_strategies_refuse_to_delete_a_trained_task(tmp_path):
    p = Project.create(tmp_path / "ft", strategy="finetune", backbone="tiny", config=FAST)
    p.add_task(make_task_folder(tmp_path / "a", ("x", "y"), 12, size=32, seed=1))
    p.train_pending()
    with pytest.raises(ProjectError, match="cannot take back"):
        p.delete_task("a")


def test_deleting_the_only_task_leaves_an_empty_project_that_opens(tmp_path):
    p = Project.create(tmp_path / "one", backbone="tiny", config=FAST)
    p.add_task(make_task_folder(tmp_path / "a", ("x", "y"), 12, size=32, seed=1))
    p.train_pending()
    p.delete_task("a")
    empty = Project.open(p.store.folder)
    assert empty.tasks == [] and empty.doc["R"] == [] and "router_weights" not in empty.doc
