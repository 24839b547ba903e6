"""Crashes lose at most an epoch: epoch checkpoints, `--resume`, and a SIGKILL loop over a real CLI run."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from clstudio.engine import events as ev
from clstudio.engine.data.synthetic import make_task_folder
from clstudio.engine.project import Project
from clstudio.engine.storage import load_tensors

CFG = {"epochs": 5, "lr": 0.01, "augment": "light", "patience": 100}


class Crash(Exception):
    """Stands in for a crash: not a cancel, so the project keeps the checkpoint."""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("resume-data")
    return [
        make_task_folder(d / "stripes", ("horizontal", "vertical"), 24, size=32, seed=1),
        make_task_folder(d / "colours", ("red", "green", "blue"), 24, size=32, seed=2),
        make_task_folder(d / "shapes", ("circle", "square", "triangle"), 24, size=32, seed=3),
    ]


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _same_tensors(a, b) -> bool:
    """Bit-identical weights (file bytes can differ: safetensors writes its metadata map in any order)."""
    ta, _ = load_tensors(a)
    tb, _ = load_tensors(b)
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


# Rehearsal at 5 epochs: TDM updates masks every epoch, DDR removes data after epochs 1 and 2, DER++ replays
# from the buffer in the second task: a crash in epoch 3 has all of that state to carry over.
REHEARSAL_CFG = {"epochs": 5, "lr": 0.01, "augment": "light", "buffer_size": 20, "batch_size": 8}


@pytest.mark.parametrize(
    "strategy,cfg",
    [("clr", CFG), ("finetune", CFG), ("sparcl", REHEARSAL_CFG), ("er", {**REHEARSAL_CFG, "replay": "er"})],
)
def test_resumed_task_is_bit_identical_to_uninterrupted(tmp_path, data, strategy, cfg):
    ref = Project.create(tmp_path / "ref", strategy=strategy, backbone="tiny", config=cfg)
    run = Project.create(tmp_path / "run", strategy=strategy, backbone="tiny", config=cfg)
    for p in (ref, run):
        p.add_task(data[0])
        p.add_task(data[1])
        p.train_task("stripes")
    ref.train_task("colours")

    with pytest.raises(Crash):
        run.train_task("colours", observers=[crash_after(3)])
    assert (run.folder / "checkpoints" / "t2.safetensors").exists()
    again = Project.open(run.folder)
    assert again.resumable_tasks() == ["colours"]
    seen = []
    again.train_task("colours", observers=[seen.append], resume=True)
    resumed = [e for e in seen if isinstance(e, ev.TaskResumed)]
    assert resumed and resumed[0].from_epoch == 2  # epoch 3's checkpoint was never written
    assert [e.epoch for e in seen if isinstance(e, ev.EpochEnded)] == [3, 4, 5]
    assert _same_tensors(again.folder / "weights/task-t2.safetensors", ref.folder / "weights/task-t2.safetensors")
    assert again.doc["shared_weights"] == ref.doc["shared_weights"]
    if ref.doc["shared_weights"]:  # fine-tune's network; rehearsal's network, head, masks and buffer
        assert _same_tensors(again.folder / again.doc["shared_weights"], ref.folder / ref.doc["shared_weights"])
    assert again.doc["R"] == ref.doc["R"]
    assert again.doc.get("R_class_il") == ref.doc.get("R_class_il")
    for key in ("flops_used", "flops_dense", "iterations", "ddr_removed", "sparsity"):
        assert again.tasks[1].get(key) == ref.tasks[1].get(key), key
    assert not (again.folder / "checkpoints" / "t2.safetensors").exists()


def crash_after(epoch: int):
    def observer(e):
        if isinstance(e, ev.EpochEnded) and e.epoch == epoch:
            raise Crash()

    return observer


def _crashed_in_epoch_2(tmp_path, data) -> Project:
    p = Project.create(tmp_path / "p", backbone="tiny", config=CFG)
    p.add_task(data[0])
    with pytest.raises(Crash):
        p.train_task("stripes", observers=[crash_after(2)])
    return p


def test_without_resume_an_interrupted_task_starts_over(tmp_path, data):
    p = _crashed_in_epoch_2(tmp_path, data)
    seen = []
    Project.open(p.folder).train_task("stripes", observers=[seen.append])
    assert not any(isinstance(e, ev.TaskResumed) for e in seen)
    assert [e.epoch for e in seen if isinstance(e, ev.EpochEnded)] == [1, 2, 3, 4, 5]


def test_checkpoint_for_other_settings_is_not_resumed(tmp_path, data):
    p = _crashed_in_epoch_2(tmp_path, data)
    p = Project.open(p.folder)
    p.reconfigure("clr", {**CFG, "lr": 0.02})
    seen = []
    p.train_task("stripes", observers=[seen.append], resume=True)
    assert not any(isinstance(e, ev.TaskResumed) for e in seen)


CLR_ARGS = ("--set", "patience=100")
SPARCL_ARGS = ("--strategy", "sparcl", "--set", "buffer_size=20", "--batch-size", "8")


def _cli(project, data, *extra, method=CLR_ARGS):
    args = [
        sys.executable,
        "-m",
        "clstudio",
        "train",
        "--project",
        str(project),
        "--backbone",
        "tiny",
        "--epochs",
        "5",
        "--lr",
        "0.01",
        *method,
        *extra,
    ]
    for d in data:
        args += ["--task", str(d)]
    return args


def _kill_moment(proc: subprocess.Popen, rng: random.Random) -> None:
    """Wait for a random moment to kill: half the time early (start-up, scan, first epoch), half the time
    just after the run's second epoch line, so that kills land mid-training however fast the machine is
    (fixed delays of 1-3 s outlasted whole runs on a fast one)."""
    if rng.random() < 0.5:
        time.sleep(rng.uniform(0.3, 1.5))
        return
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()
    epochs, deadline = 0, time.monotonic() + 60
    while epochs < 2 and proc.poll() is None and time.monotonic() < deadline:
        try:
            epochs += "epoch" in lines.get(timeout=0.1)
        except queue.Empty:
            pass
    time.sleep(rng.uniform(0.0, 0.2))


@pytest.mark.parametrize(
    "method,max_kills,min_kills", [(CLR_ARGS, 20, 10), (SPARCL_ARGS, 12, 6)], ids=["clr", "sparcl"]
)
def test_sigkill_loop_loses_nothing(tmp_path, data, method, max_kills, min_kills):
    """Kill `clstudio train --resume` at random moments, up to 20 times; after each kill the project opens,
    finished tasks are bit-identical, the history parses; the end result equals an uninterrupted run."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    reference = tmp_path / "reference"
    subprocess.run(_cli(reference, data, method=method), env=env, check=True, capture_output=True, timeout=300)
    project = tmp_path / "killed"
    rng = random.Random(1234)
    finished: dict[str, str] = {}
    kills = 0
    deadline = time.monotonic() + 240
    while kills < max_kills and time.monotonic() < deadline:
        proc = subprocess.Popen(
            _cli(project, data, "--resume", method=method),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        _kill_moment(proc, rng)
        if proc.poll() is not None:
            break  # it finished before the kill: the stream is complete
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        if not (project / "project.json").exists():
            continue  # killed before the project was first written
        p = Project.open(project)
        for t in p.trained_tasks():
            digest = _digest(project / t["weights"])
            assert finished.setdefault(t["name"], digest) == digest, f"{t['name']} changed after being finished"
        for line in (project / "history.jsonl").read_text().splitlines()[:-1]:
            json.loads(line)  # every complete line is valid (only the last may be torn by the kill)
        assert all((project / t["weights"]).exists() for t in p.trained_tasks())
    assert kills >= min_kills, f"only {kills} kills landed"
    subprocess.run(
        _cli(project, data, "--resume", method=method), env=env, check=True, capture_output=True, timeout=300
    )
    done = Project.open(project)
    assert [t["trained"] for t in done.tasks] == [True, True, True]
    ref_doc = json.loads((reference / "project.json").read_text())
    assert done.doc["shared_weights"] == ref_doc["shared_weights"]
    for f in (reference / "weights").glob("task-*.safetensors"):
        assert _same_tensors(project / "weights" / f.name, f), f.name
    if ref_doc["shared_weights"]:  # SparCL: the network, head, masks and buffer after the last task
        assert _same_tensors(project / ref_doc["shared_weights"], reference / ref_doc["shared_weights"])
    assert done.doc["R"] == ref_doc["R"]
    assert done.doc.get("R_class_il") == ref_doc.get("R_class_il")
