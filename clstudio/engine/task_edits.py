"""Changing the tasks of a project: remove a waiting task (and bring it back), rename one, change the order
waiting tasks will train in; and delete a trained task where the strategy keeps every task apart (CLR, the
linear probe: nothing shared trains, so the other tasks are exactly as if it had never been learned).

Waiting-task edits are one atomic write of project.json each; a removed task's index is kept in the returned
record, so the app can offer Undo. Deleting a trained task moves its files into ``trash/`` with the
project.json from before, so Undo puts everything back as long as nothing changed since."""

from __future__ import annotations

import copy
import hashlib
import re
import shutil
import time
from typing import Any, TypedDict

from clstudio.engine.errors import ProjectError
from clstudio.engine.records import TaskEntry
from clstudio.engine.storage import atomic_write_json, read_json, save_tensors
from clstudio.engine.store import ProjectStore

BAD_NAME = re.compile(r"[\x00-\x1f\\/]")  # names label files in reports and exports: no separators


MATRICES = ("R", "R_class_il", "R_routing", "R_routed")  # rows: after each task; columns: each task


class DeletedTask(TypedDict):
    name: str
    trash: str  # trash/<id>-<time>/ in the project: the moved files and the project.json from before
    moved: list[str]  # project-relative paths now under ``trash``
    written: list[str]  # files the deletion wrote (a new router file), removed again by Undo
    after_sha256: str  # project.json right after the deletion: Undo only while it is still that


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
    store.discard_progress(task)  # an interrupted run of it cannot resume any more
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


def _digest(store: ProjectStore) -> str:
    return hashlib.sha256((store.folder / "project.json").read_bytes()).hexdigest()


def delete_trained(store: ProjectStore, name: str, router_shared: dict[str, Any] | None) -> DeletedTask:
    """Take a trained task out: its entry, its row and column of every matrix, its evaluation record, its
    weights and index (moved to trash/). ``router_shared``: the router statistics without it (None when it
    was the only task). The caller checks that the strategy keeps tasks apart."""
    doc = store.doc
    task = next((t for t in doc["tasks"] if t["name"] == name and t["trained"]), None)
    if task is None:
        raise ProjectError(f"No trained task named '{name}' in this project.")
    r = doc["R_tasks"].index(task["id"])
    trash = f"trash/{task['id']}-{time.time_ns()}"
    (store.folder / trash).mkdir(parents=True)
    atomic_write_json(store.folder / trash / "project.json", doc)  # what Undo writes back
    moved = [task["index"], *([task["weights"]] if task["weights"] else [])]
    evals = doc.get("R_evaluations")
    if evals is not None:
        record = evals[r]
        if record:
            moved.append(record)
        doc["R_evaluations"] = evals[:r] + evals[r + 1 :]
    for key in MATRICES:
        if key in doc:
            doc[key] = [row[:r] + row[r + 1 :] for i, row in enumerate(doc[key]) if i != r]  # type: ignore[literal-required]
    if "R_routed" in doc:
        doc["routed_note"] = f"Measured while '{name}' was one of the tasks to route to; it was deleted since."
    doc["R_tasks"].remove(task["id"])
    doc["tasks"].remove(task)
    written = []
    old_router = doc.get("router_weights")
    if old_router:
        moved.append(old_router)
        if router_shared is None:
            del doc["router_weights"]
        else:
            n = int(old_router.rsplit("-", 1)[-1].split(".")[0]) + 1
            rel = f"weights/router-{n}.safetensors"
            save_tensors(store.folder / rel, router_shared, {"kind": "router", "after_deleting": name})
            written.append(rel)
            doc["router_weights"] = rel
    store.save()
    for rel in moved:
        target = store.folder / trash / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(store.folder / rel, target)
    store.discard_progress(task)
    return {"name": name, "trash": trash, "moved": moved, "written": written, "after_sha256": _digest(store)}


def restore_deleted(store: ProjectStore, deleted: DeletedTask) -> str:
    """Undo a deletion: the files back from trash/, project.json as it was before. Refused once the
    project changed since (a task trained or added in between would be lost)."""
    if _digest(store) != deleted["after_sha256"]:
        raise ProjectError(
            f"The project changed since '{deleted['name']}' was deleted, so it cannot come back: its files "
            f"are kept in {store.folder / deleted['trash']}."
        )
    trash = store.folder / deleted["trash"]
    for rel in deleted["moved"]:
        shutil.move(trash / rel, store.folder / rel)
    atomic_write_json(store.folder / "project.json", read_json(trash / "project.json"))
    for rel in deleted["written"]:
        (store.folder / rel).unlink(missing_ok=True)
    shutil.rmtree(trash, ignore_errors=True)
    store.reload()
    return deleted["name"]
