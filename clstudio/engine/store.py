"""A project's folder on disk: its layout, its file names, and every write into it.

    project.json                    what the project is (ProjectDoc: format version, backbone, strategy +
                                    config, preprocessing, tasks with classes and splits, accuracy matrix R)
    tasks/<id>.json                 a task's file index (TaskIndex): source folder, classes, splits
    weights/task-<id>.safetensors   that task's own tensors only (CLR: adapters + BN + head)
    weights/shared-<n>.safetensors  tensors all tasks share, for strategies that change them (fine-tune)
    weights/anchor.safetensors      the backbone, only when it is a random init nobody else can rebuild
    weights/router-<n>.safetensors  the task router's shared covariance statistics (engine/routing.py)
    checkpoints/<id>.safetensors    the epoch checkpoint of a task in training
    evals/after-<id>.json           per-image answers of the evaluation after task <id> (engine/evaluations.py)
    history.jsonl                   append-only log of epochs, evaluations and finished tasks

project.json is the commit point: weight files are written first under names nothing references yet,
then project.json is replaced atomically. A crash or a cancel at any moment leaves the last good state.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from clstudio.engine import evaluations, project_file, proof
from clstudio.engine.data.scan import ScanReport
from clstudio.engine.errors import ProjectError
from clstudio.engine.events import Event
from clstudio.engine.records import ProjectDoc, TaskEntry, TaskIndex
from clstudio.engine.storage import (
    append_jsonl,
    atomic_write_json,
    load_tensors,
    read_json,
    read_jsonl,
    read_metadata,
    save_tensors,
)

if TYPE_CHECKING:
    from clstudio.engine.evaluate import TaskPredictions

TensorDict = dict[str, torch.Tensor]
ANCHOR = "weights/anchor.safetensors"
HISTORY = "history.jsonl"


class ProjectStore:
    def __init__(self, folder: Path, doc: ProjectDoc) -> None:
        self.folder = folder
        self.doc = doc

    # --- create / open -----------------------------------------------------------------------------
    @classmethod
    def create(cls, folder: Path, doc: ProjectDoc, anchor: tuple[TensorDict, dict[str, str]] | None) -> ProjectStore:
        """Write a new project into a new or empty folder; on any failure remove what this call wrote."""
        if (folder / project_file.PROJECT_FILE).exists():
            raise ProjectError(f"A project already exists at {folder}.")
        if folder.exists() and any(folder.iterdir()):
            raise ProjectError(f"{folder} is not empty; choose a new or empty folder for the project.")
        existed = folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
        try:
            if anchor is not None:
                save_tensors(folder / ANCHOR, *anchor)
            project_file.save(folder, doc)
        except BaseException:
            # Half a project is no project (the folder was empty or absent before).
            if existed:
                _empty_folder(folder)
            else:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        return cls(folder, doc)

    @classmethod
    def open(cls, folder: Path) -> ProjectStore:
        return cls(folder, cast(ProjectDoc, project_file.load(folder)))

    def reload(self) -> None:
        """Back to what is committed on disk (after a failed or cancelled change)."""
        self.doc = cast(ProjectDoc, project_file.load(self.folder))

    def save(self) -> None:
        project_file.save(self.folder, self.doc)

    # --- reading -------------------------------------------------------------------------------------
    def index(self, task: TaskEntry) -> TaskIndex:
        return cast(TaskIndex, read_json(self.folder / task["index"]))

    def anchor(self) -> TensorDict:
        return load_tensors(self.folder / ANCHOR)[0]

    def task_weights(self, task: TaskEntry) -> TensorDict:
        assert task["weights"] is not None
        return load_tensors(self.folder / task["weights"])[0]

    def router_shared(self) -> TensorDict | None:
        rel = self.doc.get("router_weights")
        return load_tensors(self.folder / rel)[0] if rel else None

    def shared_weights(self) -> TensorDict | None:
        rel = self.doc.get("shared_weights")
        return load_tensors(self.folder / rel)[0] if rel else None

    def file_size(self, rel: str | None) -> int:
        path = self.folder / rel if rel else None
        return path.stat().st_size if path is not None and path.exists() else 0

    def checkpoint_path(self, task: TaskEntry) -> Path:
        return self.folder / "checkpoints" / f"{task['id']}.safetensors"

    def live_model_path(self, task: TaskEntry) -> Path:
        """A usable model of a task still in training (the probe head CLR starts from), for Classify."""
        return self.folder / "checkpoints" / f"{task['id']}-live.safetensors"

    def save_live_model(self, task: TaskEntry, tensors: TensorDict, facts: Mapping[str, str]) -> None:
        meta = {"kind": "live", "task": task["name"], "signature": self.checkpoint_signature(task), **facts}
        save_tensors(self.live_model_path(task), tensors, meta)

    def live_model(self, task: TaskEntry) -> dict[str, str] | None:
        """What the task's live model is (its file's metadata: model, val_acc, seconds), or None: the task is
        trained, has none, or has one left by a training with other data or settings."""
        if task["trained"]:
            return None
        meta = read_metadata(self.live_model_path(task))
        if not meta or meta.get("signature") != self.checkpoint_signature(task):
            return None
        return meta

    def discard_progress(self, task: TaskEntry) -> None:
        """Forget a task's unfinished training: its epoch checkpoint and its live model."""
        self.checkpoint_path(task).unlink(missing_ok=True)
        self.live_model_path(task).unlink(missing_ok=True)

    def checkpoint_signature(self, task: TaskEntry) -> str:
        """A checkpoint resumes only the same training: same task data, settings, anchor and shared weights."""
        parts = [
            task["id"],
            task["fingerprint"],
            json.dumps(self.doc["strategy"]["config"], sort_keys=True),
            json.dumps(self.doc["preprocessing"], sort_keys=True),
            self.doc["backbone"]["fingerprint"],
            str(self.doc.get("shared_weights")),
            str(self.doc["R_tasks"]),
        ]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]

    def history(self) -> list[dict[str, Any]]:
        return read_jsonl(self.folder / HISTORY)

    def evaluation(self, row: int) -> dict[str, Any] | None:
        """The per-image record behind row ``row`` of R; None for rows from before such records, or where the
        file is gone (a project copied without ``evals/``): R itself stays valid without it."""
        rels = self.doc.get("R_evaluations") or []
        rel = rels[row] if 0 <= row < len(rels) else None
        if not rel or not (self.folder / rel).exists():
            return None
        return _cached_record(self.folder / rel)

    # --- writing -------------------------------------------------------------------------------------
    def add_task(self, report: ScanReport, name: str) -> TaskEntry:
        """A new, untrained task from an accepted scan: the index first (nothing refers to it yet), then the
        entry in project.json. A name already taken gets a number ("flowers-2")."""
        names = {t["name"] for t in self.doc["tasks"]}
        unique, n = name, 2
        while unique in names:
            unique, n = f"{name}-{n}", n + 1
        tid = self._next_task_id()
        index: TaskIndex = {
            "root": report.root,
            "layout": report.layout,
            "classes": report.classes,
            "train": [list(x) for x in report.train],
            "val": [list(x) for x in report.val],
            "test": [list(x) for x in report.test],
            "problems": [[p.path, p.reason] for p in report.problems],
            "skipped": len(report.skipped),
        }
        entry: TaskEntry = {
            "id": tid,
            "name": unique,
            "source": report.root,
            "classes": report.classes,
            "index": f"tasks/{tid}.json",
            "fingerprint": report.fingerprint(),
            "train_images": len(report.train),
            "val_images": len(report.val),
            "eval_images": len(report.eval_split),
            "class_counts": {c: list(v) for c, v in report.counts().items()},
            "eval_on": report.eval_on,
            "trained": False,
            "weights": None,
        }
        atomic_write_json(self.folder / entry["index"], index)
        self.doc["tasks"].append(entry)
        self.save()
        return entry

    def _next_task_id(self) -> str:
        used = {t["id"] for t in self.doc["tasks"]}
        n = len(used) + 1
        while f"t{n}" in used:
            n += 1
        return f"t{n}"

    def append_history(self, event: Event) -> None:
        try:
            append_jsonl(self.folder / HISTORY, {"time": time.time(), **event.to_dict()})
        except OSError:
            pass  # the history is a log; failing to append must not fail training

    def commit_task(
        self,
        task: TaskEntry,
        task_tensors: TensorDict,
        shared_tensors: TensorDict,
        facts: Mapping[str, Any],
        row: Mapping[str, float],
        row_class_il: Mapping[str, float] | None,
        strategy: str,
        router_shared: TensorDict | None = None,
        routed_rows: Mapping[str, Mapping[str, float]] | None = None,
        evaluation: Mapping[str, Any] | None = None,
        proof_of: TaskPredictions | None = None,
    ) -> None:
        """Make a trained task permanent: its weights (and new shared weights), its facts, a new row of R.
        All or nothing: on failure the files this call wrote are removed and ``doc`` is the committed one.
        ``router_shared``: the router's new shared statistics; ``routed_rows``: rows of the routed matrices
        (``R_routing``: task-routing accuracy, ``R_routed``: Class-IL accuracy through the router);
        ``evaluation``: the per-image record behind the new row; ``proof_of``: the task's own answers, for
        strategies whose earlier tasks cannot change (its zero-forgetting proof, engine/proof.py)."""
        new_files: list[Path] = []
        old_shared = self.doc.get("shared_weights")
        old_router = self.doc.get("router_weights")
        try:
            rel = f"weights/task-{task['id']}.safetensors"
            meta = {"kind": "task", "task": task["name"], "strategy": strategy, "classes": "\n".join(task["classes"])}
            save_tensors(self.folder / rel, task_tensors, meta)
            new_files.append(self.folder / rel)
            entry = cast(dict[str, Any], task)
            if proof_of is not None:
                entry["proof"] = proof.record_for(self.folder / rel, task_tensors, proof_of)
            rel_eval = None
            if evaluation is not None:
                rel_eval = evaluations.file_for(task["id"])
                atomic_write_json(self.folder / rel_eval, evaluation)
                new_files.append(self.folder / rel_eval)
            if shared_tensors:
                n = int(Path(old_shared).stem.split("-")[-1]) + 1 if old_shared else 1
                rel_shared = f"weights/shared-{n}.safetensors"
                save_tensors(self.folder / rel_shared, shared_tensors, {"kind": "shared", "after_task": task["name"]})
                new_files.append(self.folder / rel_shared)
                self.doc["shared_weights"] = rel_shared
            if router_shared is not None:
                n = int(Path(old_router).stem.split("-")[-1]) + 1 if old_router else 1
                rel_router = f"weights/router-{n}.safetensors"
                save_tensors(self.folder / rel_router, router_shared, {"kind": "router", "after_task": task["name"]})
                new_files.append(self.folder / rel_router)
                self.doc["router_weights"] = rel_router
            entry.update(facts)
            entry.update(trained=True, weights=rel)
            order = self.doc["R_tasks"] + [task["id"]]
            self.doc["R"].append([row[t] for t in order])
            if row_class_il is not None:
                self.doc.setdefault("R_class_il", []).append([row_class_il[t] for t in order])
            for key, values in (routed_rows or {}).items():
                self.doc.setdefault(key, []).append([values[t] for t in order])  # type: ignore[misc]
            if rel_eval is not None or "R_evaluations" in self.doc:
                # Rows from before per-image records have none: the list keeps step with R.
                kept = self.doc.get("R_evaluations", [None] * (len(self.doc["R"]) - 1))
                self.doc["R_evaluations"] = [*kept, rel_eval]
            self.doc["R_tasks"].append(task["id"])
            self.save()  # the commit point
        except BaseException:
            self.reload()
            for f in new_files:
                if not self._referenced(f):
                    f.unlink(missing_ok=True)
            raise
        if shared_tensors and old_shared:
            (self.folder / old_shared).unlink(missing_ok=True)
        if router_shared is not None and old_router:
            (self.folder / old_router).unlink(missing_ok=True)
        self.discard_progress(task)

    def _referenced(self, path: Path) -> bool:
        rels = {t.get("weights") for t in self.doc["tasks"]}
        rels |= {self.doc.get("shared_weights"), self.doc.get("router_weights"), *self.doc.get("R_evaluations", [])}
        return any(r and (self.folder / r) == path for r in rels)


def _empty_folder(folder: Path) -> None:
    for child in folder.iterdir():
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _cached_record(path: Path) -> dict[str, Any]:
    """An evaluation record, parsed once per version of its file: the forgetting timeline reads every row
    for every earlier task, and these files are never edited in place (a retrain writes a new one). Callers
    only read the record."""
    st = path.stat()
    return _load_record(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=32)  # a few rows of a big project; each holds one row's per-image answers
def _load_record(path: str, _mtime_ns: int, _size: int) -> dict[str, Any]:
    return evaluations.load(Path(path))
