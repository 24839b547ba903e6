"""Classify without choosing the task: the task router measured on Fashion-MNIST 5 × 2 tasks.

For each seed, the same training images are learned three ways through the CLI (`clstudio train`):
CLR on 5 tasks and the linear probe on 5 tasks (both routed by the router the project stores), and a joint
linear probe on all 10 classes at once (the non-continual anchor, same images). Reported on the official test
images (never used for training or choosing an epoch):
- routed Class-IL accuracy (route, then classify within the routed task) vs the oracle-task accuracy;
- routing accuracy of the Mahalanobis router vs head-confidence routing (max softmax, energy over the task
  heads), computed on the same CLR project, on every k-th test image (`--confidence-images`: each head
  runs on each image, which is what makes that routing slow);
- "none of my tasks": AUROC of the router's distance between the test images and two sets nobody trained on
  (generated: coloured shapes — far; white digits drawn on black at 28 px, MNIST-like — near), and the share of
  each flagged at the stored thresholds.

    python bench/routing.py --seeds 3 --per-class 30
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).parent))
from fashion_mnist import write_tasks  # noqa: E402
from real_data import mean_std, run_cli  # noqa: E402

from clstudio.engine.data.synthetic import make_demo  # noqa: E402
from clstudio.engine.project import Project  # noqa: E402
from clstudio.engine.routing import ood_auroc  # noqa: E402


def write_digits(out: Path, n: int, seed: int = 0) -> list[Path]:
    """White digits in the default font on black, 28 px, random size and place: an MNIST stand-in."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        img = Image.new("L", (28, 28), 0)
        font = ImageFont.load_default(size=int(rng.integers(14, 24)))
        d = ImageDraw.Draw(img)
        d.text((int(rng.integers(2, 10)), int(rng.integers(-2, 6))), str(int(rng.integers(10))), 255, font=font)
        p = out / f"digit_{i:04d}.png"
        img.save(p)
        paths.append(p)
    return paths


def test_images(folder: Path) -> list[tuple[Path, int]]:
    classes = sorted(p.name for p in (folder / "test").iterdir() if p.is_dir())
    return [(f, c) for c, name in enumerate(classes) for f in sorted((folder / "test" / name).iterdir())]


@torch.no_grad()
def head_confidence(project: Project, images: torch.Tensor) -> torch.Tensor:
    """[N, T, 2]: each task head's max softmax and energy (logsumexp of logits) on each image."""
    out = []
    for t in project.trained_tasks():
        project.strategy.activate_task(t["id"])
        project.strategy.eval()
        logits = project.strategy.forward(project.preprocessing.normalise(images))
        out.append(torch.stack([logits.softmax(1).max(1).values, logits.logsumexp(1)], 1))
    return torch.stack(out, 1)


