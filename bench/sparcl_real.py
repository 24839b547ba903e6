"""SparCL against its dense baselines on a real dataset: Fashion-MNIST as 5 tasks × 2 classes (like split
CIFAR-10), the paper preset (CIFAR ResNet-18 from scratch, 28→32 px zero-padded, SGD 0.03, batch 32,
pad-and-crop), buffer 500, the same epochs for every method, all in one run of this script.

Prints per method: Class-IL and Task-IL ACC, Class-IL forgetting, counted training FLOPs and wall-clock
training time, both as ratios against dense DER++ measured in the same run (> 1: SparCL is cheaper).

    python bench/sparcl_real.py                                  # 200 train images per class, 5 epochs
    python bench/sparcl_real.py --per-class 6000 --epochs 50     # the paper's scale (days on a CPU)

``--mode app`` runs what a user of the app gets instead: EfficientNet-Lite0 (ImageNet weights), the app
preset (10 epochs unless --epochs), ``--image-size`` px; there SparCL's first task ramps its sparsity up
(prune_start 'auto' = cubic), and ``sparcl-0.75-oneshot`` is the paper's one-shot prune for comparison.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from fashion_mnist import write_tasks  # noqa: E402

from clstudio.engine.project import Project  # noqa: E402

METHODS = {
    "er": ("er", {}),
    "derpp": ("derpp", {}),
    "sparcl-0.75": ("sparcl", {"sparsity": 0.75}),
    "sparcl-0.90": ("sparcl", {"sparsity": 0.90}),
    "sparcl-0.95": ("sparcl", {"sparsity": 0.95}),
    # ablations at 0.75: one mechanism at a time (not in the default --methods)
    "tdm-0.75": ("sparcl", {"sparsity": 0.75, "ddr": False, "dgm": False}),
    "ddr": ("sparcl", {"tdm": False, "dgm": False}),
    "tdm+dgm-0.75": ("sparcl", {"sparsity": 0.75, "ddr": False}),
    # how the first task reaches the sparsity, on a pretrained backbone (--mode app)
    "sparcl-0.75-oneshot": ("sparcl", {"sparsity": 0.75, "prune_start": "one-shot"}),
    "sparcl-0.75-cubic": ("sparcl", {"sparsity": 0.75, "prune_start": "cubic"}),
    "sparcl-0.75-cubic-short": ("sparcl", {"sparsity": 0.75, "prune_start": "cubic", "prune_ramp": 0.2}),
}
DEFAULT_METHODS = "er,derpp,sparcl-0.75,sparcl-0.90,sparcl-0.95"


def run(
    method: str,
    folders: list[Path],
    work: Path,
    epochs: int,
    buffer: int,
    seed: int,
    args: argparse.Namespace,
    device: str = "cpu",
) -> dict:
    strategy, extra = METHODS[method]
    folder = work / f"project-{method}"
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    if args.mode == "app":
        config = {"epochs": epochs or 10, "seed": seed, "image_size": args.image_size, **extra}
        p = Project.create(folder, strategy=strategy, backbone="efficientnet_lite0", config=config, device=device)
    else:
        config = {"epochs": epochs or 5, "buffer_size": buffer, "seed": seed, **extra}
        config.update(getattr(args, "extra_config", {}))
        p = Project.create(folder, strategy=strategy, preset="paper", config=config, device=device)
    for f in folders:
        p.add_task(f)
    start = time.monotonic()
    p.train_pending()
    wall = time.monotonic() - start
    report = p.sparsity_report()
    cil, til = p.metrics_class_il(), p.metrics()
    return {
        "method": method,
        "cil_acc": cil["ACC"],
        "til_acc": til["ACC"],
        "cil_forgetting": cil["forgetting"],
        "flops": report["flops_used"],
        "flops_dense_same_schedule": report["flops_dense"],
        "train_s": sum(t["seconds"] for t in p.tasks),
        "wall_s": wall,
        "iterations": sum(t["iterations"] for t in p.tasks),
        "R_cil": p.doc["R_class_il"][-1],
        "sparsity": [round(min(t["sparsity"]), 4) for t in report["tasks"]] if report["layers"] else [],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-class", type=int, default=200, help="training images per class (paper scale: 6000)")
    ap.add_argument("--test-per-class", type=int, default=200)
    ap.add_argument("--val-per-class", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=0, help="per task, every method (default 5, app 10; paper 50)")
    ap.add_argument("--mode", choices=("paper", "app"), default="paper")
    ap.add_argument("--image-size", type=int, default=224, help="--mode app: the input size")
    ap.add_argument("--tasks", type=int, default=5, help="the first N of the 5 tasks")
    ap.add_argument("--buffer", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default=DEFAULT_METHODS, help=f"comma-separated, from: {', '.join(METHODS)}")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "clstudio-bench-sparcl"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    data = work / f"fmnist32-{args.per_class}-{args.val_per_class}-{args.test_per_class}"
    pad = 32 if args.mode == "paper" else 0
    data = data.with_name(data.name + ("" if pad else "-28px"))
    folders = write_tasks(data, args.per_class, args.val_per_class, args.test_per_class, pad_to=pad)[: args.tasks]
    print(
        f"Fashion-MNIST {len(folders)}×2, {args.per_class} train images/class, {args.test_per_class} test/class; "
        + (
            f"app mode: EfficientNet-Lite0 at {args.image_size} px, app preset"
            if args.mode == "app"
            else f"paper preset, 32 px, buffer {args.buffer}"
        )
        + f"; {args.epochs or ('10' if args.mode == 'app' else '5')} epochs/task; {args.threads} CPU threads",
        flush=True,
    )
    results = []
    for method in args.methods.split(","):
        r = run(method, folders, work, args.epochs, args.buffer, args.seed, args)
        results.append(r)
        print(
            f"  {method:<12} Class-IL ACC {r['cil_acc']:.2%}  Task-IL ACC {r['til_acc']:.2%}  "
            f"train {r['train_s']:.0f} s  iterations {r['iterations']}  final-row CIL "
            + " ".join(f"{v:.2f}" for v in r["R_cil"]),
            flush=True,
        )
    print_table(results)


def print_table(results: list[dict]) -> None:
    """The paper-style table: accuracy, forgetting and cost against dense DER++ of the same run."""
    base = next((r for r in results if r["method"] == "derpp"), None)
    print()
    print(f"{'method':<12} {'Class-IL':>9} {'Task-IL':>8} {'forget':>7} {'FLOPs ÷':>8} {'time ÷':>7} {'min sparsity'}")
    for r in results:
        flops_ratio = base["flops"] / r["flops"] if base else float("nan")
        time_ratio = base["train_s"] / r["train_s"] if base else float("nan")
        print(
            f"{r['method']:<12} {r['cil_acc']:>9.2%} {r['til_acc']:>8.2%} {r['cil_forgetting']:>7.2%} "
            f"{flops_ratio:>7.2f}x {time_ratio:>6.2f}x  {r['sparsity']}"
        )
    print("FLOPs ÷ and time ÷: dense DER++ in this run divided by the method (> 1 = fewer FLOPs / faster).")


if __name__ == "__main__":
    main()
