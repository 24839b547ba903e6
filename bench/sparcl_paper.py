"""SparCL at the paper's scale, made for one GPU: Split Fashion-MNIST at full size (5 tasks × 2 classes,
the official 6,000 training images per class less a validation slice, the 1,000 test images per class),
the paper preset (CIFAR ResNet-18 from scratch, 28→32 px zero-padded, SGD 0.03, batch 32, buffer 500),
five methods in one run: ER, DER++, SparCL-DER++ at s = 0.75, 0.90, 0.95. Prints the paper-style table
(Class-IL / Task-IL ACC, forgetting, counted training FLOPs and time against dense DER++).

``--minutes`` is the budget for the whole run: a short calibration (DER++ on the first task) measures an
epoch on this machine, and every method gets the same number of epochs per task, as many as fit (at least
1, at most the paper's 50). Ten minutes on one modern GPU is the intended use:

    python bench/sparcl_paper.py --minutes 10                # on the GPU machine
    python bench/sparcl_paper.py --per-class 40 --minutes 2  # a smoke run on a CPU
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from fashion_mnist import write_tasks  # noqa: E402
from sparcl_real import print_table, run  # noqa: E402

from clstudio.engine.device import resolve_device  # noqa: E402
from clstudio.engine.project import Project  # noqa: E402

METHODS = "er,derpp,sparcl-0.75,sparcl-0.90,sparcl-0.95"
PAPER_EPOCHS = 50
# Budget not spent on epochs: evaluation after each task, data writing, start-up (a fraction of the run).
OVERHEAD = 0.25


def epoch_seconds(folder: Path, work: Path, device: str, extra: dict) -> float:
    """Seconds of one DER++ epoch on the first task here (the calibration), after a warm-up epoch. DER++ is
    the most expensive method per epoch (ER trains two streams, SparCL skips what DDR removes), so the
    others finish early rather than late."""
    p = Project.create(
        work / f"calibrate-{time.time_ns()}",
        strategy="derpp",
        preset="paper",
        config={"epochs": 2, **extra},
        device=device,
    )
    p.add_task(folder)
    marks: list[float] = []
    p.train_task(
        p.tasks[0]["name"],
        observers=[lambda e: marks.append(time.monotonic()) if type(e).__name__ == "EpochEnded" else None],
    )
    return marks[1] - marks[0] if len(marks) == 2 else float("inf")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0, help="budget for the whole run")
    ap.add_argument("--per-class", type=int, default=5800, help="training images per class (6000 less validation)")
    ap.add_argument("--val-per-class", type=int, default=200)
    ap.add_argument("--test-per-class", type=int, default=1000)
    ap.add_argument("--methods", default=METHODS)
    ap.add_argument("--epochs", type=int, default=0, help="fix the epochs per task instead of fitting the budget")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="data loader processes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "clstudio-bench-sparcl-paper"))
    args = ap.parse_args()
    start = time.monotonic()
    device = resolve_device(args.device)
    work = Path(args.work)
    data = work / f"fmnist32-{args.per_class}-{args.val_per_class}-{args.test_per_class}"
    folders = write_tasks(data, args.per_class, args.val_per_class, args.test_per_class, pad_to=32)
    extra = {"num_workers": args.workers} if device.startswith("cuda") else {}
    methods = args.methods.split(",")
    epochs = args.epochs
    if not epochs:
        first = epoch_seconds(folders[0], work, device, extra)
        # The first task has no buffer to replay; from the second on DER++ trains three streams per step.
        per_epoch = (first + 3 * first * (len(folders) - 1)) / len(folders)
        left = args.minutes * 60 * (1 - OVERHEAD) - (time.monotonic() - start)
        epochs = max(1, min(PAPER_EPOCHS, math.floor(left / (per_epoch * len(folders) * len(methods)))))
        print(
            f"calibration: DER++'s first-task epoch takes {first:.1f} s on {device} (≈{per_epoch:.1f} s per task "
            f"epoch with replay); {epochs} epochs/task fit",
            flush=True,
        )
    print(
        f"Split Fashion-MNIST 5×2 at full size: {args.per_class} train / {args.val_per_class} val / "
        f"{args.test_per_class} test images per class; paper preset (CIFAR ResNet-18, 32 px, buffer 500); "
        f"{epochs} epochs/task for every method (paper: {PAPER_EPOCHS}); {device}, torch {torch.__version__}",
        flush=True,
    )
    settings = argparse.Namespace(mode="paper", extra_config=extra)
    results = []
    for method in methods:
        r = run(method, folders, work, epochs, 500, args.seed, settings, device=device)
        results.append(r)
        print(
            f"  {method:<12} Class-IL {r['cil_acc']:.2%}  Task-IL {r['til_acc']:.2%}  train {r['train_s']:.0f} s",
            flush=True,
        )
    print_table(results)
    print(f"whole run: {(time.monotonic() - start) / 60:.1f} min (budget {args.minutes:g})")


if __name__ == "__main__":
    main()
