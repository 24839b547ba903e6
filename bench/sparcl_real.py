"""SparCL against its dense baselines on a real dataset: Fashion-MNIST as 5 tasks × 2 classes (like split
CIFAR-10), every method on the same folders, all in one run of this script.

``--mode paper`` (the default): the paper preset (CIFAR ResNet-18 from scratch, 28→32 px zero-padded, SGD
0.03, batch 32, pad-and-crop), buffer 500, the same epochs for every method.

``--mode app``: what a user of the app gets: EfficientNet-Lite0 (ImageNet weights) at ``--image-size`` px,
each method's app preset (SparCL and DER++: 10 epochs; CLR and the linear probe their own defaults), so the
app's per-task methods can stand beside the rehearsal ones (``clr``, ``linear_probe``; their Class-IL is
through the task router, as ``classify --task auto`` answers).

Prints per method: Class-IL and Task-IL ACC, Class-IL forgetting, counted training FLOPs and training time,
both as ratios against dense DER++ of the same seed (> 1: cheaper). With ``--seeds N`` each seed draws its
own training images and trains with its own seed; the methods of one seed run one after another (so a
disturbance of the machine hits neighbours alike) and the table gives mean ± std over seeds. Every result
is also appended to ``--out`` as a JSON line as soon as it exists.

    python bench/sparcl_real.py                                  # 200 train images per class, 5 epochs
    python bench/sparcl_real.py --per-class 6000 --epochs 50     # the paper's scale (days on a CPU)
    python bench/sparcl_real.py --mode app --per-class 100 --image-size 96 --seeds 3 \\
        --methods derpp,er,sparcl-0.75,sparcl-0.90,clr,linear_probe              # issue 13's benchmark
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from fashion_mnist import write_tasks  # noqa: E402
from real_data import mean_std, parse_variant  # noqa: E402

from clstudio.engine import metrics  # noqa: E402
from clstudio.engine.project import Project  # noqa: E402

METHODS = {
    "er": ("er", {}),
    "derpp": ("derpp", {}),
    "sparcl-0.75": ("sparcl", {"sparsity": 0.75}),
    "sparcl-0.90": ("sparcl", {"sparsity": 0.90}),
    "sparcl-0.95": ("sparcl", {"sparsity": 0.95}),
    # the ablation at 0.75 (sparcl.md Table 3): one mechanism at a time on top of DER++
    "tdm-0.75": ("sparcl", {"sparsity": 0.75, "ddr": False, "dgm": False}),
    "ddr": ("sparcl", {"tdm": False, "dgm": False, "lr": 0.1}),  # a dense network: DER++'s rate, not SparCL's
    "tdm+dgm-0.75": ("sparcl", {"sparsity": 0.75, "ddr": False}),
    # how the first task reaches the sparsity, on a pretrained backbone (--mode app)
    "sparcl-0.75-oneshot": ("sparcl", {"sparsity": 0.75, "prune_start": "one-shot"}),
    "sparcl-0.75-cubic": ("sparcl", {"sparsity": 0.75, "prune_start": "cubic"}),
    "sparcl-0.75-cubic-short": ("sparcl", {"sparsity": 0.75, "prune_start": "cubic", "prune_ramp": 0.2}),
    # the app's per-task methods, for comparison (--mode app): a frozen backbone, nothing forgotten
    "clr": ("clr", {}),
    "linear_probe": ("linear_probe", {}),
}
DEFAULT_METHODS = "er,derpp,sparcl-0.75,sparcl-0.90,sparcl-0.95"
PER_TASK = {"clr", "linear_probe"}  # no rehearsal, no FLOPs counter: Class-IL goes through the router


def method_spec(method: str) -> tuple[str, dict]:
    """'sparcl-0.75[lr=0.03;prune_ramp=0.2]' → ('sparcl', {'sparsity': 0.75, 'lr': 0.03, 'prune_ramp': 0.2}):
    a method of METHODS with settings on top (values read as JSON where they parse, else as text)."""
    name, pairs = parse_variant(method)
    if name not in METHODS:
        raise SystemExit(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    strategy, extra = METHODS[name]
    settings = dict(extra)
    for kv in pairs:
        key, _, value = kv.partition("=")
        try:
            settings[key] = json.loads(value)
        except json.JSONDecodeError:
            settings[key] = value
    return strategy, settings


def train_project(
    method: str,
    folders: list[Path],
    work: Path,
    seed: int,
    mode: str,
    image_size: int = 224,
    epochs: int = 0,
    buffer: int = 500,
    extra_config: dict | None = None,
    device: str = "cpu",
) -> tuple[Project, str, float]:
    """A fresh project for ``method`` under ``work``/project (``mode`` 'app': the app's preset on Lite0 at
    ``image_size``; 'paper': the paper preset with ``buffer`` and ``extra_config``), the folders added as tasks
    and all trained: (project, its strategy, wall seconds of the training)."""
    strategy, extra = method_spec(method)
    folder = work / "project"
    if folder.exists():
        shutil.rmtree(folder)
    if mode == "app":
        config = {"seed": seed, "image_size": image_size, **extra}
        if epochs:
            config["epochs"] = epochs
        p = Project.create(folder, strategy=strategy, backbone="efficientnet_lite0", config=config, device=device)
    else:
        if strategy in PER_TASK:
            raise SystemExit(f"{method} runs in --mode app only (the paper preset is a from-scratch ResNet).")
        config = {"epochs": epochs or 5, "buffer_size": buffer, "seed": seed, **extra}
        config.update(extra_config or {})
        p = Project.create(folder, strategy=strategy, preset="paper", config=config, device=device)
    for f in folders:
        p.add_task(f)
    start = time.monotonic()
    p.train_pending()
    return p, strategy, time.monotonic() - start


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
    p, strategy, wall = train_project(
        method,
        folders,
        work,
        seed,
        args.mode,
        image_size=getattr(args, "image_size", 224),  # app mode only; sparcl_paper.py's settings have none
        epochs=epochs,
        buffer=buffer,
        extra_config=getattr(args, "extra_config", None),
        device=device,
    )
    til = p.metrics()
    result = {
        "method": method,
        "seed": seed,
        "til_acc": til["ACC"],
        "train_s": sum(t["seconds"] for t in p.tasks),
        "wall_s": wall,
    }
    if strategy in PER_TASK:
        routed = p.routed()
        assert routed is not None, "per-task strategies on a shared anchor always route"
        result.update(
            cil_acc=routed["ACC"],
            cil_forgetting=metrics.summary(p.doc["R_routed"])["forgetting"],
            R_cil=p.doc["R_routed"][-1],
            flops=None,
            iterations=None,
            sparsity=[],
        )
        return result
    report = p.sparsity_report()
    cil = p.metrics_class_il()
    assert cil is not None
    result.update(
        cil_acc=cil["ACC"],
        cil_forgetting=cil["forgetting"],
        R_cil=p.doc["R_class_il"][-1],
        flops=report["flops_used"],
        flops_dense_same_schedule=report["flops_dense"],
        iterations=sum(t["iterations"] for t in p.tasks),
        sparsity=[round(min(t["sparsity"]), 4) for t in report["tasks"]] if report["layers"] else [],
    )
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-class", type=int, default=200, help="training images per class (paper scale: 6000)")
    ap.add_argument("--test-per-class", type=int, default=200)
    ap.add_argument("--val-per-class", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=0, help="per task, every method (default: paper 5; app: its preset)")
    ap.add_argument("--mode", choices=("paper", "app"), default="paper")
    ap.add_argument("--image-size", type=int, default=224, help="--mode app: the input size")
    ap.add_argument("--tasks", type=int, default=5, help="the first N of the 5 tasks")
    ap.add_argument("--buffer", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0, help="the first seed")
    ap.add_argument("--seeds", type=int, default=1, help="seeds --seed, --seed + 1, …; each draws its own images")
    ap.add_argument(
        "--methods",
        default=DEFAULT_METHODS,
        help=f"comma-separated, from: {', '.join(METHODS)}; settings on top as name[key=value;key=value]",
    )
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "clstudio-bench-sparcl"))
    ap.add_argument("--out", default="", help="append each result as a JSON line to this file")
    ap.add_argument("--table", default="", help="only print the table of the results in this JSON-lines file")
    args = ap.parse_args()
    if args.table:
        print_table([json.loads(line) for line in Path(args.table).read_text().splitlines() if line.strip()])
        return
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    methods = args.methods.split(",")
    for m in methods:
        method_spec(m)  # an unknown name stops here, before any training
    pad = 32 if args.mode == "paper" else 0
    print(
        f"Fashion-MNIST {args.tasks}×2, {args.per_class} train / {args.val_per_class} val / {args.test_per_class} "
        "test images per class; "
        + (
            f"app mode: EfficientNet-Lite0 at {args.image_size} px, app presets"
            if args.mode == "app"
            else f"paper preset, 32 px, buffer {args.buffer}"
        )
        + f"; {args.epochs or ('preset' if args.mode == 'app' else '5')} epochs/task; {args.threads} CPU threads; "
        f"seeds {args.seed}..{args.seed + args.seeds - 1}",
        flush=True,
    )
    results = []
    for seed in range(args.seed, args.seed + args.seeds):
        name = f"fmnist-s{seed}-{args.per_class}-{args.val_per_class}-{args.test_per_class}" + ("" if pad else "-28px")
        folders = write_tasks(
            work / name, args.per_class, args.val_per_class, args.test_per_class, pad_to=pad, seed=seed
        )[: args.tasks]
        for method in methods:
            r = run(method, folders, work, args.epochs, args.buffer, seed, args)
            results.append(r)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps({**r, "args": vars(args)}) + "\n")
            print(
                f"  seed {seed} {method:<14} Class-IL {r['cil_acc']:.2%}  Task-IL {r['til_acc']:.2%}  "
                f"train {r['train_s']:.0f} s  iterations {r['iterations']}  final-row CIL "
                + " ".join(f"{v:.2f}" for v in r["R_cil"]),
                flush=True,
            )
    print_table(results)


def _ratio(base: dict | None, r: dict, key: str) -> float | None:
    if base is None or not r.get(key):  # not counted (None) for this method
        return None
    return base[key] / r[key]


def _cell(values: list[float | None], fmt: str) -> str:
    vs = [v for v in values if v is not None]
    return mean_std(vs, fmt) if vs else "—"


def print_table(results: list[dict]) -> None:
    """The paper-style table: accuracy, forgetting and cost against dense DER++ of the same seed (mean ± std
    over seeds where there are several)."""
    methods = list(dict.fromkeys(r["method"] for r in results))
    base = {r.get("seed", 0): r for r in results if r["method"] == "derpp"}
    seeds = sorted({r.get("seed", 0) for r in results})
    print()
    print(f"{'method':<20} {'Class-IL':>15} {'Task-IL':>15} {'forgetting':>15} {'FLOPs ÷':>13} {'time ÷':>13}")
    for m in methods:
        rows = [r for r in results if r["method"] == m]
        flops = [_ratio(base.get(r.get("seed", 0)), r, "flops") for r in rows]
        times = [_ratio(base.get(r.get("seed", 0)), r, "train_s") for r in rows]
        cil, til = _cell([r["cil_acc"] for r in rows], ".2%"), _cell([r["til_acc"] for r in rows], ".2%")
        forgetting = _cell([r["cil_forgetting"] for r in rows], ".2%")
        print(f"{m:<20} {cil:>15} {til:>15} {forgetting:>15} {_cell(flops, '.2f'):>13} {_cell(times, '.2f'):>13}")
    print(
        f"{len(seeds)} seed(s). FLOPs ÷ and time ÷: dense DER++ of the same seed divided by the method (> 1 = fewer "
        "counted training FLOPs / less training time); '—' where not counted. Class-IL of CLR and the linear "
        "probe: through the task router."
    )
    for m in methods:
        rows = [r for r in results if r["method"] == m and r.get("sparsity")]
        if rows:
            print(f"  {m}: min layer sparsity per task {rows[0]['sparsity']}")


if __name__ == "__main__":
    main()
