"""What the window shows, rebuilt from the project's files and kept current by engine events.

Qt-free on purpose: it is the view-model the panels render, and it can be tested without a window.
Accuracy curves come from history.jsonl, so they survive closing and reopening the app.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clstudio.engine import events as ev
from clstudio.engine import metrics, project_file
from clstudio.engine.storage import read_jsonl


@dataclass
class Curves:
    """Accuracy per task over the whole stream: x = epochs counted across every task."""

    points: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    boundaries: list[tuple[float, str]] = field(default_factory=list)  # (x, task that ended there)
    loss: list[tuple[float, float]] = field(default_factory=list)  # current task's train loss per epoch
    epoch: int = 0  # global epoch counter
    _task_start: tuple[str, int, dict[str, int]] | None = None

    def apply(self, event: ev.Event | dict[str, Any]) -> None:
        kind = event["event"] if isinstance(event, dict) else type(event).__name__
        get = (lambda k: event[k]) if isinstance(event, dict) else (lambda k: getattr(event, k))
        if kind == "TaskStarted":
            self._task_start = (get("task"), self.epoch, {t: len(p) for t, p in self.points.items()})
            self.loss = []
        elif kind == "EpochEnded":
            self.epoch += 1
            self.points.setdefault(get("task"), []).append((self.epoch, get("val_acc")))
            self.loss.append((get("epoch"), get("train_loss")))
        elif kind == "EvalFinished":
            for task, acc in zip(get("tasks"), get("row"), strict=True):
                self.points.setdefault(task, []).append((self.epoch, acc))
            self.boundaries.append((self.epoch, get("after_task")))
            self._task_start = None
        elif kind in ("Cancelled", "Failed") and self._task_start is not None:
            # A task that did not finish is untrained: its partial curve goes away with it.
            task, start, lengths = self._task_start
            for t in list(self.points):
                del self.points[t][lengths.get(t, 0) :]
                if not self.points[t]:
                    del self.points[t]
            self.epoch = start
            self._task_start = None


class ProjectState:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.doc: dict[str, Any] = {}
        self.curves = Curves()
        self.reload()

    def reload(self) -> None:
        """Re-read project.json and rebuild the curves from history.jsonl."""
        self.doc = project_file.load(self.folder)
        self.curves = Curves()
        for record in read_jsonl(self.folder / "history.jsonl"):
            self.curves.apply(record)
        if self.curves._task_start is not None:  # a run that crashed mid-task: same as cancelled
            self.curves.apply({"event": "Cancelled", "task": self.curves._task_start[0]})

    @property
    def tasks(self) -> list[dict[str, Any]]:
        return self.doc.get("tasks", [])

    @property
    def trained(self) -> list[dict[str, Any]]:
        return [t for t in self.tasks if t["trained"]]

    @property
    def pending(self) -> list[dict[str, Any]]:
        return [t for t in self.tasks if not t["trained"]]

    @property
    def strategy(self) -> str:
        return self.doc["strategy"]["name"]

    @property
    def config(self) -> dict[str, Any]:
        return self.doc["strategy"]["config"]

    def matrix(self) -> tuple[list[str], list[list[float | None]]]:
        names = {t["id"]: t["name"] for t in self.tasks}
        order = [names[t] for t in self.doc.get("R_tasks", [])]
        R = self.doc.get("R", [])
        return order, metrics.square(R)

    def metrics(self) -> dict[str, float | None]:
        return metrics.summary(self.doc.get("R", []))

    def class_il(self) -> tuple[list[list[float | None]], dict[str, float | None]] | None:
        """R and its summary in Class-IL, for one-head strategies (None for per-task-head ones)."""
        if "R_class_il" not in self.doc:
            return None
        R = self.doc["R_class_il"]
        return metrics.square(R), metrics.summary(R)

    def task(self, name: str) -> dict[str, Any] | None:
        return next((t for t in self.tasks if t["name"] == name), None)
