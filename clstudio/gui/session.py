"""The app's session with one project: what the window shows, rebuilt from the project's files and kept
current by engine events, and the policy of the window (scan queue, tasks queued during training, when
settings apply). Qt-free on purpose, so it is tested without a display; the panels render it.
Accuracy curves come from history.jsonl, so they survive closing and reopening the app.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clstudio.engine import events as ev
from clstudio.engine import task_edits
from clstudio.engine.data.scan import ScanReport
from clstudio.engine.errors import CLStudioError, ProjectError
from clstudio.engine.project import Project
from clstudio.engine.records import TaskEntry
from clstudio.engine.store import ProjectStore
from clstudio.engine.views import SavedProject


@dataclass
class Curves:
    """Accuracy per task over the whole stream: x = epochs counted across every task."""

    points: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    boundaries: list[tuple[float, str]] = field(default_factory=list)  # (x, task that ended there)
    loss: list[tuple[float, float]] = field(default_factory=list)  # current task's train loss per epoch
    epoch: int = 0  # global epoch counter
    _task_start: tuple[str, int, dict[str, int]] | None = None

    def keep_only(self, names: set[str]) -> None:
        """Drop the curves and boundaries of tasks no longer in the project (removed or deleted)."""
        self.points = {t: p for t, p in self.points.items() if t in names}
        self.boundaries = [(x, t) for x, t in self.boundaries if t in names]

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


class Session:
    """What the window is doing with one project: the saved project it shows, the accuracy curves, the
    folders waiting to be scanned, the tasks accepted while training runs (added when it ends) and the task
    in training. The window asks it what to do and renders what it holds; it never touches a model."""

    def __init__(self, folder: Path) -> None:
        self.view = SavedProject(Path(folder))
        self.curves = Curves()
        self.training: str | None = None  # the task the training process is on, None when idle
        self.scan_queue: list[Path] = []
        self.queued: list[tuple[ScanReport, str]] = []  # accepted while training: added after it
        self.last_removed: task_edits.RemovedTask | task_edits.DeletedTask | None = None  # what Undo brings back
        self.reload()

    @property
    def folder(self) -> Path:
        return self.view.folder

    @property
    def tasks(self) -> list[TaskEntry]:
        return self.view.tasks

    @property
    def queued_names(self) -> list[str]:
        return [name for _, name in self.queued]

    def reload(self) -> None:
        """Re-read project.json and rebuild the curves from history.jsonl."""
        self.view.reload()
        self.curves = Curves()
        for record in self.view.history():
            self.curves.apply(record)
        if self.curves._task_start is not None:  # a run that crashed mid-task: same as cancelled
            self.curves.apply({"event": "Cancelled", "task": self.curves._task_start[0]})
        self.curves.keep_only({t["name"] for t in self.view.tasks})  # not the curves of removed tasks

    # --- adding tasks --------------------------------------------------------------------------------
    def enqueue(self, paths: list[Path]) -> list[str]:
        """Queue dropped folders for scanning; returns messages for what was refused (files, known folders)."""
        refused = []
        for p in paths:
            if not p.is_dir():
                refused.append(
                    f"'{p.name}' is not a folder. Drop a folder that holds one subfolder per class "
                    f"(to classify an image, use the Classify tab)."
                )
            elif (known := self.view.task_from_folder(p)) is not None:
                refused.append(f"'{p.name}' is already task '{known['name']}' in this project.")
            else:
                self.scan_queue.append(p)
        return refused

    def next_scan(self) -> Path | None:
        return self.scan_queue.pop(0) if self.scan_queue else None

    def accept(self, report: ScanReport, name: str) -> str:
        """The person accepted a scanned folder: add it now, or after the running training. Returns what to
        tell them; raises CLStudioError when the project refuses it."""
        if self.training is not None:
            self.queued.append((report, name))
            return f"'{name}' will be added when the current training ends."
        entry = Project.open(self.folder).add_task(report, name=name)  # builds no model: that is lazy
        self.view.reload()
        return f"Added task '{entry['name']}' ({len(entry['classes'])} classes)."

    # --- editing the waiting tasks --------------------------------------------------------------------
    def _edit(self, fn: Any, *args: Any) -> Any:
        if self.training is not None:
            # The training process writes project.json when a task ends: an edit now would be overwritten.
            raise ProjectError("Training is running: change the waiting tasks when it has ended (or Cancel it).")
        out = fn(ProjectStore.open(self.folder), *args)
        self.view.reload()
        return out

    def remove_task(self, name: str) -> None:
        """Remove a waiting task; ``undo_remove`` brings the last one removed back."""
        self.last_removed = self._edit(task_edits.remove_waiting, name)

    def deleted(self, record: task_edits.DeletedTask) -> None:
        """A trained task was deleted (by a worker: it needs the model); Undo can bring it back."""
        self.last_removed = record
        self.reload()

    def undo_remove(self) -> str:
        """Bring back the last task removed from the queue or deleted; returns its name."""
        removed, self.last_removed = self.last_removed, None
        if removed is None:
            raise ProjectError("Nothing to undo.")
        if "trash" in removed:
            name = str(self._edit(task_edits.restore_deleted, removed))
        else:
            name = str(self._edit(task_edits.restore_waiting, removed)["name"])
        self.reload()
        return name

    def rename_task(self, name: str, new_name: str) -> None:
        self._edit(task_edits.rename_waiting, name, new_name)

    def reorder_tasks(self, names: list[str]) -> None:
        self._edit(task_edits.reorder_waiting, names)

    # --- training ------------------------------------------------------------------------------------
    def can_start(self) -> bool:
        return self.training is None and bool(self.view.pending_tasks())

    def needs_reconfigure(self, strategy: str, config: dict[str, Any]) -> bool:
        """Settings changed in the form apply to the project while no task is trained (then they are fixed)."""
        if self.view.trained_tasks():
            return False
        return strategy != self.view.strategy_name or config != self.view.config

    def start(self) -> list[str]:
        names = [t["name"] for t in self.view.pending_tasks()]
        self.training = names[0] if names else None
        return names

    def on_event(self, event: ev.Event) -> bool:
        """Follow the training process; True when the curves changed."""
        if isinstance(event, ev.TaskStarted):
            self.training = event.task
        if isinstance(event, ev.TaskFinished):
            self.view.reload()  # the training process committed: show what is on disk
        if isinstance(event, ev.TaskStarted | ev.EpochEnded | ev.EvalFinished | ev.Cancelled | ev.Failed):
            self.curves.apply(event)
            return True
        return False

    def training_ended(self) -> list[str]:
        """Training stopped (done, cancelled or failed): add the tasks accepted meanwhile. Returns errors."""
        self.training = None
        errors = []
        for report, name in self.queued:
            try:
                Project.open(self.folder).add_task(report, name=name)
            except CLStudioError as e:
                errors.append(str(e))
        self.queued.clear()
        self.reload()
        return errors
