"""Background jobs: one worker QObject per job, in its own QThread (superqt's pattern).

Only plain data crosses threads: engine events (frozen dataclasses of floats, ints, strings, tuples),
scan reports (plain dataclasses) and lists of dicts. Cancel is cooperative (the engine's CancelToken,
checked every batch); threads are never terminated, always joined.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from clstudio.engine import events as ev
from clstudio.engine.cancel import CancelToken, PauseToken
from clstudio.engine.errors import Cancelled, CLStudioError

STEP_INTERVAL_S = 0.1  # StepProgress reaches the UI at most 10 times a second


class Worker(QObject):
    """Runs ``fn(worker)`` in its thread. ``engine_event`` carries engine events; exactly one of ``done``,
    ``cancelled`` or ``failed`` ends every job."""

    engine_event = Signal(object)  # not 'event': that is QObject's own event handler
    progress = Signal(int, int)
    done = Signal(object)
    cancelled = Signal()
    failed = Signal(str, str)  # message for the user, traceback for the log

    def __init__(self, fn: Callable[[Worker], Any], name: str) -> None:
        super().__init__()
        self.fn = fn
        self.name = name
        self.cancel_token = CancelToken()
        self.pause_token = PauseToken()
        self._last_step = 0.0

    def emit_event(self, event: ev.Event) -> None:
        """Engine observer: forwards events, coalescing per-batch progress to ≤ 10 Hz."""
        if isinstance(event, ev.StepProgress):
            now = time.monotonic()
            if now - self._last_step < STEP_INTERVAL_S and event.step != event.steps:
                return
            self._last_step = now
        self.engine_event.emit(event)

    @Slot()
    def run(self) -> None:
        try:
            result = self.fn(self)
        except Cancelled:
            self.cancelled.emit()
        except CLStudioError as e:
            self.failed.emit(str(e), getattr(e, "child_traceback", "") or traceback.format_exc())
        except Exception as e:  # noqa: BLE001 - any failure is reported, never lost in a thread
            self.failed.emit(f"{type(e).__name__}: {e}", traceback.format_exc())
        else:
            self.done.emit(result)


class JobRunner(QObject):
    """Starts jobs in threads and joins them; at most one job per ``kind`` runs at a time."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._jobs: dict[str, tuple[QThread, Worker]] = {}
        self._relays: dict[str, _Relay] = {}

    def running(self, kind: str) -> Worker | None:
        job = self._jobs.get(kind)
        return job[1] if job else None

    def start(
        self,
        kind: str,
        fn: Callable[[Worker], Any],
        on_done: Callable[[Any], None] | None = None,
        on_failed: Callable[[str, str], None] | None = None,
        on_cancelled: Callable[[], None] | None = None,
        on_event: Callable[[Any], None] | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> Worker:
        if kind in self._jobs:
            raise RuntimeError(f"a {kind} job is already running")
        thread = QThread(self)
        thread.setObjectName(f"clstudio-{kind}")
        worker = Worker(fn, kind)
        worker.moveToThread(thread)
        # The relay lives in the GUI thread, so these queued connections run every callback there, never in
        # the worker (a plain lambda connected to a worker signal would run in the worker's thread).
        relay = _Relay(self, kind, on_done, on_failed, on_cancelled, on_event)
        if on_progress:
            relay.progress.connect(on_progress)
        worker.engine_event.connect(relay.on_event)
        worker.done.connect(relay.on_done)
        worker.failed.connect(relay.on_failed)
        worker.cancelled.connect(relay.on_cancelled)
        worker.progress.connect(relay.on_progress)
        self._relays[kind] = relay
        thread.started.connect(worker.run)
        self._jobs[kind] = (thread, worker)
        thread.start()
        return worker

    def _finish(self, kind: str, callback: Callable[..., None] | None, *args: Any) -> None:
        self._relays.pop(kind, None)
        job = self._jobs.pop(kind, None)
        if job:
            thread, worker = job
            thread.quit()
            thread.wait()  # called directly in the GUI thread: the worker's run() has returned already
            worker.deleteLater()
            thread.deleteLater()
        if callback:
            callback(*args)

    def cancel_all(self) -> None:
        for _, worker in self._jobs.values():
            worker.pause_token.resume()
            worker.cancel_token.cancel()

    def join_all(self, timeout_ms: int = 30000) -> bool:
        """Cancel every job and wait for its thread; True when all ended in time."""
        self.cancel_all()
        ok = True
        for kind, (thread, _worker) in list(self._jobs.items()):
            thread.quit()
            ok = thread.wait(timeout_ms) and ok
            self._jobs.pop(kind, None)
            relay = self._relays.pop(kind, None)
            if relay:  # the job's end signals may still be queued: nobody is listening any more
                relay.mute()
        return ok

    @property
    def busy(self) -> bool:
        return bool(self._jobs)


class _Relay(QObject):
    progress = Signal(int, int)

    def __init__(
        self,
        runner: JobRunner,
        kind: str,
        on_done: Callable[[Any], None] | None,
        on_failed: Callable[[str, str], None] | None,
        on_cancelled: Callable[[], None] | None,
        on_event: Callable[[Any], None] | None,
    ) -> None:
        super().__init__(runner)
        self.runner, self.kind = runner, kind
        self._done, self._failed, self._cancelled, self._event = on_done, on_failed, on_cancelled, on_event

    def mute(self) -> None:
        self._done = self._failed = self._cancelled = self._event = None

    @Slot(object)
    def on_event(self, event: Any) -> None:
        if self._event:
            self._event(event)

    @Slot(int, int)
    def on_progress(self, done: int, total: int) -> None:
        self.progress.emit(done, total)

    @Slot(object)
    def on_done(self, result: Any) -> None:
        self.runner._finish(self.kind, self._done, result)

    @Slot(str, str)
    def on_failed(self, message: str, tb: str) -> None:
        self.runner._finish(self.kind, self._failed, message, tb)

    @Slot()
    def on_cancelled(self) -> None:
        self.runner._finish(self.kind, self._cancelled)


def train_job(project_folder: Path, task_names: list[str], device: str = "auto") -> Callable[[Worker], list[str]]:
    """Trains the given tasks in order in a child process (see train_process: the GUI never holds a model,
    and torch's GIL-holding work can never stall the window)."""

    def run(worker: Worker) -> list[str]:
        from clstudio.gui.train_process import train_in_child

        return train_in_child(worker, project_folder, task_names, device)

    return run


def scan_job(folder: Path) -> Callable[[Worker], Any]:
    def run(worker: Worker) -> Any:
        from clstudio.engine.data.scan import scan_folder

        return scan_folder(folder, progress=worker.progress.emit, cancel=worker.cancel_token)

    return run


def classify_job(project_folder: Path, paths: list[str], task: str, top_k: int = 5) -> Callable[[Worker], Any]:
    """Classifies with the last *saved* weights: a separate Project opened from disk, so it can run while
    a training job changes its own model."""

    def run(worker: Worker) -> list[dict[str, Any]]:
        from clstudio.engine.project import Project

        def progress(done: int, total: int) -> None:
            worker.cancel_token.raise_if_cancelled()
            worker.progress.emit(done, total)

        return Project.open(project_folder, device="cpu").classify(paths, task, top_k=top_k, progress=progress)

    return run


def prepare_classify_job(project_folder: Path) -> Callable[[Worker], Any]:
    """After training: export the trained tasks' models for the fast classify path (engine/serving.py) in the
    background, so the first classify does not wait seconds for it."""

    def run(worker: Worker) -> int:
        from clstudio.engine.project import Project

        project = Project.open(project_folder, device="cpu")
        return project.prepare_classify(worker.cancel_token.raise_if_cancelled)

    return run


def export_model_job(project_folder: Path, task: str, fmt: str, out: Path) -> Callable[[Worker], Any]:
    """One task's model as ONNX / TorchScript (tracing takes seconds): from the saved weights, like classify."""

    def run(worker: Worker) -> str:
        from clstudio.engine.project import Project

        model, _ = Project.open(project_folder, device="cpu").export_model(task, fmt, out)
        return str(model)

    return run


def create_project_job(
    folder: Path,
    strategy: str = "clr",
    backbone: str | None = None,
    preset: str | None = None,
    weights_file: str | None = None,
) -> Callable[[Worker], Any]:
    """A new project (building the backbone takes seconds); with no choices, the default strategy and backbone."""

    def run(worker: Worker) -> str:
        from clstudio.engine.project import Project

        Project.create(folder, strategy=strategy, backbone=backbone, preset=preset, backbone_weights_file=weights_file)
        return str(folder)

    return run


def delete_task_job(folder: Path, name: str) -> Callable[[Worker], Any]:
    """Delete a trained task (CLR, linear probe): the router's statistics need the anchor's features of its
    images, seconds of work. Returns the plain record Undo needs."""

    def run(worker: Worker) -> dict[str, Any]:
        from clstudio.engine.project import Project

        return dict(Project.open(folder).delete_task(name))

    return run


def reconfigure_job(folder: Path, strategy: str, config: dict[str, Any]) -> Callable[[Worker], Any]:
    """New settings for a project with no trained task (a new image size builds the backbone)."""

    def run(worker: Worker) -> str:
        from clstudio.engine.project import Project

        Project.open(folder).reconfigure(strategy, config)
        return strategy

    return run
