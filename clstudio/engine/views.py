"""Read-only views of a project document: what the CLI prints and the GUI shows, without a model.

``Project`` is one (over the live document); the GUI's session builds one over project.json as it is on
disk, so the window never holds a model or a second copy of these rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clstudio.engine import metrics, per_class, report
from clstudio.engine.data import input_size
from clstudio.engine.data.scan import MIN_EVAL_PER_CLASS
from clstudio.engine.errors import ProjectError
from clstudio.engine.models.backbones import list_backbones
from clstudio.engine.records import ProjectDoc, TaskEntry, TaskIndex
from clstudio.engine.store import ProjectStore
from clstudio.engine.strategies.registry import get_strategy_class


@dataclass(frozen=True)
class TaskAnswers:
    """One task's evaluation images and the model's answers to them after task ``after``: per image its
    file, true class, predicted class (−1: unreadable) and the two probabilities."""

    task: str
    after: str
    classes: list[str]
    files: list[str]
    labels: list[int]
    pred: list[int]
    p_pred: list[float]
    p_true: list[float]

    def confusion(self) -> list[list[int]]:
        return per_class.confusion(self.labels, self.pred, len(self.classes))

    def cell(self, true_class: int, predicted: int) -> list[int]:
        """Positions of the images of one confusion cell."""
        return per_class.cell_images(self.labels, self.pred, true_class, predicted)


class ProjectView:
    store: ProjectStore  # the folder the document was read from

    @property
    def doc(self) -> ProjectDoc:
        return self.store.doc

    @property
    def tasks_kept_apart(self) -> bool:
        """Whether a trained task can be deleted exactly: nothing shared trains and every task has its own
        head (CLR, linear probe). From the footprint recorded at creation; older projects by strategy name."""
        footprint = self.doc["strategy"].get("per_task")
        if footprint is not None:
            return not self.class_incremental and not footprint.get("shared_params")
        return self.strategy_name in ("clr", "linear_probe")

    def auto_size_note(self) -> str:
        """What 'auto' image size may still become, for the settings to say: the first task's images decide
        it when it trains (data/input_size.py); empty once decided or where it cannot change."""
        prep = self.doc["preprocessing"]
        native, side = prep["image_size"], input_size.SMALL_IMAGE_SIDE
        small = input_size.auto_input_size(native, side)  # what the rule gives the largest 'small' images
        if self.trained_tasks() or "auto_from_image_side" in prep or small == native:
            return ""
        return f"; {small} for images ≤ {side} px"

    def strategy_blurb(self) -> str:
        """What each task costs on this project's backbone, measured on the strategy as built (the app shows
        it under the method's description)."""
        spec = self.doc["backbone"]
        backbone = list_backbones().get(spec["name"], spec["name"]).split(" (")[0].split(",")[0]
        if self.class_incremental:
            buffer = self.config.get("buffer_size")
            return f"One shared {backbone} for every task, a head that grows with the classes" + (
                f", and a replay buffer of {buffer} images." if buffer else "."
            )
        footprint, backbone_params = self.doc["strategy"].get("per_task"), spec.get("params")
        if not footprint or not backbone_params:
            return ""
        if footprint.get("shared_params"):
            return f"Every task trains all of {backbone} and its own head: earlier tasks drift (it forgets)."
        if footprint["params"] == 0:
            return f"Each task adds only its own linear head; {backbone} stays as it is."
        share = footprint["params"] / backbone_params
        return (
            f"Each task adds {share:.1%} of {backbone} ({footprint['params']:,} values, "
            f"{footprint['bytes'] / 1024:.0f} KB) plus its head; {backbone} itself never changes."
        )

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
            **({"note": self.doc["routed_note"]} if "routed_note" in self.doc else {}),
        }

    def last_row(self) -> list[float]:
        return self.doc["R"][-1] if self.doc["R"] else []

    def near_chance_when_trained(self) -> dict[str, float]:
        """Trained tasks whose accuracy right after training (their diagonal entry of R, on their evaluation
        images) is within two standard errors of guessing: name → that accuracy. A tick would be a lie."""
        out = {}
        for row, tid in enumerate(self.doc["R_tasks"]):
            t = self.task(tid)
            accuracy = self.doc["R"][row][row]
            if metrics.near_chance(accuracy, len(t["classes"]), t["eval_images"]):
                out[t["name"]] = accuracy
        return out

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

    # --- under the numbers: per-class results, images, flips, the zero-forgetting proof ----------------
    def answers(self, task_name: str, after: str | None = None) -> TaskAnswers | None:
        """How the model answered a task's evaluation images after task ``after`` was trained (default: the
        last one); None where that evaluation kept no per-image record (projects from before it)."""
        t = self.task(task_name)
        order = self.doc["R_tasks"]
        row = order.index(self.task(after)["id"]) if after is not None else len(order) - 1
        if t["id"] not in order or row < order.index(t["id"]):
            raise ProjectError(f"Task '{t['name']}' was not trained yet after '{self.task(order[row])['name']}'.")
        record = self.store.evaluation(row)
        if record is None or t["id"] not in record["tasks"]:
            return None
        index = self.store.index(t)
        items = index["test"] or index["val"]
        mine = record["tasks"][t["id"]]
        root = Path(index["root"])
        return TaskAnswers(
            task=t["name"],
            after=self.task(order[row])["name"],
            classes=list(t["classes"]),
            files=[str(root / rel) for rel, _ in items],
            labels=[int(y) for _, y in items],
            pred=[int(v) for v in mine["pred"]],
            p_pred=[float(v) for v in mine["p_pred"]],
            p_true=[float(v) for v in mine["p_true"]],
        )

    def per_class(self, task_name: str, after: str | None = None) -> dict[str, Any] | None:
        """Confusion matrix and per-class precision / recall / F1 / support (what ``eval --json`` carries)."""
        a = self.answers(task_name, after)
        if a is None:
            return None
        counts = a.confusion()
        return {
            "after": a.after,
            "classes": a.classes,
            "confusion": counts,
            "per_class": per_class.per_class_scores(counts, a.classes),
            "images": sum(1 for p in a.pred if p >= 0),
            "unreadable": sum(1 for p in a.pred if p < 0),
        }

    def flips(self) -> list[dict[str, Any]]:
        """After each task from the second on, for each earlier task: the evaluation images whose answer went
        right → wrong and wrong → right since the task before (positions in its evaluation list)."""
        names = self.trained_names()
        out = []
        for i in range(1, len(names)):
            for earlier in names[:i]:
                before, after = self.answers(earlier, names[i - 1]), self.answers(earlier, names[i])
                if before is None or after is None:
                    continue
                lost, gained = per_class.flips(after.labels, before.pred, after.pred)
                out.append({"after": names[i], "task": earlier, "right_to_wrong": lost, "wrong_to_right": gained})
        return out

    def forgetting_timeline(self) -> list[dict[str, Any]]:
        """Per trained task, one entry per moment from its own training on: the accuracy then (Task-IL, a
        column of R) and the images that flipped since the moment before (none at the first); a flip count is
        None where an evaluation kept no per-image record. What the app's forgetting tab draws."""
        names, R = self.trained_names(), self.accuracy_matrix()
        flips = {(f["task"], f["after"]): f for f in self.flips()}
        out = []
        for j, task in enumerate(names):
            moments = []
            for i in range(j, len(names)):
                f = flips.get((task, names[i]))
                recorded = i == j or f is not None
                moments.append(
                    {
                        "after": names[i],
                        "accuracy": R[i][j],
                        "right_to_wrong": (f["right_to_wrong"] if f else []) if recorded else None,
                        "wrong_to_right": (f["wrong_to_right"] if f else []) if recorded else None,
                    }
                )
            out.append({"task": task, "moments": moments})
        return out

    def proof_status(self) -> dict[str, dict[str, Any]]:
        """By task name, for tasks with a zero-forgetting proof: its digests and the verdict of the latest
        check (made when a later task was trained); empty for strategies whose earlier tasks can change."""
        latest = self.store.evaluation(len(self.doc["R_tasks"]) - 1) if self.doc["R_tasks"] else None
        checks = (latest or {}).get("checks", {})
        out = {}
        for t in self.trained_tasks():
            if "proof" not in t:
                continue
            check = checks.get(t["id"])
            out[t["name"]] = {
                "weights_sha256": t["proof"]["weights_sha256"],
                "answers_sha256": t["proof"]["probs_sha256"],
                "images": t["proof"]["images"],
                "checked_after": self.task(latest["after_task"])["name"] if check and latest else None,
                "verdict": check["verdict"] if check else "just trained (checked after the next task)",
                "unchanged": check["verdict"].startswith("unchanged") if check else None,
            }
        return out

    def live_model(self, task_name: str) -> dict[str, Any] | None:
        """The usable model of a task still in training, when it has one (CLR's probe head, saved before its
        first epoch): {"model", "val_acc", "seconds"}; Classify can use it."""
        meta = self.store.live_model(self.task(task_name))
        if meta is None:
            return None
        try:
            return {"model": meta["model"], "val_acc": float(meta["val_acc"]), "seconds": float(meta["seconds"])}
        except (KeyError, ValueError):
            return None  # not a live model this version wrote: nothing to offer

    def classifiable_names(self) -> list[str]:
        """Tasks Classify can answer for: the trained ones and a task in training that has a live model."""
        return [t["name"] for t in self.tasks if t["trained"] or self.live_model(t["name"]) is not None]

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
