"""CL Studio on a real dataset nobody here made: Fashion-MNIST (or, with `--dataset digits`, scikit-learn's
8×8 handwritten digits) as task folders (default 5 tasks × 2 classes;
`--classes-per-task 10` for one 10-class task, 5 for 2 × 5), learned through the same CLI a user runs
(`clstudio train`), then `clstudio eval --json` gives R, measured on held-out test images (Fashion-MNIST's
official test set; the digits have none, so each seed cuts its test images apart from the rest).

Strategies are compared side by side on the same folders, for several seeds (each seed draws its own
training images and trains with its own seed): mean ± std of the final mean Task-IL accuracy and of the
wall time, and CLR − linear probe per task. A strategy may carry settings: `clr[probe_head=false]`.

    python bench/real_data.py --per-class 30                        # the small-folder case (the default)
    python bench/real_data.py --classes-per-task 10 --seeds 3 --strategies clr,linear_probe,finetune
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import digits  # noqa: E402
import fashion_mnist  # noqa: E402

DATASETS = {"fashion-mnist": fashion_mnist.write_tasks, "digits": digits.write_tasks}


def run_cli(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "clstudio", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"clstudio {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return out.stdout


def train_cli(*args: str) -> float | None:
    """``clstudio train``, reading its progress as it comes: seconds from launching the command (a fresh
    process: imports, project, backbone) until it says a first usable model is ready (None: never did)."""
    start, first = time.monotonic(), None
    proc = subprocess.Popen(
        [sys.executable, "-m", "clstudio", "train", *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    assert proc.stderr is not None
    tail: list[str] = []
    for line in proc.stderr:
        if first is None and "classify can use it now" in line:
            first = time.monotonic() - start
        tail = [*tail[-40:], line]
    if proc.wait() != 0:
        raise SystemExit("clstudio train failed:\n" + "".join(tail))
    return first


def forward_pass_seconds(folders: list[Path], backbone: str, image_size: int) -> tuple[float, int]:
    """One plain pass of the backbone over every training image (decode, resize, forward; eval mode, no
    gradients, channels-last, batches of 64), in this process: the unit the training times are divided by."""
    import torch

    from clstudio.engine.data.dataset import ImageListDataset, Preprocessing, image_loader
    from clstudio.engine.models.backbones import create_backbone

    bb = create_backbone(backbone, weights="pretrained")
    size = image_size or bb.image_size
    prep = Preprocessing(size, bb.mean, bb.std)
    model = bb.model.eval().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    root = folders[0].parent
    items = [(str(p.relative_to(root)), 0) for f in folders for p in sorted((f / "train").rglob("*.png"))]
    start = time.monotonic()
    with torch.no_grad():
        for xb, _, _ in image_loader(ImageListDataset(root, items, size), 64, False):
            model(prep.normalise(xb).contiguous(memory_format=torch.channels_last))
    return time.monotonic() - start, len(items)


def parse_variant(spec: str) -> tuple[str, list[str]]:
    """'clr[probe_head=false;epochs=10]' → ('clr', ['probe_head=false', 'epochs=10'])."""
    if "[" not in spec:
        return spec, []
    name, rest = spec.split("[", 1)
    return name, [kv for kv in rest.rstrip("]").split(";") if kv]


def mean_std(values: list[float], fmt: str = ".2%") -> str:
    if len(values) < 2:
        return format(values[0], fmt)
    return f"{format(statistics.mean(values), fmt)} ± {format(statistics.stdev(values), fmt)}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="fashion-mnist", choices=sorted(DATASETS))
    ap.add_argument("--per-class", type=int, default=30)
    ap.add_argument("--val-per-class", type=int, default=0, help="default: max(10, per_class // 4)")
    ap.add_argument("--test-per-class", type=int, default=200)
    ap.add_argument("--classes-per-task", type=int, default=2, choices=[2, 5, 10])
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--first-seed", type=int, default=0, help="choose a recipe on other seeds than it is reported on")
    ap.add_argument("--strategies", default="clr,linear_probe,finetune", help="settings go in [k=v;k=v]")
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--image-size", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], help="extra KEY=VALUE for every strategy")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "clstudio-bench"))
    args = ap.parse_args()
    work = Path(args.work)
    val = args.val_per_class or max(10, args.per_class // 4)
    tasks_n = 10 // args.classes_per_task
    write_tasks = DATASETS[args.dataset]
    print(
        f"{args.dataset}, {tasks_n} task(s) × {args.classes_per_task} classes, {args.per_class} train / {val} val / "
        f"{args.test_per_class} test images per class, backbone {args.backbone}, {args.seeds} seed(s)"
    )
    variants = args.strategies.split(",")
    finals: dict[str, list[list[float]]] = {v: [] for v in variants}
    walls: dict[str, list[float]] = {v: [] for v in variants}
    trains: dict[str, list[float]] = {v: [] for v in variants}  # training seconds (the engine's, per run)
    firsts: dict[str, list[float | None]] = {v: [] for v in variants}  # launch → first usable model (CLR's probe)
    ratios: dict[str, list[float]] = {v: [] for v in variants}  # training time ÷ one forward pass
    vals: dict[str, list[float]] = {v: [] for v in variants}  # mean best validation accuracy of the tasks
    forward: dict[int, float] = {}  # image size in px → seconds of one forward pass, this seed
    prefix = "fmnist" if args.dataset == "fashion-mnist" else args.dataset  # the folder names of earlier runs
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        data = work / f"{prefix}-{args.classes_per_task}-{args.per_class}-{val}-{args.test_per_class}-s{seed}"
        folders = write_tasks(
            data, args.per_class, val, args.test_per_class, classes_per_task=args.classes_per_task, seed=seed
        )
        forward.clear()
        for variant in variants:
            strategy, sets = parse_variant(variant)
            project = work / "projects" / f"{strategy}-{seed}-{time.time_ns()}"
            extra = ["--image-size", str(args.image_size)] if args.image_size else []
            extra += ["--epochs", str(args.epochs)] if args.epochs else []
            extra += ["--seed", str(seed)]
            for kv in args.set + sets:
                extra += ["--set", kv]
            tasks = [a for f in folders for a in ("--task", str(f))]
            start = time.monotonic()
            first = train_cli(
                "--project", str(project), "--strategy", strategy, "--backbone", args.backbone, *extra, *tasks
            )
            wall = time.monotonic() - start
            result = json.loads(run_cli("eval", "--project", str(project), "--json"))
            finals[variant].append(result["R"][-1])
            walls[variant].append(wall)
            # Training time alone (no scan, no evaluation of R): what the engine measured per task.
            doc = json.loads((project / "project.json").read_text())
            trains[variant].append(sum(t["seconds"] for t in doc["tasks"]))
            # What a recipe may be chosen by: the validation images that chose each task's epoch, never test.
            vals[variant].append(statistics.mean(t["best_val_acc"] for t in doc["tasks"]))
            row = "  ".join(f"{v:6.1%}" for v in result["R"][-1])
            firsts[variant].append(first)
            ready = f"   first model after {first:.1f} s" if first is not None else ""
            # The unit of time: one forward pass over the same training images at the size the project trained
            # at ('auto' may have chosen a smaller one for small images), measured in this run.
            size = doc["preprocessing"]["image_size"]
            if size not in forward:
                forward[size], n_images = forward_pass_seconds(folders, args.backbone, size)
                print(
                    f"seed {seed}  one forward pass over the {n_images} training images at {size} px: "
                    f"{forward[size]:.1f} s",
                    flush=True,
                )
            unit = forward[size]
            ratios[variant].append(trains[variant][-1] / unit)
            ready += f"   training = {ratios[variant][-1]:.1f} forward passes"
            print(
                f"seed {seed}  {variant:<36} at {size} px  final R row {row}   ACC {result['ACC']:.2%}   "
                f"val {vals[variant][-1]:.1%}   "
                f"training {trains[variant][-1]:.0f} s   wall {wall:.0f} s{ready}",
                flush=True,
            )
    print("\nmean Task-IL accuracy after the last task (mean ± std over seeds); training and wall time per run:")
    for v in variants:
        accs = [statistics.mean(r) for r in finals[v]]
        ready = [f for f in firsts[v] if f is not None]
        print(
            f"  {v:<36} {mean_std(accs):>18}   val {mean_std(vals[v])}   "
            f"training {statistics.mean(trains[v]):6.0f} s   "
            f"wall {statistics.mean(walls[v]):6.0f} s   {statistics.mean(ratios[v]):5.1f} forward passes"
            + (f"   first model {statistics.mean(ready):5.1f} s (max {max(ready):.1f})" if ready else "")
        )
    clr = next((v for v in variants if parse_variant(v)[0] == "clr"), None)
    probe = next((v for v in variants if parse_variant(v)[0] == "linear_probe"), None)
    if clr and probe:
        diffs = [c - p for a, b in zip(finals[clr], finals[probe], strict=True) for c, p in zip(a, b, strict=True)]
        margins = [statistics.mean(a) - statistics.mean(b) for a, b in zip(finals[clr], finals[probe], strict=True)]
        print(
            f"\n{clr} − {probe}: mean {mean_std(margins)} points; per task and seed: "
            + " ".join(f"{d:+.1%}" for d in diffs)
        )
        print("CLR loses to the linear probe on a task" if min(diffs) < 0 else "CLR ≥ linear probe on every task")


if __name__ == "__main__":
    main()
