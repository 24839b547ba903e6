"""Training throughput with 1, 2, … processes (``clstudio train --nproc N``: torch.distributed, gloo on the
CPU, NCCL with one GPU per process), each run in its own project on the same generated task, side by side.

Prints, per process count: training seconds of the task (the trainer's own clock: no start-up, scan or
evaluation), training images per second, the speed-up over one process, and the held-out accuracy (the
runs train on the same batches with whole-batch BatchNorm, so without augmentation it should move by
rounding only; each rank draws its own augmentation).

On a 2-core machine the numbers show the overhead only (two processes share two cores that one process
already used); on a multi-GPU machine they show the scaling.

    python bench/ddp_scaling.py --nproc 1 2 --strategy clr --backbone tiny
    python bench/ddp_scaling.py --nproc 1 2 4 8 --backbone efficientnet_lite0 --device cuda --images 2000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from clstudio.engine.data.synthetic import make_task_folder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--strategy", default="clr")
    ap.add_argument("--backbone", default="tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--images", type=int, default=600, help="images per class (two classes)")
    ap.add_argument("--size", type=int, default=64, help="generated image size in px")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    # Each rank draws its own augmentation, so with it on the runs differ by more than rounding.
    ap.add_argument("--augment", default="none", choices=["none", "light", "crop_pad"])
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "clstudio-bench-ddp"))
    args = ap.parse_args()
    work = Path(args.work)
    folder = work / "stripes"
    if not folder.exists():
        make_task_folder(folder, ("horizontal", "vertical"), args.images, size=args.size, seed=1)
    env = {**os.environ, "CLSTUDIO_HOME": str(work / "home"), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    print(
        f"{args.strategy} on {args.backbone}, {args.device}, {2 * args.images} images, {args.epochs} epochs, "
        f"batch {args.batch_size} (split across processes), OMP_NUM_THREADS={env['OMP_NUM_THREADS']}"
    )
    rows = []
    for n in args.nproc:
        project = work / f"p{n}-{int(time.time())}"
        cmd = [sys.executable, "-m", "clstudio", "train", "--nproc", str(n), "--project", str(project)]
        cmd += ["--strategy", args.strategy, "--backbone", args.backbone, "--device", args.device]
        cmd += ["--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--augment", args.augment]
        if args.strategy in ("clr", "finetune"):
            cmd += ["--set", "patience=1000"]  # every epoch runs, for every process count
        wall = time.monotonic()
        out = subprocess.run([*cmd, "--task", str(folder)], capture_output=True, text=True, env=env)
        wall = time.monotonic() - wall
        if out.returncode != 0:
            sys.exit(f"{n} processes failed:\n{out.stderr[-3000:]}")
        task = json.loads((project / "project.json").read_text())["tasks"][0]
        ev = subprocess.run(
            [sys.executable, "-m", "clstudio", "eval", "--project", str(project), "--json"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        acc = json.loads(ev.stdout)["R"][0][0]
        images = task["train_images"] * task["epochs_run"]
        rows.append((n, task["seconds"], images / task["seconds"], wall, acc))
    base = rows[0][2]
    print(f"{'processes':>9} {'train s':>8} {'img/s':>8} {'speed-up':>9} {'wall s':>7} {'test acc':>9}")
    for n, secs, rate, wall, acc in rows:
        print(f"{n:>9} {secs:>8.1f} {rate:>8.1f} {rate / base:>8.2f}x {wall:>7.1f} {acc:>9.2%}")


if __name__ == "__main__":
    main()
