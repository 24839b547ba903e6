"""Where a rehearsal method's training time goes, part by part, in the run ``bench/sparcl_real.py --mode app``
makes (Fashion-MNIST 5 tasks × 2 classes, 100 training / 20 validation / 200 test images per class, Lite0 with
ImageNet weights at 96 px, each method's app preset). Wraps the training loop's hooks and SparCL's mask calls
with timers, runs the methods one after another on one seed, and prints per method the seconds and calls of
each part. The parts nest: ``step`` holds ``replay`` (the replay draws' forward passes), ``backward`` and
``dgm``; ``start_epoch`` holds ``tdm_update``.

    python bench/sparcl_time_parts.py --seed 0 --methods derpp,sparcl-0.75

Timings only mean something on an otherwise idle machine; compare methods of one run.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from fashion_mnist import write_tasks  # noqa: E402
from sparcl_real import train_project  # noqa: E402

from clstudio.engine import checkpoint  # noqa: E402
from clstudio.engine.sparcl.dgm import GradientMasks  # noqa: E402
from clstudio.engine.sparcl.masks import MaskSet  # noqa: E402
from clstudio.engine.training.rehearsal import RehearsalTraining  # noqa: E402

SECONDS: collections.defaultdict[str, float] = collections.defaultdict(float)
CALLS: collections.Counter[str] = collections.Counter()
PARTS = [
    (RehearsalTraining, "begin", "begin"),
    (RehearsalTraining, "start_epoch", "start_epoch"),
    (MaskSet, "update", "tdm_update"),
    (RehearsalTraining, "step", "step"),
    (RehearsalTraining, "_replay_loss", "replay"),
    (torch.Tensor, "backward", "backward"),
    (GradientMasks, "apply", "dgm"),
    (MaskSet, "apply_to_grads", "weight_mask_on_grads"),
    (RehearsalTraining, "end_epoch", "end_epoch (validation)"),
    (checkpoint, "save", "checkpoint"),
    (RehearsalTraining, "finish", "finish"),
]


def timed(owner: Any, attribute: str, part: str) -> None:
    original: Callable[..., Any] = getattr(owner, attribute)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.monotonic()
        try:
            return original(*args, **kwargs)
        finally:
            SECONDS[part] += time.monotonic() - start
            CALLS[part] += 1

    setattr(owner, attribute, wrapper)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default="derpp,sparcl-0.75")
    ap.add_argument("--image-size", type=int, default=96)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "clstudio-bench-time-parts"))
    ap.add_argument("--out", default="", help="append each method's parts as a JSON line to this file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for owner, attribute, part in PARTS:
        timed(owner, attribute, part)
    work = Path(args.work)
    folders = write_tasks(work / f"fmnist-s{args.seed}-100-20-200-28px", 100, 20, 200, seed=args.seed)
    for method in args.methods.split(","):
        SECONDS.clear()
        CALLS.clear()
        p, _, wall = train_project(method, folders, work, args.seed, "app", image_size=args.image_size)
        train_s = sum(t["seconds"] for t in p.tasks)
        print(f"{method}: training {train_s:.1f} s over {CALLS['step']} steps ({wall:.1f} s with evaluation)")
        for _, _, part in PARTS:
            seconds, calls = SECONDS[part], CALLS[part]
            if calls:
                print(f"  {part:<24} {seconds:8.2f} s  {calls:5d} calls  {seconds / calls:.3f} s each")
        if args.out:
            row = {"method": method, "seed": args.seed, "train_s": round(train_s, 2), "wall_s": round(wall, 2)}
            row["parts"] = {part: [round(SECONDS[part], 3), CALLS[part]] for _, _, part in PARTS if CALLS[part]}
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
