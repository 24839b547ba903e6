"""CL Studio on a real dataset nobody here made: Fashion-MNIST as task folders (default 5 tasks × 2 classes;
`--classes-per-task 10` for one 10-class task, 5 for 2 × 5), learned through the same CLI a user runs
(`clstudio train`), then `clstudio eval --json` gives R, measured on the official test images.

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
from fashion_mnist import write_tasks  # noqa: E402


def run_cli(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "clstudio", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"clstudio {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return out.stdout


def parse_variant(spec: str) -> tuple[str, list[str]]:
    """'clr[probe_head=false;epochs=10]' → ('clr', ['probe_head=false', 'epochs=10'])."""
    if "[" not in spec:
        return spec, []
    name, rest = spec.split("[", 1)
    return name, [kv for kv in rest.rstrip("]").split(";") if kv]


def mean_std(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.2%}"
    return f"{statistics.mean(values):.2%} ± {statistics.stdev(values):.2%}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-class", type=int, default=30)
    ap.add_argument("--val-per-class", type=int, default=0, help="default: max(10, per_class // 4)")
    ap.add_argument("--test-per-class", type=int, default=200)
    ap.add_argument("--classes-per-task", type=int, default=2, choices=[2, 5, 10])
    ap.add_argument("--seeds", type=int, default=1)
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
    print(
        f"Fashion-MNIST, {tasks_n} task(s) × {args.classes_per_task} classes, {args.per_class} train / {val} val / "
        f"{args.test_per_class} test images per class, backbone {args.backbone}, {args.seeds} seed(s)"
    )
    variants = args.strategies.split(",")
    finals: dict[str, list[list[float]]] = {v: [] for v in variants}
    walls: dict[str, list[float]] = {v: [] for v in variants}
    trains: dict[str, list[float]] = {v: [] for v in variants}  # training seconds (the engine's, per run)
    for seed in range(args.seeds):
        data = work / f"fmnist-{args.classes_per_task}-{args.per_class}-{val}-{args.test_per_class}-s{seed}"
        folders = write_tasks(
            data, args.per_class, val, args.test_per_class, classes_per_task=args.classes_per_task, seed=seed
        )
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
            run_cli(
                "train", "--project", str(project), "--strategy", strategy, "--backbone", args.backbone, *extra, *tasks
            )
            wall = time.monotonic() - start
            result = json.loads(run_cli("eval", "--project", str(project), "--json"))
            finals[variant].append(result["R"][-1])
            walls[variant].append(wall)
            # Training time alone (no scan, no evaluation of R): what the engine measured per task.
            doc = json.loads((project / "project.json").read_text())
            trains[variant].append(sum(t["seconds"] for t in doc["tasks"]))
            row = "  ".join(f"{v:6.1%}" for v in result["R"][-1])
            print(
                f"seed {seed}  {variant:<36} final R row {row}   ACC {result['ACC']:.2%}   "
                f"training {trains[variant][-1]:.0f} s   wall {wall:.0f} s",
                flush=True,
            )
    print("\nmean Task-IL accuracy after the last task (mean ± std over seeds); training and wall time per run:")
    for v in variants:
        accs = [statistics.mean(r) for r in finals[v]]
        print(
            f"  {v:<36} {mean_std(accs):>18}   training {statistics.mean(trains[v]):6.0f} s   "
            f"wall {statistics.mean(walls[v]):6.0f} s"
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
