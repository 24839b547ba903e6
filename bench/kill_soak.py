"""Long kill-and-resume soak: SIGKILL `clstudio train --resume` at random moments, many times, checking after
each kill that the project opens and finished tasks never change; at the end the result must equal an
uninterrupted run. (CI runs a 20-kill version: tests/engine/test_resume.py.)

    python bench/kill_soak.py --kills 200
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from clstudio.engine.data.synthetic import make_task_folder
from clstudio.engine.project import Project
from clstudio.engine.storage import load_tensors


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kill-soak-"))
    tasks = [
        make_task_folder(work / n, c, 40, size=32, seed=i)
        for i, (n, c) in enumerate(
            [
                ("stripes", ("horizontal", "vertical")),
                ("colours", ("red", "green", "blue")),
                ("shapes", ("circle", "square", "triangle")),
                ("more", ("a", "b", "c", "d")),
            ]
        )
    ]

    def cli(project: Path, *extra: str) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "clstudio",
            "train",
            "--project",
            str(project),
            "--backbone",
            "tiny",
            "--epochs",
            "8",
            "--set",
            "patience=100",
            *extra,
        ]
        return cmd + [a for t in tasks for a in ("--task", str(t))]

    env = {**os.environ, "CLSTUDIO_HOME": str(work / "home")}
    subprocess.run(cli(work / "reference"), env=env, check=True, capture_output=True)
    rng = random.Random(args.seed)
    project = work / "killed"
    finished: dict[str, str] = {}
    kills = resumed = 0
    start = time.monotonic()
    while kills < args.kills:
        proc = subprocess.Popen(cli(project, "--resume"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.5, 6.0))
        if proc.poll() is not None:
            if not Project.open(project).pending_tasks():
                break
            continue
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
        kills += 1
        resumed += b"resuming" in err
        if (project / "project.json").exists():
            p = Project.open(project)
            for t in p.trained_tasks():
                digest = hashlib.sha256((project / t["weights"]).read_bytes()).hexdigest()
                assert finished.setdefault(t["name"], digest) == digest, f"{t['name']} changed"
            for line in (project / "history.jsonl").read_text().splitlines()[:-1]:
                json.loads(line)
        if kills % 20 == 0:
            print(f"{kills} kills, {resumed} resumed from a checkpoint, {len(finished)} tasks finished", flush=True)
    subprocess.run(cli(project, "--resume"), env=env, check=True, capture_output=True)
    for f in (work / "reference" / "weights").glob("task-*.safetensors"):
        a, _ = load_tensors(f)
        b, _ = load_tensors(project / "weights" / f.name)
        assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a), f.name
    ref_R = json.loads((work / "reference" / "project.json").read_text())["R"]
    assert Project.open(project).doc["R"] == ref_R
    print(
        f"OK: {kills} kills ({resumed} resumed mid-task) in {time.monotonic() - start:.0f} s; "
        f"final weights and R identical to the uninterrupted run"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
