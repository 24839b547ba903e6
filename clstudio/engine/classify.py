"""Prediction for images: for one chosen task, or for the task the router chooses (``AUTO``), with top-k
(class, probability) per image. Folders are expanded to every image inside; images go through the network
in batches; a file that cannot be read is a row with an error (one bad file never stops the others)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clstudio.engine.data.dataset import load_uint8
from clstudio.engine.data.decode import DecodeError
from clstudio.engine.data.scan import images_in
from clstudio.engine.errors import ProjectError
from clstudio.engine.evaluate import Evaluator
from clstudio.engine.records import TaskEntry
from clstudio.engine.routing import TaskRouter
from clstudio.engine.serving import OnnxServing

AUTO = "auto"  # the task name that asks the router to choose
Progress = Callable[[int, int], None]


def expand(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; folders replaced by every image inside them, recursively."""
    out: list[Path] = []
    for p in map(Path, paths):
        out.extend(images_in(p) if p.is_dir() else [p])
    return out


def _batches(
    paths: list[Path], size: int, batch: int, progress: Progress | None
) -> Iterator[tuple[list[dict[str, Any]], list[int], torch.Tensor | None]]:
    """(rows for this batch, indices of the decodable ones, their uint8 images) — rows of unreadable files
    already carry their error."""
    for start in range(0, len(paths), batch):
        rows: list[dict[str, Any]] = []
        images, ok = [], []
        for i, path in enumerate(paths[start : start + batch]):
            rows.append({"path": str(path)})
            try:
                images.append(load_uint8(str(path), size))
                ok.append(i)
            except DecodeError as e:
                rows[-1]["error"] = str(e)
        # numpy stacks without waking torch's thread pool (a few ms of a one-image answer)
        yield rows, ok, torch.from_numpy(np.stack([im.numpy() for im in images])) if images else None
        if progress is not None:
            progress(min(start + batch, len(paths)), len(paths))


def _top(probs: torch.Tensor, classes: list[str], k: int) -> list[list[Any]]:
    values, indices = torch.topk(probs, min(k, len(classes)))
    return [[classes[int(i)], float(v)] for v, i in zip(values, indices, strict=True)]


def _check_trained(task: TaskEntry) -> None:
    if task["weights"] is None:  # a task in training that has a live model comes with that model's file
        raise ProjectError(f"Task '{task['name']}' is not trained yet; train it before classifying.")


def classify_images(
    evaluator: Evaluator,
    task: TaskEntry,
    paths: Iterable[str | Path],
    top_k: int = 5,
    progress: Progress | None = None,
    serving: OnnxServing | None = None,
) -> list[dict[str, Any]]:
    """``serving``: the ONNX Runtime path, where it has the task (else torch answers: the same within 1e-4)."""
    _check_trained(task)
    predict = serving.task(task) if serving is not None else None
    if predict is None:
        evaluator.strategy.activate_task(task["id"])
        predict = evaluator.predict
    results: list[dict[str, Any]] = []
    batch = evaluator.strategy.config.eval_batch_size
    for rows, ok, images in _batches(expand(paths), evaluator.prep.image_size, batch, progress):
        if images is not None:
            for i, probs in zip(ok, predict(images), strict=True):
                rows[i]["task"] = task["name"]
                rows[i]["top"] = _top(probs, task["classes"], top_k)
        results.extend(rows)
    return results


def classify_auto(
    evaluator: Evaluator,
    router: TaskRouter,
    tasks: dict[str, TaskEntry],
    paths: Iterable[str | Path],
    top_k: int = 5,
    progress: Progress | None = None,
    serving: OnnxServing | None = None,
) -> list[dict[str, Any]]:
    """Route each image to a task, then classify it there. An image farther from every task than that task's
    calibrated threshold gets ``task: None`` and ``none_of_my_tasks: True``; its ``top`` is the nearest
    task's answer, as a best guess."""
    results: list[dict[str, Any]] = []
    batch = evaluator.strategy.config.eval_batch_size
    anchor = (serving.anchor() if serving is not None else None) or evaluator.anchor_features
    for rows, ok, images in _batches(expand(paths), evaluator.prep.image_size, batch, progress):
        if images is not None:
            features = anchor(images)
            routes = router.route(features)
            for tid in {r.nearest for r in routes}:
                picked = [j for j, r in enumerate(routes) if r.nearest == tid]
                task = tasks[tid]
                if evaluator.anchor_is_task_features:
                    evaluator.strategy.activate_task(tid)
                    probabilities = evaluator.predict_from_features(features[picked])
                else:
                    predict = serving.task(task) if serving is not None else None
                    if predict is None:
                        evaluator.strategy.activate_task(tid)
                        predict = evaluator.predict
                    probabilities = predict(images[picked])
                for j, probs in zip(picked, probabilities, strict=True):
                    route, row = routes[j], rows[ok[j]]
                    row["task"] = task["name"] if route.task is not None else None
                    row["top"] = _top(probs, task["classes"], top_k)
                    row["route"] = {
                        "nearest": task["name"],
                        "distance": round(route.distance, 2),
                        "threshold": round(route.threshold, 2),
                    }
                    row["none_of_my_tasks"] = route.task is None
        results.extend(rows)
    return results
