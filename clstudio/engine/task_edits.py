"""Changing the queue of tasks that wait to be trained: remove one (and bring it back), rename one, change
the order they will train in. Only waiting tasks: a trained task's name and place are in R, its evaluation
records, its proof and the history, so editing it would rewrite what was measured.

Each edit is one atomic write of project.json; a removed task's index is kept in the returned record (not
on disk), so the caller — the app — can offer Undo for the last removal."""

from __future__ import annotations

import copy
import re
from typing import Any, TypedDict

from clstudio.engine.errors import ProjectError
from clstudio.engine.records import TaskEntry
from clstudio.engine.storage import atomic_write_json, read_json
from clstudio.engine.store import ProjectStore

BAD_NAME = re.compile(r"[\x00-\x1f\\/]")  # names label files in reports and exports: no separators


class RemovedTask(TypedDict):
    entry: TaskEntry
    index: dict[str, Any]
    position: int  # where it stood in project.json's task list


def _waiting(store: ProjectStore, name: str) -> TaskEntry:
    for t in store.doc["tasks"]:
        if t["name"] == name:
            if t["trained"]:
                raise ProjectError(
                    f"'{name}' is trained: its name and place are part of the accuracy matrix and its proof, "
                    "so only waiting tasks can be renamed, moved or removed."
                )
            return t
    raise ProjectError(f"No task named '{name}' in this project.")


def remove_waiting(store: ProjectStore, name: str) -> RemovedTask:
    task = _waiting(store, name)
    removed: RemovedTask = {
        "entry": copy.deepcopy(task),
        "index": read_json(store.folder / task["index"]),
        "position": store.doc["tasks"].index(task),
    }
    store.doc["tasks"].remove(task)
    store.save()
    (store.folder / task["index"]).unlink(missing_ok=True)
    store.checkpoint_path(task).unlink(missing_ok=True)  # an interrupted run of it cannot resume any more
    return removed


def restore_waiting(store: ProjectStore, removed: RemovedTask) -> TaskEntry:
    """Undo a removal: the task back at its place, under a fresh id or name where one was taken since."""
    entry = copy.deepcopy(removed["entry"])
    if any(t["id"] == entry["id"] for t in store.doc["tasks"]):
        entry["id"] = store._next_task_id()
        entry["index"] = f"tasks/{entry['id']}.json"
    taken = {t["name"] for t in store.doc["tasks"]}
    base, n = entry["name"], 2
    while entry["name"] in taken:
        entry["name"], n = f"{base}-{n}", n + 1
    if any(t["source"] == entry["source"] for t in store.doc["tasks"]):
        raise ProjectError(f"'{entry['source']}' was added again since: the removed task is not brought back twice.")
    atomic_write_json(store.folder / entry["index"], removed["index"])
    store.doc["tasks"].insert(min(removed["position"], len(store.doc["tasks"])), entry)
    store.save()
    return entry


def rename_waiting(store: ProjectStore, name: str, new_name: str) -> TaskEntry:
    task = _waiting(store, name)
    new_name = new_name.strip()
    if not new_name or BAD_NAME.search(new_name):
        raise ProjectError("A task name must not be empty or hold a slash, a backslash or a control character.")
    if any(t["name"] == new_name for t in store.doc["tasks"] if t is not task):
        raise ProjectError(f"There is a task named '{new_name}' already.")
    task["name"] = new_name
    store.save()
    return task


def reorder_waiting(store: ProjectStore, names: list[str]) -> None:
    """Waiting tasks train in the order given; ``names`` must be exactly the waiting tasks."""
    waiting = [t for t in store.doc["tasks"] if not t["trained"]]
    if sorted(names) != sorted(t["name"] for t in waiting):
        raise ProjectError("The new order must list every waiting task once, and only those.")
    by_name = {t["name"]: t for t in waiting}
    store.doc["tasks"] = [t for t in store.doc["tasks"] if t["trained"]] + [by_name[n] for n in names]
    store.save()
