"""The per-image record of one evaluation: after task t was trained, how the model answered every trained
task's evaluation images. One small JSON file per row of R (``evals/after-<id>.json``), written with the
row it explains, so every number of R can be opened down to its images, also after reopening.

    {"format": "clstudio-evaluation", "format_version": 1, "after_task": "t2",
     "tasks": {"t1": {"pred": [...], "p_pred": [...], "p_true": [...], "probs_sha256": "..."}, ...},
     "checks": {"t1": {...}}}      # zero-forgetting checks of earlier tasks (engine/proof.py), if any

``pred`` holds, per image in the order of the task's evaluation list (its test split, else its validation
split), the predicted class index (−1: unreadable); ``p_pred`` / ``p_true`` the probabilities of the
predicted and of the true class, rounded to 4 decimals. Labels and file names are in the task's index.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clstudio.engine.errors import ProjectError
from clstudio.engine.storage import read_json

if TYPE_CHECKING:
    from clstudio.engine.evaluate import TaskPredictions

FORMAT = "clstudio-evaluation"
FORMAT_VERSION = 1


def file_for(task_id: str) -> str:
    return f"evals/after-{task_id}.json"


def record(
    after_task: str, preds: Mapping[str, TaskPredictions], checks: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "after_task": after_task,
        "tasks": {
            tid: {
                "pred": list(p.pred),
                "p_pred": [round(v, 4) for v in p.p_pred],
                "p_true": [round(v, 4) for v in p.p_true],
                "probs_sha256": p.probs_sha256,
            }
            for tid, p in preds.items()
        },
        "checks": dict(checks or {}),
    }


def load(path: Path) -> dict[str, Any]:
    doc = read_json(path)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ProjectError(f"{path.name} is not a CL Studio evaluation record.")
    if int(doc.get("format_version", 0)) > FORMAT_VERSION:
        raise ProjectError(f"{path.name} was written by a newer CL Studio; update to read it.")
    return doc
