"""Prediction for images, for one chosen task: top-k (class, probability), or an error for a file that
cannot be read (one bad file never stops the others)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from clstudio.engine.data.dataset import load_uint8
from clstudio.engine.data.decode import DecodeError
from clstudio.engine.errors import ProjectError
from clstudio.engine.evaluate import Evaluator
from clstudio.engine.records import TaskEntry


def classify_images(
    evaluator: Evaluator, task: TaskEntry, paths: Iterable[str | Path], top_k: int = 5
) -> list[dict[str, Any]]:
    if not task["trained"]:
        raise ProjectError(f"Task '{task['name']}' is not trained yet; train it before classifying.")
    evaluator.strategy.activate_task(task["id"])
    size = evaluator.prep.image_size
    k = min(top_k, len(task["classes"]))
    results: list[dict[str, Any]] = []
    for path in paths:
        entry: dict[str, Any] = {"path": str(path), "task": task["name"]}
        try:
            img = load_uint8(str(path), size)
        except DecodeError as e:
            entry["error"] = str(e)
            results.append(entry)
            continue
        probs = evaluator.predict(img[None])[0]
        values, indices = torch.topk(probs, k)
        entry["top"] = [[task["classes"][int(i)], float(v)] for v, i in zip(values, indices, strict=True)]
        results.append(entry)
    return results
