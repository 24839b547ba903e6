"""Where a CLR task's time goes, as CL Studio trains it: decoding (and augmenting) images, the forward and
the backward+step of the training steps, the validation passes, the probe head's fit, and the rest — for
one real 10-class Fashion-MNIST task (30 images per class, bench/fashion_mnist.py), at each ``--sizes``,
through ``Project.train_task``. Timers wrap the engine's own functions; nothing else changes.

    python bench/clr_epoch_profile.py --sizes 224,160            # the app's epochs and early stop
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from fashion_mnist import write_tasks  # noqa: E402

from clstudio.engine.data.dataset import ImageListDataset  # noqa: E402
from clstudio.engine.project import Project  # noqa: E402
from clstudio.engine.strategies.clr import CLRStrategy  # noqa: E402
from clstudio.engine.training.per_task import PerTaskHeadTraining  # noqa: E402

spent: dict[str, float] = defaultdict(float)
inside: set[str] = set()  # the phases running now (a forward inside validation is validation's)


def timed(owner: Any, name: str, phase: str) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # The outermost phase gets the time (decoding inside validation is validation's), except the forward
        # inside a training step, which is split off the step.
        if inside and not (phase == "forward" and inside == {"step"}):
            return original(*args, **kwargs)
        inside.add(phase)
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[phase] += time.perf_counter() - start
            inside.discard(phase)

    setattr(owner, name, wrapper)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="224,160")
    ap.add_argument("--epochs", type=int, default=0, help="0: the app's (15, early stop after 6 without gain)")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "clstudio-bench-profile"))
    args = ap.parse_args()
    work = Path(args.work)
    (folder,) = write_tasks(work / "fmnist-10", 30, 10, 10, classes_per_task=10, seed=0)
    timed(ImageListDataset, "__getitem__", "decode + augment (training batches)")
    timed(PerTaskHeadTraining, "train_step", "step")
    timed(CLRStrategy, "forward", "forward")
    timed(PerTaskHeadTraining, "_validate_answers", "validation")
    timed(PerTaskHeadTraining, "_fit_probe_head", "probe head (features + fit)")
    print(
        f"CLR on EfficientNet-Lite0, one 10-class task, 300 train / 100 val / 100 test images, "
        f"{args.epochs or 'the app default'} epochs, "
        f"{torch.get_num_threads()} threads"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        spent.clear()
        config = {"image_size": size, **({"epochs": args.epochs} if args.epochs else {})}
        p = Project.create(work / f"clr-{size}-{time.time_ns()}", strategy="clr", config=config, device="cpu")
        p.add_task(folder)
        start = time.perf_counter()
        live: list[float] = []
        p.train_task(
            p.tasks[0]["name"],
            observers=[lambda e, live=live: live.append(e.seconds) if type(e).__name__ == "ModelLive" else None],
        )
        total = time.perf_counter() - start
        training = p.tasks[0]["seconds"]
        spent["backward + step"] = spent.pop("step") - spent["forward"]
        spent["other training (loop, batching, checkpoints)"] = training - sum(spent.values())
        spent["after training (evaluation of R, router, commit)"] = total - training
        task = p.tasks[0]
        print(
            f"\n{size} px: training {training:.1f} s ({task['epochs_run']} epochs, best {task['best_epoch']}), "
            f"train_task {total:.1f} s; the probe model was live {live[0] if live else float('nan'):.1f} s after "
            "the task started"
        )
        for phase, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
            print(f"  {phase:<40} {seconds:7.1f} s  {seconds / total:6.1%}")


if __name__ == "__main__":
    main()
