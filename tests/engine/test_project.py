"""Project on disk: training commits atomically, cancel leaves nothing half-written, reopening in a new
process gives identical predictions, loading never unpickles, finetune forgets while CLR does not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clstudio.engine import events as ev
from clstudio.engine.cancel import CancelToken
from clstudio.engine.data.synthetic import make_task_folder
from clstudio.engine.errors import Cancelled, CheckpointError, ProjectError
from clstudio.engine.project import Project
from clstudio.engine.routing import split_task_tensors
from clstudio.engine.storage import load_tensors

FAST = dict(epochs=4, lr=1e-2, augment="none", patience=100)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    return {
        "stripes": make_task_folder(d / "stripes", ("horizontal", "vertical"), 30, size=32, seed=1),
        "colours": make_task_folder(d / "colours", ("red", "green", "blue"), 30, size=32, seed=2),
        "shapes": make_task_folder(d / "shapes", ("circle", "square", "triangle"), 20, size=32, seed=3),
    }


def _train(tmp_path, folders, strategy="clr", names=("stripes", "colours"), **cfg):
    p = Project.create(tmp_path / f"p-{strategy}", strategy=strategy, backbone="tiny", config={**FAST, **cfg})
    for n in names:
        p.add_task(folders[n])
    p.train_pending()
    return p


def test_finetune_forgets_and_clr_does_not(tmp_path, folders):
    ft = _train(tmp_path, folders, "finetune", epochs=15)
    R = ft.doc["R"]
    assert R[1][0] < R[0][0], R
    clr = _train(tmp_path, folders, "clr", epochs=15)
    R = clr.doc["R"]
    assert R[1][0] == R[0][0], R
    assert clr.metrics()["forgetting"] == 0.0


def test_linear_probe_trains_only_heads(tmp_path, folders):
    p = _train(tmp_path, folders, "linear_probe", names=("colours",))
    assert p.tasks[0]["trainable_params"] == 32 * 3 + 3
    assert p.doc["shared_weights"] is None


def test_per_task_files_hold_only_that_task(tmp_path, folders):
    p = _train(tmp_path, folders, "clr", names=("stripes", "colours", "shapes"))
    files = sorted(f.name for f in (p.folder / "weights").iterdir())
    # One router file (the covariance statistics of all tasks, replaced at each commit; the old ones are gone).
    assert files == [
        "anchor.safetensors",
        "router-3.safetensors",
        "task-t1.safetensors",
        "task-t2.safetensors",
        "task-t3.safetensors",
    ]
    tensors, meta = load_tensors(p.folder / "weights" / "task-t2.safetensors")
    assert meta["task"] == "colours" and meta["strategy"] == "clr" and meta["format_version"] == "1"
    assert meta["classes"].split("\n") == ["blue", "green", "red"]
    assert tensors["head.weight"].shape == (3, 32)
    assert not any("frozen" in k for k in tensors)
    model, router = split_task_tensors(tensors)  # the task's model, and its class means for the router
    assert set(model) == set(p.strategy.task_states["t2"]) and router["means"].shape == (3, 32)
    assert len(p.doc["R"]) == 3 and [len(r) for r in p.doc["R"]] == [1, 2, 3]


def test_adding_a_task_leaves_earlier_files_untouched(tmp_path, folders):
    p = _train(tmp_path, folders, "clr", names=("stripes",))
    f = p.folder / "weights" / "task-t1.safetensors"
    before = (f.read_bytes(), f.stat().st_mtime_ns)
    p.add_task(folders["colours"])
    p.train_pending()
    assert (f.read_bytes(), f.stat().st_mtime_ns) == before
    assert p.doc["R"][1][0] == p.doc["R"][0][0]


def test_cancel_mid_task_leaves_it_untrained_and_nothing_half_written(tmp_path, folders):
    p = Project.create(tmp_path / "p", backbone="tiny", config=FAST)
    p.add_task(folders["stripes"])
    p.add_task(folders["colours"])
    p.train_task("stripes")
    token = CancelToken()

    def cancel_on_second_step(event):
        if isinstance(event, ev.StepProgress) and event.epoch == 2 and event.step == 2:
            token.cancel()

    seen = []
    with pytest.raises(Cancelled):
        p.train_task("colours", observers=[cancel_on_second_step, seen.append], cancel=token)
    assert any(isinstance(e, ev.Cancelled) for e in seen)
    for project in (p, Project.open(p.folder)):
        assert [t["trained"] for t in project.tasks] == [True, False]
        assert len(project.doc["R"]) == 1
    weights = sorted(f.name for f in (p.folder / "weights").iterdir())
    assert weights == ["anchor.safetensors", "router-1.safetensors", "task-t1.safetensors"]
    assert not list(p.folder.rglob("*.tmp"))
    # the app stays usable: the task trains afterwards, and task 1 is unchanged
    p.train_task("colours")
    assert p.doc["R"][1][0] == p.doc["R"][0][0]


def test_cancel_rolls_back_shared_weights_of_finetune(tmp_path, folders):
    p = Project.create(tmp_path / "p", strategy="finetune", backbone="tiny", config=FAST)
    p.add_task(folders["stripes"])
    p.add_task(folders["colours"])
    p.train_task("stripes")
    shared_before = {k: v.clone() for k, v in p.strategy.shared_state().items()}
    token = CancelToken()
    with pytest.raises(Cancelled):
        p.train_task("colours", observers=[lambda e: isinstance(e, ev.EpochEnded) and token.cancel()], cancel=token)
    after = p.strategy.shared_state()
    assert all(torch.equal(after[k], v) for k, v in shared_before.items())
    assert p.doc["shared_weights"] == "weights/shared-1.safetensors"


def test_reopen_in_new_process_gives_identical_predictions(tmp_path, folders):
    p = _train(tmp_path, folders, "clr", names=("stripes", "colours"))
    images = sorted(str(f) for f in (folders["colours"] / "red").iterdir())[:3]
    here = p.classify(images, "colours", top_k=3)
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "clstudio",
            "classify",
            "--project",
            str(p.folder),
            "--task",
            "colours",
            "--top-k",
            "3",
            "--json",
            *images,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    there = json.loads(out.stdout)
    assert there == json.loads(json.dumps(here))


def test_history_is_append_only_jsonl(tmp_path, folders):
    p = _train(tmp_path, folders, "clr", names=("stripes", "colours"))
    records = p.history()
    kinds = [r["event"] for r in records]
    assert kinds.count("TaskAdded") == 2 and kinds.count("TaskFinished") == 2 and kinds.count("EvalFinished") == 2
    assert kinds.count("EpochEnded") == 2 * FAST["epochs"]
    for line in (p.folder / "history.jsonl").read_text().splitlines():
        json.loads(line)


def test_weights_never_unpickled(tmp_path, folders):
    p = _train(tmp_path, folders, "clr", names=("stripes",))
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"x": Payload()}, p.folder / "weights" / "task-t1.safetensors")
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        Project.open(p.folder).strategy  # noqa: B018 - loading is the point
    assert not marker.exists()


def test_malformed_or_future_project_file_gives_clear_error(tmp_path, folders):
    p = _train(tmp_path, folders, "clr", names=("stripes",))
    doc = json.loads((p.folder / "project.json").read_text())
    (p.folder / "project.json").write_text(json.dumps({**doc, "format_version": 99}))
    with pytest.raises(ProjectError, match="newer CL Studio"):
        Project.open(p.folder)
    (p.folder / "project.json").write_text(json.dumps({**doc, "tasks": "oops"}))
    with pytest.raises(ProjectError, match="'tasks' should be list"):
        Project.open(p.folder)
    bad_task = {**doc["tasks"][0], "weights": "../../etc/passwd"}
    (p.folder / "project.json").write_text(json.dumps({**doc, "tasks": [bad_task]}))
    with pytest.raises(ProjectError, match="outside the project"):
        Project.open(p.folder)
    (p.folder / "project.json").write_text("{not json")
    with pytest.raises(ProjectError, match="not valid JSON"):
        Project.open(p.folder)


def test_classify_reports_unreadable_images(tmp_path, folders):
    p = _train(tmp_path, folders, "clr", names=("colours",))
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    good = next((folders["colours"] / "blue").iterdir())
    out = p.classify([good, bad], "colours")
    assert [c for c, _ in out[0]["top"]] and sum(pr for _, pr in out[0]["top"]) == pytest.approx(1.0, abs=1e-5)
    assert "error" in out[1] and "top" not in out[1]
    with pytest.raises(ProjectError, match="No task named"):
        p.classify([good], "nope")


def test_backbone_anchor_mismatch_detected(tmp_path, folders):
    p = _train(tmp_path, folders, "clr", names=("stripes",))
    tensors, meta = load_tensors(p.folder / "weights" / "anchor.safetensors")
    from clstudio.engine.storage import save_tensors

    tensors = {k: (v + 1 if v.is_floating_point() else v) for k, v in tensors.items()}
    save_tensors(p.folder / "weights" / "anchor.safetensors", tensors, meta)
    with pytest.raises(ProjectError, match="differ from the ones this project"):
        Project.open(p.folder).strategy  # noqa: B018
