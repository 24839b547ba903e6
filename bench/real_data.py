"""CL Studio on a real dataset nobody here made: Fashion-MNIST as 5 tasks × 2 classes.

Each strategy learns the stream through the same CLI a user runs (`clstudio train`), then
`clstudio eval --json` gives R. Prints R, ACC, BWT, forgetting and wall time per strategy, and checks
that CLR does not lose to the linear probe on any task.

    python bench/real_data.py --per-class 30             # the small-folder case (the default)
    python bench/real_data.py --per-class 300 --image-size 112
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

sys.path.insert(0, str(Path(__file__).parent))
from fashion_mnist import write_tasks  # noqa: E402


def run_cli(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "clstudio", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"clstudio {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return out.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-class", type=int, default=30)
    ap.add_argument("--val-per-class", type=int, default=0, help="default: max(10, per_class // 4)")
    ap.add_argument("--test-per-class", type=int, default=200)
    ap.add_argument("--strategies", default="clr,linear_probe,finetune")
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--image-size", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], help="extra KEY=VALUE for every strategy")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "clstudio-bench"))
    args = ap.parse_args()
    work = Path(args.work)
    val = args.val_per_class or max(10, args.per_class // 4)
    data = work / f"fmnist-{args.per_class}-{val}-{args.test_per_class}"
    folders = write_tasks(data, args.per_class, val, args.test_per_class)
    print(
        f"Fashion-MNIST, 5 tasks × 2 classes, {args.per_class} train / {val} val / {args.test_per_class} test "
        f"images per class, backbone {args.backbone}"
    )
    results = {}
    for strategy in args.strategies.split(","):
        project = work / "projects" / f"{strategy}-{args.per_class}-{int(time.time())}"
        extra = ["--image-size", str(args.image_size)] if args.image_size else []
        extra += ["--epochs", str(args.epochs)] if args.epochs else []
        for kv in args.set:
            extra += ["--set", kv]
        tasks = [a for f in folders for a in ("--task", str(f))]
        start = time.monotonic()
        run_cli("train", "--project", str(project), "--strategy", strategy, "--backbone", args.backbone, *extra, *tasks)
        wall = time.monotonic() - start
        result = json.loads(run_cli("eval", "--project", str(project), "--json"))
        results[strategy] = result
        print(f"\n== {strategy}: wall {wall:.0f} s")
        for i, row in enumerate(result["R"]):
            print(f"  after task {i + 1}: " + "  ".join("   .  " if v is None else f"{v:6.1%}" for v in row))
        fmt = lambda v: "n/a" if v is None else f"{v:+.2%}"  # noqa: E731
        print(f"  ACC {result['ACC']:.2%}   BWT {fmt(result['BWT'])}   forgetting {fmt(result['forgetting'])}")
    if "clr" in results and "linear_probe" in results:
        clr, lp = results["clr"]["R"][-1], results["linear_probe"]["R"][-1]
        diffs = [c - p for c, p in zip(clr, lp, strict=True)]
        print("\nCLR − linear probe, final accuracy per task: " + "  ".join(f"{d:+.1%}" for d in diffs))
        print("CLR loses to the linear probe on a task" if min(diffs) < 0 else "CLR ≥ linear probe on every task")


if __name__ == "__main__":
    main()
