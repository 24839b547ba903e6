"""A Project: tasks learned one after another, stored in one folder (layout: ``store.py``).

The facade the CLI and the GUI's training process use. It composes the parts, each with one job:
``store`` (the folder and every write into it), ``strategies`` (the model), ``training`` (the loop),
``evaluate`` (rows of R), ``classify`` (predictions) and ``report`` (what the project holds).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, cast

from clstudio.engine import assemble, evaluations, proof, task_edits
from clstudio.engine.cancel import CancelToken, PauseToken
from clstudio.engine.classify import AUTO, classify_auto, classify_images
from clstudio.engine.data.dataset import DecodeCache, Preprocessing
from clstudio.engine.data.input_size import auto_input_size, typical_side
from clstudio.engine.data.scan import ScanReport, scan_folder
from clstudio.engine.device import resolve_device
from clstudio.engine.distributed import Collective
from clstudio.engine.errors import Cancelled, CLStudioError, ProjectError
from clstudio.engine.evaluate import EvalSet, Evaluator, TaskPredictions
from clstudio.engine.events import Cancelled as CancelledEvent
from clstudio.engine.events import (
    EvalFinished,
    Event,
    Failed,
    InputSizeChosen,
    Observer,
    TaskAdded,
    TaskFinished,
    emit,
)
from clstudio.engine.models.backbones import create_backbone
from clstudio.engine.paths import cache_dir
from clstudio.engine.records import TaskEntry
from clstudio.engine.routing import (
    TaskRouter,
    add_to_shared,
    join_task_tensors,
    remove_from_shared,
    split_task_tensors,
    task_feature_stats,
)
from clstudio.engine.serving import OnnxServing
from clstudio.engine.storage import load_tensors
from clstudio.engine.store import ProjectStore
from clstudio.engine.strategies.base import Strategy
from clstudio.engine.strategies.registry import make_config
from clstudio.engine.training import TaskData, TrainingLoop, TrainingMethod, training_for
from clstudio.engine.views import ProjectView

# The loop's events, written as they happen
HISTORY_EVENTS = {"TaskStarted", "ModelLive", "EpochEnded", "Cancelled", "Failed", "TaskAdded"}


class Project(ProjectView):
    dist: Collective = Collective()  # the processes training together (``use_ranks``); this one alone by default

    def __init__(self, store: ProjectStore, device: str = "auto") -> None:
        self.store = store
        self.folder = store.folder
        self.device = resolve_device(device)
        self._strategy: Strategy | None = None
        self._method: TrainingMethod | None = None
        self._cache: DecodeCache | None = None
        self._router: TaskRouter | None = None
        self._anchor_cache: dict[str, Any] = {}  # anchor features of each task's evaluation images (fixed)
        self._serving: OnnxServing | None = None

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
        doc, bb, anchor = assemble.new_document(
            strategy, backbone, config, preset, backbone_weights, backbone_weights_file
        )
        project = cls(ProjectStore.create(Path(folder).expanduser(), doc, anchor), device)
        project._strategy = assemble.build_strategy(project.store, project.device, bb)
        project._record_footprint()
        return project

    def _record_footprint(self) -> None:
        self.doc["strategy"]["per_task"] = self.strategy.per_task_footprint()
        self.store.save()

    @classmethod
    def open(cls, folder: str | Path, device: str = "auto") -> Project:
        return cls(ProjectStore.open(Path(folder).expanduser()), device)

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
        self.store.save()
        self._strategy = self._method = None
        self._anchor_cache.clear()  # a new image size gives other features
        self._record_footprint()  # builds the new strategy: what its tasks will add

    # --- read-only views: ProjectView ------------------------------------------------------------------
    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_dict(self.doc["preprocessing"])

    # --- tasks -------------------------------------------------------------------------------------------
    def add_task(
        self, source: str | Path | ScanReport, name: str | None = None, observers: Sequence[Observer] = ()
    ) -> TaskEntry:
        """Register a folder (or an accepted scan) as a new, untrained task. A folder already added is refused."""
        report_ = source if isinstance(source, ScanReport) else scan_folder(source)
        if (name or report_.name).lower() == AUTO:
            raise ProjectError(
                f"'{name or report_.name}' is reserved: it asks CL Studio to choose the task. "
                "Give the task another name."
            )
        existing = self.task_from_folder(report_.root)
        if existing is not None:
            raise ProjectError(f"'{report_.root}' is already task '{existing['name']}' in this project.")
        entry = self.store.add_task(report_, name or report_.name)
        self._log(
            TaskAdded(entry["name"], tuple(report_.classes), len(report_.train), len(report_.eval_split)), observers
        )
        return entry

    def use_ranks(self, dist: Collective) -> None:
        """Train together with the other processes of a ``torchrun`` launch: each trains on its share of every
        step, rank 0 alone evaluates and writes the project (see ``distributed.py``)."""
        self.dist = dist
        self._method = None

    # --- model -------------------------------------------------------------------------------------------
    @property
    def strategy(self) -> Strategy:
        if self._strategy is None:
            self._strategy = assemble.build_strategy(self.store, self.device)
        return self._strategy

    @property
    def cache(self) -> DecodeCache:
        """Decoded images, shared by training, evaluation and replay of this project."""
        if self._cache is None:
            self._cache = DecodeCache(self.strategy.config.cache_mb * 2**20)
        return self._cache

    @property
    def training_method(self) -> TrainingMethod:
        if self._method is None:
            self._method = training_for(self.strategy, self.preprocessing, self.cache, self._task_data)
            self._method.dist = self.dist
        return self._method

    def evaluator(self, check: Callable[[], object] | None = None) -> Evaluator:
        """Evaluation with the precision the strategy trains in; ``check``: cancel / pause, per batch."""
        allow_fp16 = self.training_method.allow_fp16
        return Evaluator(self.strategy, self.preprocessing, self.cache, check=check, allow_fp16=allow_fp16)

    def _task_data(self, task_id: str) -> TaskData:
        index = self.store.index(self.task(task_id))
        return TaskData(index["root"], _pairs(index["train"]), _pairs(index["val"]), len(index["classes"]))

    def _eval_set(self, task: TaskEntry) -> EvalSet:
        index = self.store.index(task)
        return EvalSet(task["id"], index["root"], _pairs(index["test"] or index["val"]))

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

    def _choose_input_size(self, task: TaskEntry, observers: Sequence[Observer]) -> None:
        """'auto' image size (0), decided from the first task's images before it trains (input_size.py); the
        decision stays for every later task, whose tensors must all see the same input size."""
        if self.strategy.config.image_size or self.trained_tasks():
            return
        prep, native = self.doc["preprocessing"], self.strategy.backbone.image_size
        data = self._task_data(task["id"])
        side = typical_side(data.root, data.train)
        size = auto_input_size(native, side)
        reason = side if size != native else None  # the file says why its size is not the backbone's
        if (prep["image_size"], prep.get("auto_from_image_side")) != (size, reason):
            prep["image_size"] = size
            prep.pop("auto_from_image_side", None)
            if reason is not None:
                prep["auto_from_image_side"] = reason
            if self.dist.is_main:
                self.store.save()
            self._method = self._cache = None  # built for the old size (the decode cache is keyed by path)
            self._anchor_cache.clear()
        if reason is not None:
            self._log(InputSizeChosen(task["name"], reason, size, native), observers)

    def train_task(
        self,
        name: str,
        observers: Sequence[Observer] = (),
        cancel: CancelToken | None = None,
        pause: PauseToken | None = None,
        resume: bool = False,
    ) -> TaskEntry:
        """Train one untrained task, evaluate every trained task, commit. With ``resume``, continue from the
        task's last epoch checkpoint if a crash left one (otherwise any stale checkpoint is discarded)."""
        task = self.task(name)
        if task["trained"]:
            raise ProjectError(f"Task '{name}' is already trained; every earlier task stays as it is.")
        self._choose_input_size(task, observers)
        strategy, observers, main = self.strategy, [*observers], self.dist.is_main
        loop = TrainingLoop(self.training_method, [*observers, self._history_observer], cancel, pause)
        before = strategy.shared_state()
        start, committing = time.monotonic(), False
        try:
            ckpt: Path | None = self.store.checkpoint_path(task)
            if not resume and main:
                self.store.discard_progress(task)
            elif not resume:
                ckpt = None  # the other ranks start fresh, as rank 0 does, and never read what it rewrites
            signature = self.store.checkpoint_signature(task)
            data = self._task_data(task["id"])
            result = loop.fit(
                task["name"],
                task["id"],
                data,
                strategy.config.seed,
                ckpt,
                signature,
                str(strategy.device),
                save_live=lambda tensors, facts: self.store.save_live_model(task, tensors, facts),
            )
            if not main:
                self._await_commit(name)
                return self.task(name)
            committing = self.dist.active  # from here on the other ranks wait for rank 0's word
            facts = dict(
                trainable_params=strategy.count_trainable(),
                best_val_acc=result.best_val_acc,
                best_epoch=result.best_epoch,
                epochs_run=result.epochs_run,
                seconds=round(result.seconds, 2),
                device=str(strategy.device),
                skipped_images=result.skipped_images,
                **result.extra,
            )
            eval_sets = [self._eval_set(t) for t in [*self.trained_tasks(), task]]
            evaluator = self.evaluator(loop.check)
            tensors, router_shared, routed_rows = strategy.task_states[task["id"]], None, None
            routers = self._router_tensors() if strategy.can_route() else None
            if routers is not None:
                routers[task["id"]], router_shared = self._task_router(evaluator, data)
                router = TaskRouter(routers, router_shared)
                preds, routing, routed = evaluator.routed_rows(eval_sets, router, self._anchor_cache)
                row_cil, routed_rows = None, {"R_routing": routing, "R_routed": routed}
                tensors = join_task_tensors(tensors, routers[task["id"]])
            else:
                preds, row_cil = evaluator.rows(eval_sets)
            fixed = strategy.earlier_tasks_fixed()
            record = evaluations.record(task["id"], preds, proof.checks(self.store, preds) if fixed else None)
            self.store.commit_task(
                task,
                tensors,
                strategy.shared_state(),
                facts,
                {tid: p.accuracy for tid, p in preds.items()},
                row_cil,
                self.strategy_name,
                router_shared,
                routed_rows,
                record,
                preds[task["id"]] if fixed else None,
            )
            self._router = None
            self.dist.broadcast_object(None)  # the other ranks may go on to the next task
        except BaseException as e:
            if committing:
                self.dist.broadcast_object(str(e) or type(e).__name__)
            # Roll the in-memory model back to the last committed state; the task stays untrained.
            self.store.reload()
            if before:
                strategy.load_shared_state(before)
            strategy.task_states.pop(task["id"], None)
            if isinstance(e, Cancelled):
                self.store.discard_progress(task)  # the person's choice: start over
                self._log(CancelledEvent(name), observers)
            elif isinstance(e, CLStudioError | OSError):
                self._log(Failed(name, str(e)), observers)
            raise
        task = self.task(name)
        self._log(EvalFinished(task["name"], tuple(self.trained_names()), tuple(self.doc["R"][-1])), observers)
        seconds = time.monotonic() - start
        self._log(
            TaskFinished(task["name"], seconds, result.best_val_acc, result.best_epoch, result.epochs_run), observers
        )
        return task

    def checkpoint_path(self, task: TaskEntry) -> Path:
        return self.store.checkpoint_path(task)

    def resumable_tasks(self) -> list[str]:
        """Untrained tasks with an epoch checkpoint left by an interrupted run."""
        return [t["name"] for t in self.pending_tasks() if self.store.checkpoint_path(t).exists()]

    def evaluate(self, observers: Sequence[Observer] = (), cancel: CancelToken | None = None) -> list[float]:
        """Re-evaluate every trained task with the model as stored now (the last row of R, recomputed)."""
        preds = self._answers_now(cancel)
        return [preds[t].accuracy for t in self.doc["R_tasks"]]

    def verify(self, cancel: CancelToken | None = None) -> dict[str, Any]:
        """The zero-forgetting proof of every trained task, checked now: weight files against their digests
        and answers recomputed against those recorded when each task was trained (engine/proof.py)."""
        return proof.checks(self.store, self._answers_now(cancel))

    def _answers_now(self, cancel: CancelToken | None) -> dict[str, TaskPredictions]:
        """Every trained task's answers on its evaluation images, the way training evaluated them (through
        the router's pass where the project has one, so the head-only path of the probe is the same)."""
        evaluator = self.evaluator(cancel.raise_if_cancelled if cancel else None)
        eval_sets = [self._eval_set(t) for t in self.trained_tasks()]
        if self.can_route and self.strategy.can_route():
            return evaluator.routed_rows(eval_sets, self.router(), self._anchor_cache)[0]
        return evaluator.rows(eval_sets)[0]

    # --- routing ---------------------------------------------------------------------------------------
    def _router_tensors(self) -> dict[str, dict[str, Any]] | None:
        """Every trained task's router tensors, by id; None when a task was trained without them."""
        out = {}
        for t in self.trained_tasks():
            router = split_task_tensors(self.store.task_weights(t))[1]
            if not router:
                return None
            out[t["id"]] = router
        return out

    def delete_task(self, name: str) -> task_edits.DeletedTask:
        """Delete a trained task where the strategy keeps tasks apart (CLR, linear probe): every other task
        stays exactly as it was, and the router forgets the task's statistics. ``task_edits.restore_deleted``
        undoes it while nothing else changed."""
        task = self.task(name)
        if not task["trained"]:
            raise ProjectError(f"'{name}' is not trained yet: remove it from the queue instead.")
        if not self.strategy.earlier_tasks_fixed():
            raise ProjectError(
                f"{self.strategy_name} trains weights every task shares, so deleting '{name}' cannot take back "
                "what it changed in the others. Only CLR and the linear probe delete a trained task exactly."
            )
        shared = self.store.router_shared()
        router_shared = None
        if shared is not None and len(self.trained_tasks()) > 1:
            # The router's sums hold this task's scatter: recompute it from the anchor's features, subtract.
            data, evaluator = self._task_data(task["id"]), self.evaluator()
            train_x, train_y = evaluator.features_of(data.root, data.train)
            val_x, val_y = evaluator.features_of(data.root, data.val)
            router_shared = remove_from_shared(
                shared, task_feature_stats(train_x, train_y, val_x, val_y, data.num_classes)
            )
        deleted = task_edits.delete_trained(self.store, name, router_shared)
        self._router = None
        self._strategy = self._method = None  # its task state is gone; rebuilt from the files on next use
        return deleted

    def _task_router(self, evaluator: Evaluator, data: TaskData) -> tuple[dict[str, Any], dict[str, Any]]:
        """(this task's router tensors, the project's router statistics with it added), from the anchor's
        features of its training and validation images."""
        train_x, train_y = evaluator.features_of(data.root, data.train)
        val_x, val_y = evaluator.features_of(data.root, data.val)
        stats = task_feature_stats(train_x, train_y, val_x, val_y, data.num_classes)
        return stats.task_tensors(), add_to_shared(self.store.router_shared(), stats)

    def router(self) -> TaskRouter:
        """The router over every trained task (for ``classify --task auto``)."""
        if self._router is None:
            if not self.strategy.can_route():
                raise ProjectError(
                    f"Auto needs a strategy whose backbone every task shares unchanged (CLR, linear probe); "
                    f"{self.strategy_name} changes it. Choose the task."
                )
            tensors, shared = self._router_tensors(), self.store.router_shared()
            if not self.trained_tasks():
                raise ProjectError("Train a task first: there is nothing to route to yet.")
            if tensors is None or shared is None:
                raise ProjectError(
                    "This project's tasks were trained before CL Studio had a task router; choose the task."
                )
            self._router = TaskRouter(tensors, shared)
        return self._router

    # --- classify ----------------------------------------------------------------------------------------
    def classify(
        self,
        paths: Iterable[str | Path],
        task_name: str,
        top_k: int = 5,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Top-k (class, probability) for each image (folders: every image inside, recursively), for the chosen
        task or, with ``task_name='auto'``, the task the router chooses. Unreadable images get an error."""
        if task_name == AUTO:
            router, tasks = self.router(), {t["id"]: t for t in self.trained_tasks()}
            return classify_auto(self.evaluator(), router, tasks, paths, top_k, progress, self.serving())
        task = self.task(task_name)
        if not task["trained"] and self.store.live_model(task) is not None:
            return classify_images(self.evaluator(), self._live_task(task), paths, top_k, progress, None)
        return classify_images(self.evaluator(), task, paths, top_k, progress, self.serving())

    def _live_task(self, task: TaskEntry) -> TaskEntry:
        """A task still in training, as its live model (the probe head CLR starts from) answers for it.
        Served by torch: the model is replaced within minutes, not worth an ONNX export."""
        path = self.store.live_model_path(task)
        self.strategy.load_task_state(task["id"], load_tensors(path)[0])
        return cast(TaskEntry, {**task, "weights": str(path.relative_to(self.folder))})

    def prepare_classify(self, check: Callable[[], object] | None = None) -> int:
        """Export every trained task's model (and Auto's anchor) for the fast classify path now, so the first
        image a person drops is not the one that waits for it; returns how many models are ready."""
        serving, ready = self.serving(), 0
        for task in self.trained_tasks():
            if check is not None:
                check()
            ready += serving.task(task) is not None
        if len(self.trained_tasks()) > 1 and self.strategy.can_route():
            ready += serving.anchor() is not None
        return ready

    def serving(self) -> OnnxServing:
        """The ONNX Runtime path of classify (engine/serving.py), kept while the network and files are the same."""
        shared = self.doc.get("shared_weights")
        identity = {
            "backbone": self.doc["backbone"]["fingerprint"],
            "strategy": self.doc["strategy"]["name"],
            "config": self.doc["strategy"]["config"],
            "shared": _digest_of(self.folder / shared) if shared else None,
        }
        current = self._serving
        if current is None or current.strategy is not self.strategy or current.identity_in != identity:
            current = self._serving = OnnxServing(
                self.strategy, self.preprocessing, identity, self._weights_digest, cache_dir() / "onnx"
            )
        return current

    def _weights_digest(self, task: TaskEntry) -> str:
        assert task["weights"] is not None
        return _digest_of(self.folder / task["weights"])

    def export_model(self, task_name: str, fmt: str, out: str | Path) -> tuple[Path, Path]:
        """One task's model as ONNX or TorchScript plus its JSON sidecar (engine/export.py)."""
        from clstudio.engine.export import export_task  # torch.onnx is slow to import; only here

        return export_task(
            self.strategy, self.task(task_name), self.preprocessing, fmt, out, self.doc["backbone"]["name"]
        )

    def _await_commit(self, name: str) -> None:
        """Another rank than 0: wait while rank 0 evaluates and saves the task, then read what it wrote."""
        problem = self.dist.broadcast_object(None)
        if problem is not None:
            raise CLStudioError(f"Rank 0 could not save task '{name}' ({problem}); it stays untrained.")
        self.store.reload()

    # --- history -----------------------------------------------------------------------------------------
    def _history_observer(self, event: Event) -> None:
        if type(event).__name__ in HISTORY_EVENTS and self.dist.is_main:
            self.store.append_history(event)

    def _log(self, event: Event, observers: Sequence[Observer]) -> None:
        if self.dist.is_main:
            self.store.append_history(event)
        emit(observers, event)


@functools.lru_cache(maxsize=64)
def _file_digest(path: Path, _mtime_ns: int, _size: int) -> str:
    return proof.file_sha256(path)


def _digest_of(path: Path) -> str:
    """sha256 of a file, computed once per version of it (weight files are rewritten, never edited)."""
    st = path.stat()
    return _file_digest(path, st.st_mtime_ns, st.st_size)


def _pairs(rows: list[list[Any]]) -> list[tuple[str, int]]:
    return [(str(r), int(y)) for r, y in rows]