def decode(paths: list[Path], size: int) -> torch.Tensor:
    from clstudio.engine.data.dataset import load_uint8

    return torch.stack([load_uint8(str(p), size) for p in paths])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-class", type=int, default=30)
    ap.add_argument("--test-per-class", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--ood", type=int, default=150, help="images in each out-of-distribution set")
    ap.add_argument(
        "--confidence-images", type=int, default=500, help="test images (every k-th) for the head-confidence routing"
    )
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "clstudio-bench-routing"))
    args = ap.parse_args()
    work, val = Path(args.work), max(10, args.per_class // 4)
    demo = make_demo(work / "ood-shapes", per_class=args.ood // 8 + 1)
    far = sorted(p for f in demo for p in f.rglob("*.png"))[: args.ood]
    near = write_digits(work / "ood-digits", args.ood)
    print(
        f"Fashion-MNIST 5 tasks × 2 classes, {args.per_class} train / {val} val / {args.test_per_class} test images "
        f"per class, EfficientNet-Lite0, {args.seeds} seed(s); OOD: {len(far)} generated shapes, {len(near)} digits"
    )
    rows: dict[str, list[float]] = {}

    def note(key: str, value: float) -> None:
        rows.setdefault(key, []).append(value)

    for seed in range(args.seeds):
        tag = f"{args.per_class}-{val}-{args.test_per_class}-s{seed}"
        folders = write_tasks(work / f"fm5-{tag}", args.per_class, val, args.test_per_class, seed=seed)
        joint = write_tasks(
            work / f"fm1-{tag}", args.per_class, val, args.test_per_class, classes_per_task=10, seed=seed
        )
        results = {}
        for name, strategy, tasks in (
            ("clr", "clr", folders),
            ("probe", "linear_probe", folders),
            ("joint", "linear_probe", joint),
        ):
            project = work / "projects" / f"{name}-{seed}-{time.time_ns()}"
            start = time.monotonic()
            run_cli(
                "train",
                "--project",
                str(project),
                "--strategy",
                strategy,
                "--seed",
                str(seed),
                *[a for f in tasks for a in ("--task", str(f))],
            )
            results[name] = (project, json.loads(run_cli("eval", "--project", str(project), "--json")))
            print(f"seed {seed}: {name} trained and evaluated in {time.monotonic() - start:.0f} s", flush=True)
        for name in ("clr", "probe"):
            r = results[name][1]
            note(f"{name} oracle-task accuracy (Task-IL)", statistics.mean(r["R"][-1]))
            note(f"{name} routed Class-IL accuracy", statistics.mean(r["routed"]["R"][-1]))
        note("joint linear probe, 10 classes at once", statistics.mean(results["joint"][1]["R"][-1]))
        note(
            "routing accuracy, Mahalanobis router", statistics.mean(results["clr"][1]["routed"]["routing_accuracy"][-1])
        )

        # Head confidence and the OOD scores, on the CLR project's test images.
        project = Project.open(results["clr"][0], device="cpu")
        size = project.preprocessing.image_size
        items = [(p, t, c) for t, f in enumerate(folders) for p, c in test_images(f)]
        truth = torch.tensor([t for _, t, _ in items])
        ev = project.evaluator()
        router = project.router()
        dist_in, conf_in = [], []
        step = max(1, len(items) // args.confidence_images)
        for start in range(0, len(items), 128):
            x = decode([p for p, _, _ in items[start : start + 128]], size)
            dist_in.append(router.task_distances(ev.anchor_features(x)))
            keep = [i for i in range(len(x)) if (start + i) % step == 0]  # every step-th image: the subset
            conf_in.append(head_confidence(project, x[keep]))
        d_in, c_in = torch.cat(dist_in), torch.cat(conf_in)
        order = [project.task(tid)["name"] for tid in router.task_ids]
        assert order == [project.task(t["id"])["name"] for t in project.trained_tasks()]
        sub = torch.arange(0, len(items), max(1, len(items) // args.confidence_images))
        note(
            "routing acc. on the subset, Mahalanobis router", float((d_in[sub].argmin(1) == truth[sub]).double().mean())
        )
        note(
            "routing acc. on the subset, max softmax of heads",
            float((c_in[:, :, 0].argmax(1) == truth[sub]).double().mean()),
        )
        note(
            "routing acc. on the subset, energy of heads",
            float((c_in[:, :, 1].argmax(1) == truth[sub]).double().mean()),
        )
        thresholds = torch.tensor([router.thresholds[t] for t in router.task_ids])
        d_min_in, arg_in = d_in.min(1)
        note("test images kept (inside the threshold)", float((d_min_in <= thresholds[arg_in]).double().mean()))
        for label, paths in (("generated shapes", far), ("drawn digits", near)):
            x = decode(paths, size)
            d_out = router.task_distances(ev.anchor_features(x))
            d_min_out, arg_out = d_out.min(1)
            note(f"OOD AUROC, router distance, {label}", ood_auroc(d_min_in, d_min_out))
            c_out = head_confidence(project, x)
            note(
                f"OOD AUROC, max softmax, {label}",
                ood_auroc(-c_in[:, :, 0].max(1).values, -c_out[:, :, 0].max(1).values),
            )
            note(f"{label} flagged 'none of my tasks'", float((d_min_out > thresholds[arg_out]).double().mean()))
        print(f"seed {seed}: " + "; ".join(f"{k} {v[-1]:.2%}" for k, v in rows.items()), flush=True)

    print(f"\nmean ± std over {args.seeds} seed(s):")
    for key, values in rows.items():
        print(f"  {key:<52} {mean_std(values):>18}")
    gap = [
        a - b
        for a, b in zip(
            rows["clr routed Class-IL accuracy"], rows["joint linear probe, 10 classes at once"], strict=True
        )
    ]
    print(f"\nCLR routed − joint probe: {mean_std(gap)} (target ≥ −2 points)")


if __name__ == "__main__":
    main()
