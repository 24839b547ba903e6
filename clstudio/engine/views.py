"""Read-only views of a project document: what the CLI prints and the GUI shows, without a model.

``Project`` is one (over the live document); the GUI's session builds one over project.json as it is on
disk, so the window never holds a model or a second copy of these rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clstudio.engine import metrics, report
from clstudio.engine.data.scan import MIN_EVAL_PER_CLASS
from clstudio.engine.errors import ProjectError
from clstudio.engine.records import ProjectDoc, TaskEntry, TaskIndex
from clstudio.engine.store import ProjectStore
from clstudio.engine.strategies.registry import get_strategy_class


class ProjectView:
    store: ProjectStore  # the folder the document was read from

    @property
    def doc(self) -> ProjectDoc:
        return self.store.doc

    @property
    def strategy_name(self) -> str:
        return self.doc["strategy"]["name"]

    @property
    def config(self) -> dict[str, Any]:
        return self.doc["strategy"]["config"]

    @property
    def class_incremental(self) -> bool:
        """One shared head over all classes (rehearsal strategies): R is kept in Class-IL too."""
        return get_strategy_class(self.strategy_name).class_incremental

    @property
    def tasks(self) -> list[TaskEntry]:
        return self.doc["tasks"]

    def task(self, name: str) -> TaskEntry:
        for t in self.tasks:
            if t["name"] == name or t["id"] == name:
                return t
        known = ", ".join(t["name"] for t in self.tasks) or "none yet"
        raise ProjectError(f"No task named '{name}' in this project. Tasks: {known}")

    def task_from_folder(self, folder: str | Path) -> TaskEntry | None:
        """The task already made from this folder, if any."""
        source = str(Path(folder).expanduser().resolve())
        return next((t for t in self.tasks if t["source"] == source), None)

    def trained_tasks(self) -> list[TaskEntry]:
        return [t for t in self.tasks if t["trained"]]

    def pending_tasks(self) -> list[TaskEntry]:
        return [t for t in self.tasks if not t["trained"]]

    def trained_names(self) -> list[str]:
        """Trained tasks in training order: the rows and columns of R."""
        names = {t["id"]: t["name"] for t in self.tasks}
        return [names[t] for t in self.doc["R_tasks"]]

    def accuracy_matrix(self) -> list[list[float | None]]:
        """R as a square matrix over the trained tasks in training order, None above the diagonal."""
        return metrics.square(self.doc["R"])

    def metrics(self) -> dict[str, float | None]:
        return metrics.summary(self.doc["R"])

    def accuracy_matrix_class_il(self) -> list[list[float | None]] | None:
        """R in Class-IL (argmax over every class seen), for one-head strategies; None for the others."""
        return metrics.square(self.doc["R_class_il"]) if "R_class_il" in self.doc else None

    def metrics_class_il(self) -> dict[str, float | None] | None:
        return metrics.summary(self.doc["R_class_il"]) if "R_class_il" in self.doc else None

    @property
    def can_route(self) -> bool:
        """Whether ``classify --task auto`` works: every trained task has its router statistics."""
        return bool(self.doc.get("router_weights")) and self.routed() is not None

    def routed(self) -> dict[str, Any] | None:
        """Through the task router (per-task strategies): the routing-accuracy matrix, the routed Class-IL
        matrix and its ACC; None where tasks were trained without a router."""
        if "R_routed" not in self.doc or len(self.doc["R_routed"]) != len(self.doc["R"]):
            return None
        routed = self.doc["R_routed"]
        return {
            "routing_accuracy": metrics.square(self.doc["R_routing"]),
            "R": metrics.square(routed),
            "ACC": metrics.summary(routed)["ACC"],
            "routing_ACC": metrics.summary(self.doc["R_routing"])["ACC"],
        }

    def last_row(self) -> list[float]:
        return self.doc["R"][-1] if self.doc["R"] else []

    def evaluation_basis(self) -> list[dict[str, Any]]:
        """Per trained task: which images its accuracies are measured on, how many (the fewest per class), and
        warnings where a number rests on too few images or sits near chance."""
        out = []
        last = self.doc["R"][-1] if self.doc["R"] else []
        for col, tid in enumerate(self.doc["R_tasks"]):
            t = self.task(tid)
            per_class = [counts[1] for counts in t["class_counts"].values()]
            eval_on = "test" if report.held_out(self.store, t) else "val"
            warnings = []
            if eval_on == "val":
                warnings.append("measured on the validation images that also chose the epoch: optimistic")
            if min(per_class) < MIN_EVAL_PER_CLASS:
                warnings.append(
                    f"rests on {min(per_class)} images for its smallest class (fewer than {MIN_EVAL_PER_CLASS})"
                )
            if metrics.near_chance(last[col], len(t["classes"]), t["eval_images"]):
                warnings.append(
                    f"{last[col]:.0%} is near chance ({1 / len(t['classes']):.0%} for {len(t['classes'])} classes)"
                )
            out.append(
                {
                    "task": t["name"],
                    "eval_on": eval_on,
                    "eval_images": t["eval_images"],
                    "min_per_class": min(per_class),
                    "warnings": warnings,
                }
            )
        return out

    def task_index(self, task: TaskEntry) -> TaskIndex:
        return self.store.index(task)

    def info(self) -> dict[str, Any]:
        return report.info(self.store, self.class_incremental)

    def sparsity_report(self) -> dict[str, Any]:
        return report.sparsity_report(self.doc)

    def history(self) -> list[dict[str, Any]]:
        return self.store.history()


class SavedProject(ProjectView):
    """The views over project.json as it is on disk now, with no model: what the app's window shows while
    the training process owns the model."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.store = ProjectStore.open(self.folder)

    def reload(self) -> None:
        self.store.reload()
