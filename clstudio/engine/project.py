"""A Project: tasks learned one after another, stored in one folder.

    project.json                 what the project is (format version, backbone, strategy + config,
                                 preprocessing, tasks with classes and splits, accuracy matrix R)
    tasks/<id>.json              a task's file index: source folder, classes, train / val / test files
    weights/task-<id>.safetensors   that task's own tensors only (CLR: adapters + BN + head)
    weights/shared-<n>.safetensors  tensors all tasks share, for strategies that change them (fine-tune)
    weights/anchor.safetensors      the backbone, only when it is a random init nobody else can rebuild
    history.jsonl                append-only log of epochs, evaluations and finished tasks

project.json is the commit point: weight files are written first under names nothing references yet,
then project.json is replaced atomically. A crash or a cancel at any moment leaves the last good state.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from clstudio.engine import metrics, project_file
from clstudio.engine.cancel import CancelToken, PauseToken
from clstudio.engine.data.dataset import Preprocessing, load_uint8
from clstudio.engine.data.decode import DecodeError
from clstudio.engine.data.scan import ScanReport, scan_folder
from clstudio.engine.errors import Cancelled, CLStudioError, ProjectError
from clstudio.engine.events import Cancelled as CancelledEvent
from clstudio.engine.events import EvalFinished, Event, Failed, Observer, TaskAdded, TaskFinished, emit
from clstudio.engine.models.backbones import create_backbone, fingerprint
from clstudio.engine.storage import (
    append_jsonl,
    atomic_write_json,
    load_tensors,
    read_json,
    read_jsonl,
    save_tensors,
)
from clstudio.engine.strategies import create_strategy
from clstudio.engine.strategies.base import Strategy
from clstudio.engine.strategies.registry import get_strategy_class, make_config
from clstudio.engine.train import TaskData, Trainer, resolve_device

HISTORY_EVENTS = {"TaskStarted", "EpochEnded", "EvalFinished", "TaskFinished", "Cancelled", "Failed", "TaskAdded"}


class Project:
    def __init__(self, folder: Path, doc: dict[str, Any], device: str = "auto") -> None:
        self.folder = folder
        self.doc = doc
        self.device = resolve_device(device)
        self._strategy: Strategy | None = None
        self._trainer: Trainer | None = None

    # --- create / open ---------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        folder: str | Path,
        strategy: str = "clr",
        backbone: str | None = None,
        config: dict[str, Any] | None = None,
        preset: str | None = None,
        backbone_weights: str = "pretrained",
        backbone_weights_file: str | None = None,
        device: str = "auto",
    ) -> Project:
        folder = Path(folder).expanduser()
        if (folder / project_file.PROJECT_FILE).exists():
            raise ProjectError(f"A project already exists at {folder}.")
        if folder.exists() and any(folder.iterdir()):
            raise ProjectError(f"{folder} is not empty; choose a new or empty folder for the project.")
        cfg = make_config(strategy, config, preset)
        if backbone is None:  # a preset may name its backbone (SparCL's paper preset: CIFAR ResNet-18)
            presets = getattr(get_strategy_class(strategy), "PRESET_BACKBONES", {})
            backbone = presets.get(preset or "", "efficientnet_lite0")
        bb = create_backbone(backbone, backbone_weights, backbone_weights_file)
        size = cfg.image_size or bb.image_size
        prep = Preprocessing(size, bb.mean, bb.std)
        existed = folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
        try:
            if bb.stores_anchor:
                save_tensors(
                    folder / "weights" / "anchor.safetensors",
                    bb.model.state_dict(),
                    {"kind": "anchor", "backbone": bb.name},
                )
            doc = project_file.new_document(
                backbone={
                    "name": bb.name,
                    "weights": bb.weights,
                    "source": bb.source,
                    "weights_file": backbone_weights_file,
                    "fingerprint": fingerprint(bb.model),
                    "params": sum(p.numel() for p in bb.model.parameters()),
                },
                strategy={"name": strategy, "preset": preset, "config": dataclasses.asdict(cfg)},
                preprocessing={**prep.to_dict(), "mean": list(prep.mean), "std": list(prep.std)},
            )
            project_file.save(folder, doc)
        except BaseException:
            # Half a project is no project: remove what this call wrote (the folder was empty before).
            if existed:
                _empty_folder(folder)
            else:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        project = cls(folder, doc, device)
        project._strategy = project._build_strategy(bb)
        return project

    @classmethod
    def open(cls, folder: str | Path, device: str = "auto") -> Project:
        folder = Path(folder).expanduser()
        return cls(folder, project_file.load(folder), device)

    def reconfigure(self, strategy: str, config: dict[str, Any] | None = None) -> None:
        """Change strategy and settings; allowed only while no task is trained (they shape every task)."""
        if self.trained_tasks():
            raise ProjectError("The strategy and its settings are fixed once a task is trained. Start a new project.")
        cfg = make_config(strategy, config)
        spec = self.doc["backbone"]
        if (cfg.image_size or 0) != (self.doc["strategy"]["config"].get("image_size") or 0):
            bb_size = create_backbone(spec["name"], spec["weights"], spec.get("weights_file")).image_size
            self.doc["preprocessing"]["image_size"] = cfg.image_size or bb_size
        self.doc["strategy"] = {"name": strategy, "preset": None, "config": dataclasses.asdict(cfg)}
        project_file.save(self.folder, self.doc)
        self._strategy = None
        self._trainer = None

    # --- read-only views -----------------------------------------------------------------------------
    @property
    def strategy_name(self) -> str:
        return self.doc["strategy"]["name"]

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_dict(self.doc["preprocessing"])

    @property
    def tasks(self) -> list[dict[str, Any]]:
        return self.doc["tasks"]

    def task(self, name: str) -> dict[str, Any]:
        for t in self.tasks:
            if t["name"] == name or t["id"] == name:
                return t
        known = ", ".join(t["name"] for t in self.tasks) or "none yet"
        raise ProjectError(f"No task named '{name}' in this project. Tasks: {known}")

    def trained_tasks(self) -> list[dict[str, Any]]:
        return [t for t in self.tasks if t["trained"]]

    def pending_tasks(self) -> list[dict[str, Any]]:
        return [t for t in self.tasks if not t["trained"]]

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

    def task_index(self, task: dict[str, Any]) -> dict[str, Any]:
        return read_json(self.folder / task["index"])

    # --- tasks -------------------------------------------------------------------------------------------
    def add_task(
        self, source: str | Path | ScanReport, name: str | None = None, observers: Sequence[Observer] = ()
    ) -> dict[str, Any]:
        """Register a folder (or an accepted scan) as a new, untrained task."""
        report = source if isinstance(source, ScanReport) else scan_folder(source)
        name = self._unique_name(name or report.name)
        tid = self._next_id()
        index = {
            "root": report.root,
            "layout": report.layout,
            "classes": report.classes,
            "train": [list(x) for x in report.train],
            "val": [list(x) for x in report.val],
            "test": [list(x) for x in report.test],
            "problems": [[p.path, p.reason] for p in report.problems],
            "skipped": len(report.skipped),
        }
        rel_index = f"tasks/{tid}.json"
        atomic_write_json(self.folder / rel_index, index)
        counts = report.counts()
        entry = {
            "id": tid,
            "name": name,
            "source": report.root,
            "classes": report.classes,
            "index": rel_index,
            "fingerprint": report.fingerprint(),
            "train_images": len(report.train),
            "val_images": len(report.val),
            "eval_images": len(report.eval_split),
            "class_counts": {c: list(v) for c, v in counts.items()},
            "trained": False,
            "weights": None,
        }
        self.doc["tasks"].append(entry)
        project_file.save(self.folder, self.doc)
        self._log(TaskAdded(name, tuple(report.classes), len(report.train), len(report.eval_split)), observers)
        return entry

    def _unique_name(self, base: str) -> str:
        names = {t["name"] for t in self.tasks}
        name, n = base, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        return name

    def _next_id(self) -> str:
        used = {t["id"] for t in self.tasks}
        n = len(used) + 1
        while f"t{n}" in used:
            n += 1
        return f"t{n}"

    # --- model -------------------------------------------------------------------------------------------
    def _build_strategy(self, backbone: Any = None) -> Strategy:
        spec = self.doc["backbone"]
        if backbone is None:
            backbone = create_backbone(spec["name"], spec["weights"], spec.get("weights_file"))
            if backbone.stores_anchor:
                tensors, _ = load_tensors(self.folder / "weights" / "anchor.safetensors")
                try:
                    backbone.model.load_state_dict(tensors, strict=True)
                except RuntimeError as e:
                    raise ProjectError(f"The stored backbone does not fit {spec['name']}: {e}") from None
            if fingerprint(backbone.model) != spec["fingerprint"]:
                raise ProjectError(
                    f"The {spec['name']} weights found now ({backbone.source}) differ from the ones this project "
                    f"was trained with. Point to the original file with --backbone-weights."
                )
        try:
            config = make_config(self.strategy_name, self.doc["strategy"]["config"])
        except ProjectError as e:
            raise ProjectError(f"The strategy settings in project.json are not valid: {e}") from None
        strategy = create_strategy(self.strategy_name, backbone, config, self.device)
        if self.doc.get("shared_weights"):
            tensors, _ = load_tensors(self.folder / self.doc["shared_weights"])
            strategy.load_shared_state(tensors)
        for task in self.trained_tasks():
            tensors, _ = load_tensors(self.folder / task["weights"])
            strategy.load_task_state(task["id"], tensors)
        return strategy

    @property
    def class_incremental(self) -> bool:
        """One shared head over all classes (rehearsal strategies): R is kept in Class-IL too."""
        return bool(getattr(get_strategy_class(self.strategy_name), "class_incremental", False))

    def _task_data(self, task_id: str) -> TaskData:
        task = self.task(task_id)
        index = self.task_index(task)
        return TaskData(index["root"], _pairs(index["train"]), _pairs(index["val"]), len(index["classes"]))

    @property
    def strategy(self) -> Strategy:
        if self._strategy is None:
            self._strategy = self._build_strategy()
        return self._strategy

    def trainer(
        self, observers: Sequence[Observer] = (), cancel: CancelToken | None = None, pause: PauseToken | None = None
    ) -> Trainer:
        if self._trainer is None:
            if self.class_incremental:
                from clstudio.engine.sparcl.trainer import RehearsalTrainer

                rehearsal = RehearsalTrainer(self.strategy, self.preprocessing)
                rehearsal.task_source = self._task_data
                self._trainer = rehearsal
            else:
                self._trainer = Trainer(self.strategy, self.preprocessing)
        t = self._trainer
        t.observers = [*observers, self._history_observer]
        t.cancel = cancel or CancelToken()
        t.pause = pause or PauseToken()
        return t

    # --- training ----------------------------------------------------------------------------------------
    def train_pending(
        self,
        observers: Sequence[Observer] = (),
        cancel: CancelToken | None = None,
        pause: PauseToken | None = None,
        resume: bool = False,
    ) -> list[str]:
        """Train every untrained task in the order added. Returns the names trained."""
        done = []
        for task in list(self.pending_tasks()):
            self.train_task(task["name"], observers, cancel, pause, resume=resume)
            done.append(task["name"])
        return done

    def train_task(
        self,
        name: str,
        observers: Sequence[Observer] = (),
        cancel: CancelToken | None = None,
        pause: PauseToken | None = None,
        resume: bool = False,
    ) -> dict[str, Any]:
        """Train one untrained task, evaluate every trained task, commit. With ``resume``, continue from the
        task's last epoch checkpoint if a crash left one (otherwise any stale checkpoint is discarded)."""
        task = self.task(name)
        if task["trained"]:
            raise ProjectError(f"Task '{name}' is already trained; every earlier task stays as it is.")
        trainer = self.trainer(observers, cancel, pause)
        strategy = self.strategy
        before = strategy.shared_state()
        start = time.monotonic()
        new_files: list[Path] = []
        try:
            ckpt = self.checkpoint_path(task)
            if not resume:
                ckpt.unlink(missing_ok=True)
            result = trainer.fit(
                task["name"],
                task["id"],
                self._task_data(task["id"]),
                seed=strategy.config.seed,
                checkpoint=ckpt,
                signature=self._checkpoint_signature(task),
            )
            trainable = strategy.count_trainable()
            row, row_cil = self._evaluate_rows(trainer, extra=task)
            rel = f"weights/task-{task['id']}.safetensors"
            meta = {
                "kind": "task",
                "task": task["name"],
                "strategy": self.strategy_name,
                "classes": "\n".join(task["classes"]),
            }
            save_tensors(self.folder / rel, strategy.task_states[task["id"]], meta)
            new_files.append(self.folder / rel)
            old_shared = self.doc.get("shared_weights")
            shared = strategy.shared_state()
            if shared:
                n = int(Path(old_shared).stem.split("-")[-1]) + 1 if old_shared else 1
                rel_shared = f"weights/shared-{n}.safetensors"
                save_tensors(self.folder / rel_shared, shared, {"kind": "shared", "after_task": task["name"]})
                new_files.append(self.folder / rel_shared)
                self.doc["shared_weights"] = rel_shared
            task.update(
                trained=True,
                weights=rel,
                trainable_params=trainable,
                best_val_acc=result.best_val_acc,
                best_epoch=result.best_epoch,
                epochs_run=result.epochs_run,
                seconds=round(result.seconds, 2),
                device=str(strategy.device),
                skipped_images=result.skipped_images,
                **result.extra,
            )
            self.doc["R"].append([row[t] for t in self.doc["R_tasks"] + [task["id"]]])
            if row_cil is not None:
                self.doc.setdefault("R_class_il", []).append([row_cil[t] for t in self.doc["R_tasks"] + [task["id"]]])
            self.doc["R_tasks"].append(task["id"])
            try:
                project_file.save(self.folder, self.doc)  # the commit point
            except BaseException:
                self.doc = project_file.load(self.folder)
                raise
            if shared and old_shared:
                (self.folder / old_shared).unlink(missing_ok=True)
            self.checkpoint_path(task).unlink(missing_ok=True)
        except BaseException as e:
            # Roll the in-memory model back to the last committed state; the task stays untrained.
            task.update(trained=False, weights=None)
            self.doc = project_file.load(self.folder)
            if before:
                strategy.load_shared_state(before)
            strategy.task_states.pop(task["id"], None)
            for f in new_files:
                if not self._referenced(f):
                    f.unlink(missing_ok=True)
            if isinstance(e, Cancelled):
                self.checkpoint_path(task).unlink(missing_ok=True)  # a cancel is the person's choice: start over
                self._log(CancelledEvent(name), observers)
            elif isinstance(e, CLStudioError | OSError):
                self._log(Failed(name, str(e)), observers)
            raise
        order = [self.task(t)["name"] for t in self.doc["R_tasks"]]
        self._log(EvalFinished(task["name"], tuple(order), tuple(self.doc["R"][-1])), observers)
        self._log(
            TaskFinished(
                task["name"], time.monotonic() - start, result.best_val_acc, result.best_epoch, result.epochs_run
            ),
            observers,
        )
        return task

    def checkpoint_path(self, task: dict[str, Any]) -> Path:
        return self.folder / "checkpoints" / f"{task['id']}.safetensors"

    def resumable_tasks(self) -> list[str]:
        """Untrained tasks with an epoch checkpoint left by an interrupted run."""
        return [t["name"] for t in self.pending_tasks() if self.checkpoint_path(t).exists()]

    def _checkpoint_signature(self, task: dict[str, Any]) -> str:
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

    def _referenced(self, path: Path) -> bool:
        rels = {t.get("weights") for t in self.doc["tasks"]} | {self.doc.get("shared_weights")}
        return any(r and (self.folder / r) == path for r in rels)

    def _evaluate_rows(
        self, trainer: Trainer, extra: dict[str, Any] | None = None
    ) -> tuple[dict[str, float], dict[str, float] | None]:
        """Task-IL accuracy of every trained task (and Class-IL, for one-head strategies), by task id."""
        tasks = self.trained_tasks() + ([extra] if extra is not None else [])
        row: dict[str, float] = {}
        row_cil: dict[str, float] | None = {} if self.class_incremental else None
        for t in tasks:
            index = self.task_index(t)
            eval_items = _pairs(index["test"] or index["val"])
            row[t["id"]] = trainer.evaluate_task(t["id"], index["root"], eval_items)
            if row_cil is not None:
                row_cil[t["id"]] = trainer.evaluate_task_class_il(t["id"], index["root"], eval_items)  # type: ignore[attr-defined]
        return row, row_cil

    def evaluate(self, observers: Sequence[Observer] = (), cancel: CancelToken | None = None) -> list[float]:
        """Re-evaluate every trained task with the model as stored now (the last row of R, recomputed)."""
        row, _ = self._evaluate_rows(self.trainer(observers, cancel))
        return [row[t] for t in self.doc["R_tasks"]]

    # --- classify ----------------------------------------------------------------------------------------
    def classify(self, paths: Iterable[str | Path], task_name: str, top_k: int = 5) -> list[dict[str, Any]]:
        """Top-k (class, probability) for each image, for the chosen task. Unreadable images get an error."""
        task = self.task(task_name)
        if not task["trained"]:
            raise ProjectError(f"Task '{task['name']}' is not trained yet; train it before classifying.")
        trainer = self.trainer()
        self.strategy.activate_task(task["id"])
        size = self.preprocessing.image_size
        results: list[dict[str, Any]] = []
        for path in paths:
            entry: dict[str, Any] = {"path": str(path), "task": task["name"]}
            try:
                img = load_uint8(str(path), size)
            except DecodeError as e:
                entry["error"] = str(e)
                results.append(entry)
                continue
            probs = trainer.predict(img[None])[0]
            k = min(top_k, len(task["classes"]))
            values, indices = torch.topk(probs, k)
            entry["top"] = [[task["classes"][int(i)], float(v)] for v, i in zip(values, indices, strict=True)]
            results.append(entry)
        return results

    # --- info --------------------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        tasks = []
        for t in self.tasks:
            weights = self.folder / t["weights"] if t.get("weights") else None
            tasks.append(
                {
                    "name": t["name"],
                    "id": t["id"],
                    "classes": t["classes"],
                    "images": t["train_images"] + t["val_images"] + max(0, t["eval_images"] - t["val_images"]),
                    "train_images": t["train_images"],
                    "eval_images": t["eval_images"],
                    "trained": t["trained"],
                    "bytes": weights.stat().st_size if weights and weights.exists() else 0,
                    "trainable_params": t.get("trainable_params", 0),
                    "best_val_acc": t.get("best_val_acc"),
                    "source": t["source"],
                }
            )
        shared = self.doc.get("shared_weights")
        return {
            "project": str(self.folder),
            "strategy": self.strategy_name,
            "backbone": self.doc["backbone"]["name"],
            "backbone_params": self.doc["backbone"].get("params"),
            "shared_bytes": (self.folder / shared).stat().st_size if shared and (self.folder / shared).exists() else 0,
            "image_size": self.preprocessing.image_size,
            "tasks": tasks,
            "class_incremental": self.class_incremental,
            "sparsity": self.sparsity_report() if self.class_incremental else None,
        }

    def sparsity_report(self) -> dict[str, Any]:
        """Per-layer weight sparsity after each trained task (layers × tasks, for the heatmap) and the
        training FLOPs used vs the dense method on the same schedule, summed over tasks."""
        trained = [self.task(t) for t in self.doc["R_tasks"]]
        layers = list(trained[-1].get("sparsity", {})) if trained else []
        return {
            "layers": layers,
            "tasks": [
                {
                    "name": t["name"],
                    "sparsity": [t.get("sparsity", {}).get(k, 0.0) for k in layers],
                    "flops_used": t.get("flops_used", 0.0),
                    "flops_dense": t.get("flops_dense", 0.0),
                }
                for t in trained
            ],
            "flops_used": sum(t.get("flops_used", 0.0) for t in trained),
            "flops_dense": sum(t.get("flops_dense", 0.0) for t in trained),
        }

    # --- history -----------------------------------------------------------------------------------------
    def _history_observer(self, event: Event) -> None:
        if type(event).__name__ in HISTORY_EVENTS and not isinstance(event, EvalFinished | TaskFinished):
            self._append_history(event)

    def _append_history(self, event: Event) -> None:
        try:
            append_jsonl(self.folder / "history.jsonl", {"time": time.time(), **event.to_dict()})
        except OSError:
            pass  # the history is a log; failing to append must not fail training

    def _log(self, event: Event, observers: Sequence[Observer]) -> None:
        self._append_history(event)
        emit(observers, event)

    def history(self) -> list[dict[str, Any]]:
        return read_jsonl(self.folder / "history.jsonl")


def _empty_folder(folder: Path) -> None:
    for child in folder.iterdir():
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _pairs(rows: list[list[Any]]) -> list[tuple[str, int]]:
    return [(str(r), int(y)) for r, y in rows]
