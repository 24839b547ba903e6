"""The window's policy, tested without a display: gui/session.py imports no Qt."""

from __future__ import annotations

import pytest

from clstudio.engine import events as ev
from clstudio.engine.data.scan import scan_folder
from clstudio.engine.data.synthetic import make_task_folder
from clstudio.engine.errors import ProjectError
from clstudio.engine.project import Project
from clstudio.gui.session import Session


@pytest.fixture
def setup(tmp_path):
    a = make_task_folder(tmp_path / "stripes", ("horizontal", "vertical"), 6, size=32, seed=1)
    b = make_task_folder(tmp_path / "colours", ("red", "green"), 6, size=32, seed=2)
    Project.create(tmp_path / "p", backbone="tiny")
    return Session(tmp_path / "p"), a, b


def test_a_folder_already_added_is_refused_not_added_twice(setup):
    session, a, _ = setup
    session.accept(scan_folder(a), "stripes")
    assert session.enqueue([a]) == ["'stripes' is already task 'stripes' in this project."]
    assert session.next_scan() is None
    with pytest.raises(ProjectError, match="already task 'stripes'"):
        Project.open(session.folder).add_task(a)  # the rule lives in the engine, not only in the window
    assert [t["name"] for t in Project.open(session.folder).tasks] == ["stripes"]


def test_files_are_refused_and_folders_queued_in_order(setup, tmp_path):
    session, a, b = setup
    stray = tmp_path / "cat.png"
    stray.write_bytes(b"x")
    refused = session.enqueue([stray, a, b])
    assert len(refused) == 1 and "'cat.png' is not a folder" in refused[0]
    assert [session.next_scan(), session.next_scan(), session.next_scan()] == [a, b, None]


def test_tasks_accepted_during_training_are_added_when_it_ends(setup):
    session, a, b = setup
    session.accept(scan_folder(a), "stripes")
    assert session.can_start() and session.start() == ["stripes"]
    assert not session.can_start()
    assert "when the current training ends" in session.accept(scan_folder(b), "colours")
    assert session.queued_names == ["colours"] and [t["name"] for t in session.tasks] == ["stripes"]
    assert session.training_ended() == []
    assert session.training is None and session.queued_names == []
    assert [t["name"] for t in session.tasks] == ["stripes", "colours"]


def test_settings_apply_only_while_nothing_is_trained(setup):
    session, a, _ = setup
    config = dict(session.view.config)
    assert not session.needs_reconfigure("clr", config)
    assert session.needs_reconfigure("clr", {**config, "epochs": 3})
    assert session.needs_reconfigure("finetune", config)
    p = Project.open(session.folder)
    p.reconfigure("clr", {"epochs": 1})
    p.add_task(a)
    p.train_pending()
    session.reload()
    assert not session.needs_reconfigure("clr", {**session.view.config, "epochs": 3})  # fixed once trained


def test_events_follow_the_training_and_the_committed_result(setup):
    session, a, _ = setup
    p = Project.open(session.folder)
    p.reconfigure("clr", {"epochs": 2})
    p.add_task(a)
    session.reload()
    session.start()
    changed = []
    p.train_pending(observers=[lambda e: changed.append(session.on_event(e))])
    assert any(changed) and session.training == "stripes"
    assert session.view.trained_names() == ["stripes"]  # reloaded from disk on TaskFinished
    assert set(session.curves.points) == {"stripes"}
    assert session.on_event(ev.Warning("x")) is False
