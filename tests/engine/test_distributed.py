"""Training on two processes (torch.distributed, gloo on the CPU, the tiny backbone), through the real
command line: the same results as one process, only rank 0 writing, a killed rank giving a clean error and a
run that resumes with another number of processes, Ctrl-C stopping every rank, SparCL's masks identical."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from clstudio.engine import storage
from clstudio.engine.data.dataset import RankBatches, image_loader
from clstudio.engine.data.synthetic import make_task_folder
from clstudio.engine.project import Project
from tests.engine.helpers import clstudio

pytestmark = pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="torch without gloo")
CHECKS = Path(__file__).with_name("ddp_checks.py")
CLR = ("--strategy", "clr", "--backbone", "tiny", "--epochs", "10", "--batch-size", "16", "--lr", "0.01")
REHEARSAL = ("--backbone", "tiny", "--epochs", "10", "--batch-size", "8", "--lr", "0.05", "--buffer", "24")
SPARCL = ("--strategy", "sparcl", *REHEARSAL, "--augment", "none", "--set", "dgm_refresh=3")
ER = ("--strategy", "er", *REHEARSAL, "--augment", "none")


@pytest.fixture(autouse=True)
def one_thread_each(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what torchrun sets; the same for the one-process runs


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    d = tmp_path_factory.mktemp("ddp-data")
    return [
        make_task_folder(d / "stripes", ("horizontal", "vertical"), 60, size=32, seed=1),
        make_task_folder(d / "shapes", ("circle", "square"), 60, size=32, seed=3),
    ]


def _train(project: Path, folders, nproc: int, *settings: str, check: bool = True) -> subprocess.CompletedProcess:
    tasks = [a for f in folders for a in ("--task", str(f))]
    return clstudio("train", "--nproc", str(nproc), "--project", str(project), *settings, *tasks, check=check)


def _eval(project: Path) -> dict:
    return json.loads(clstudio("eval", "--project", str(project), "--json").stdout)


@pytest.mark.parametrize("settings", [CLR, ("--strategy", "linear_probe", "--backbone", "tiny")], ids=["clr", "probe"])
def test_two_processes_train_what_one_does(tmp_path, folders, settings):
    _train(tmp_path / "one", folders, 1, *settings)
    out = _train(tmp_path / "two", folders, 2, *settings)
    assert "Starting 2 training processes" in out.stderr
    assert out.stderr.count("Training 'stripes'") == 1  # rank 0 alone prints
    one, two = _eval(tmp_path / "one"), _eval(tmp_path / "two")
    # Same batches, BatchNorm over the whole batch, gradients summed: the same model up to float rounding.
    for row_one, row_two in zip(one["R"], two["R"], strict=True):
        assert all(abs(a - b) <= 0.01 for a, b in zip(row_one, row_two, strict=True) if a is not None), (one, two)
    project = Project.open(tmp_path / "two")
    for task in project.tasks:
        assert task["distributed"] == {"processes": 2, "epochs_checked_identical": task["epochs_run"]}
    history = [json.loads(line)["event"] for line in (tmp_path / "two" / "history.jsonl").read_text().splitlines()]
    assert history.count("TaskStarted") == 2  # one writer: no line twice


@pytest.mark.parametrize("settings", [SPARCL, ER], ids=["sparcl", "er"])
def test_rehearsal_masks_and_buffer_stay_identical_on_every_rank(tmp_path, folders, settings):
    _train(tmp_path / "one", folders, 1, *settings)
    _train(tmp_path / "two", folders, 2, *settings)
    project = Project.open(tmp_path / "two")
    for task in project.tasks:
        # Every epoch the ranks compared digests of weights, masks, replay buffer and DDR state: all equal.
        assert task["distributed"] == {"processes": 2, "epochs_checked_identical": 10}
        if settings is SPARCL:
            assert min(task["sparsity"].values()) >= 0.74
    one, two = _eval(tmp_path / "one"), _eval(tmp_path / "two")
    # One process against two is not an equality: a sum over two ranks and one over the whole batch differ in
    # the last float bits. ER parts by at most one held-out image per entry. SparCL's masks and data removal
    # are thresholds on those values, so its runs part further: 3 of a task's 24 test images on one machine,
    # at most 2 on the one where a 0.09 bound held. Allowed: 1 image (ER), 4 (SparCL). Cross-rank: equal, above.
    images = 4 if settings is SPARCL else 1
    tolerance = [images / task["eval_images"] + 1e-9 for task in project.tasks]
    for r_one, r_two in ((one["R"], two["R"]), (one["class_il"]["R"], two["class_il"]["R"])):
        for row_one, row_two in zip(r_one, r_two, strict=True):
            pairs = zip(row_one, row_two, tolerance, strict=True)
            assert all(abs(a - b) <= tol for a, b, tol in pairs if a is not None), (r_one, r_two)


def _rank_pids(launcher: subprocess.Popen, rank: int) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            env = (proc / "environ").read_bytes().split(b"\0")
            if f"RANK={rank}".encode() in env and b"TORCHELASTIC_RUN_ID" in b"".join(env):
                pids.append(int(proc.name))
        except (OSError, ValueError):
            continue
    return pids


def _start_long_run(project: Path, folder: Path) -> subprocess.Popen:
    args = [*CLR[:4], "--epochs", "60", "--batch-size", "8", "--set", "patience=100"]
    cmd = [sys.executable, "-m", "clstudio", "train", "--nproc", "2", "--project", str(project), *args]
    return subprocess.Popen(
        [*cmd, "--task", str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ},
    )


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the rank by its /proc environment")
def test_a_killed_rank_stops_the_run_cleanly_and_it_resumes_on_one_process(tmp_path, folders):
    project = tmp_path / "killed"
    proc = _start_long_run(project, folders[0])
    _wait_for(project / "checkpoints" / "t1.safetensors", proc)
    victims = _rank_pids(proc, 1)
    assert victims, "rank 1 not found"
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode not in (0, None)
    # The launcher says which rank died whichever way the race goes; the surviving rank says so too when its
    # collective breaks before the launcher stops it.
    assert "rank 1 was killed (SIGKILL)" in out and "--resume" in out
    assert "Traceback" not in out
    p = Project.open(project)
    assert not p.tasks[0]["trained"] and p.resumable_tasks() == ["stripes"]
    resumed = clstudio("train", "--project", str(project), "--resume")  # one process now
    assert "resuming 'stripes' after epoch" in resumed.stderr
    assert Project.open(project).tasks[0]["trained"]


def test_ctrl_c_stops_every_rank_at_the_same_step(tmp_path, folders):
    project = tmp_path / "cancelled"
    proc = _start_long_run(project, folders[0])
    _wait_for(project / "checkpoints" / "t1.safetensors", proc)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: every process of the group gets it
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, out
    assert "Cancelled. Tasks finished before are saved" in out and "Traceback" not in out
    assert not Project.open(project).tasks[0]["trained"]
    assert not _rank_pids(proc, 1)  # nothing left running


@pytest.mark.parametrize("check", ["divergence", "batchnorm"])
def test_collectives_on_two_real_ranks(check):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(CHECKS), check]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ})
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count(f"ok {check} rank") == 2


def test_rank_batches_are_the_one_process_batches_shared_out():
    data = [(torch.zeros(3, 2, 2, dtype=torch.uint8), i) for i in range(37)]
    single = [yb.tolist() for _, yb, _ in image_loader(data, 8, True, seed=5)]  # type: ignore[arg-type]
    shares = [[yb.tolist() for _, yb, _ in image_loader(data, 8, True, seed=5, share=(r, 3))] for r in range(3)]  # type: ignore[arg-type]
    assert all(len(s) == len(single) for s in shares)  # every rank takes as many steps as one process
    for step, batch in enumerate(single):
        assert sorted(x for s in shares for x in s[step]) == sorted(batch)
        assert shares[0][step] == batch[0::3]
    assert len(RankBatches(33, 8, torch.Generator(), 0, 2)) == 4  # 33 = 4·8 + 1: the lone image is dropped


def test_other_ranks_cannot_write_the_project(tmp_path):
    storage.forbid_writes("rank 1 of a distributed run: only rank 0 writes the project")
    try:
        with pytest.raises(RuntimeError, match="rank 1"):
            storage.atomic_write_json(tmp_path / "x.json", {})
        with pytest.raises(RuntimeError, match="rank 1"):
            storage.append_jsonl(tmp_path / "h.jsonl", {})
    finally:
        storage.forbid_writes(None)
    assert not list(tmp_path.iterdir())
