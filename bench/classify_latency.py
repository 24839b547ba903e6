"""How fast classify answers on the CPU: one image end to end (decode, resize, forward, softmax; through
`Project.classify`, as the app and `clstudio classify` call it) and batched throughput over a folder.

A CLR project on EfficientNet-Lite0 at 224 px (the app's defaults) with two tasks learned from the demo
data; measured for a chosen task and for Auto (the router: one pass of the anchor, one of the routed task),
through ONNX Runtime (what classify uses on the CPU) and through eager torch (its fallback), in one run. The
first call of each runtime is timed apart: it exports the task's model into the cache (engine/serving.py).

    python bench/classify_latency.py --repeats 50
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from clstudio.engine.data.synthetic import make_demo
from clstudio.engine.project import Project
from clstudio.engine.serving import RUNTIME_ENV


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--batch-images", type=int, default=256)
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "clstudio-bench-latency"))
    args = ap.parse_args()
    work = Path(args.work)
    os.environ["CLSTUDIO_HOME"] = str(work / "home")  # its own model cache, emptied: the first call exports
    shutil.rmtree(work / "home" / "cache" / "onnx", ignore_errors=True)
    folders = make_demo(work / "demo", per_class=max(20, args.batch_images // 6 + 1))
    folder = work / "project"
    if not (folder / "project.json").exists():
        project = Project.create(folder, "clr", config=dict(epochs=1))
        for f in folders:
            project.add_task(f)
        project.train_pending()
    project = Project.open(folder, device="cpu")
    images = sorted(p for f in folders for p in f.rglob("*.png"))
    print(
        f"EfficientNet-Lite0 CLR, {project.preprocessing.image_size} px, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs"
    )
    first = project.trained_names()[0]
    for runtime in ("onnxruntime", "torch"):
        if runtime == "torch":
            os.environ[RUNTIME_ENV] = "torch"
        print(f" {runtime}:")
        for task in (first, "auto"):
            _measure(project, images, task, args)


def _measure(project: Project, images: list[Path], task: str, args: argparse.Namespace) -> None:
    start = time.perf_counter()
    project.classify(images[:2], task)  # warm-up: weights in place, kernels chosen, models exported
    print(f"  task {task!r:<10} first call (export or cached file, session): {time.perf_counter() - start:5.2f} s")
    times = []
    for i in range(args.repeats):
        start = time.perf_counter()
        project.classify([images[i % len(images)]], task)
        times.append(time.perf_counter() - start)
    times.sort()
    p50, p90 = statistics.median(times), times[int(0.9 * (len(times) - 1))]
    batch = images[: args.batch_images]
    start = time.perf_counter()
    project.classify(batch, task)
    rate = len(batch) / (time.perf_counter() - start)
    print(
        f"  task {task!r:<10} one image: p50 {p50 * 1000:5.1f} ms, p90 {p90 * 1000:5.1f} ms   "
        f"batched ({len(batch)} images, batch {project.strategy.config.eval_batch_size}): {rate:5.1f} images/s"
    )


if __name__ == "__main__":
    main()
