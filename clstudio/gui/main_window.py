"""The main window: wires the panels to the project's files and to background jobs. No model lives here."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QMainWindow,
    QMessageBox,
    QProgressDialog,
    QSplitter,
    QTabWidget,
)

from clstudio import __version__
from clstudio.engine import events as ev
from clstudio.engine.data.scan import ScanReport
from clstudio.engine.errors import CLStudioError
from clstudio.engine.paths import config_dir, log_dir
from clstudio.engine.project import Project
from clstudio.engine.train import device_label, resolve_device
from clstudio.gui.panels.classify import ClassifyPanel
from clstudio.gui.panels.curves import CurvesPanel
from clstudio.gui.panels.matrix import MatrixPanel
from clstudio.gui.panels.preflight import PreflightDialog
from clstudio.gui.panels.sparsity import SparsityPanel
from clstudio.gui.panels.tasks import TasksPanel
from clstudio.gui.panels.train import TrainPanel
from clstudio.gui.state import ProjectState
from clstudio.gui.workers import JobRunner, classify_job, scan_job, train_job

log = logging.getLogger("clstudio.gui")
REFRESH_MS = 100  # plots redraw at most 10 times a second, whatever the event rate


def settings() -> QSettings:
    """An INI file in CL Studio's config folder, so tests (CLSTUDIO_HOME) never touch the user's settings."""
    return QSettings(str(config_dir() / "gui.ini"), QSettings.IniFormat)


def log_file() -> Path:
    return log_dir() / "clstudio.log"


class MainWindow(QMainWindow):
    def __init__(self, project_folder: Path) -> None:
        super().__init__()
        self.jobs = JobRunner(self)
        self.state = ProjectState(project_folder)
        self.training: str | None = None
        self.queued_reports: list[tuple[ScanReport, str]] = []  # accepted while training: added after it
        self.scan_queue: list[Path] = []
        self._dirty = False
        # Hooks that tests replace; by default they ask the person.
        self.confirm_preflight: Callable[[ScanReport], str | None] = self._ask_preflight
        self.confirm_close: Callable[[], bool] = self._ask_close

        self.tasks = TasksPanel()
        self.train = TrainPanel(device_label(resolve_device("auto")))
        self.curves = CurvesPanel()
        self.matrix = MatrixPanel()
        self.sparsity = SparsityPanel()
        self.classify = ClassifyPanel()
        self.tabs = QTabWidget()
        for panel, title in (
            (self.train, "Train"),
            (self.curves, "Accuracy curves"),
            (self.matrix, "Accuracy matrix"),
            (self.sparsity, "Sparsity and cost"),
            (self.classify, "Classify"),
        ):
            self.tabs.addTab(panel, title)
        self.splitter = QSplitter(Qt.Horizontal)
        self.splitter.addWidget(self.tasks)
        self.splitter.addWidget(self.tabs)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setSizes([300, 900])
        self.setCentralWidget(self.splitter)
        self.setAcceptDrops(True)
        self._build_menus()
        self.statusBar().showMessage("Ready")

        self.tasks.add_requested.connect(self.add_task_dialog)
        self.train.start_requested.connect(self.start_training)
        self.train.pause_requested.connect(self.pause_training)
        self.train.cancel_requested.connect(self.cancel_training)
        self.classify.classify_requested.connect(self.run_classify)
        self.refresh_timer = QTimer(self)
        self.refresh_timer.setInterval(REFRESH_MS)
        self.refresh_timer.timeout.connect(self._refresh_if_dirty)
        self.refresh_timer.start()
        self._restore_geometry()
        self.render_all()

    # --- menus -------------------------------------------------------------------------------------------
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        for text, shortcut, slot in (
            ("&New project…", QKeySequence.New, self.new_project_dialog),
            ("&Open project…", QKeySequence.Open, self.open_project_dialog),
            ("&Add task…", "Ctrl+T", self.add_task_dialog),
            ("&Quit", QKeySequence.Quit, self.close),
        ):
            action = QAction(text, self)
            action.setShortcut(shortcut)
            action.triggered.connect(slot)
            file_menu.addAction(action)
        help_menu = self.menuBar().addMenu("&Help")
        about = QAction("&About CL Studio", self)
        about.triggered.connect(self.show_about)
        help_menu.addAction(about)

    def show_about(self) -> None:
        QMessageBox.about(
            self,
            "About CL Studio",
            f"<b>CL Studio {__version__}</b><br>Continual learning on image folders, without forgetting."
            f"<br><br>Project: {self.state.folder}<br>Log file: {log_file()}",
        )

    # --- rendering ---------------------------------------------------------------------------------------
    def render_all(self) -> None:
        self.setWindowTitle(f"CL Studio — {self.state.folder.name}")
        self.tasks.render(self.state, self.training, [name for _, name in self.queued_reports])
        self.train.show_project(self.state.strategy, self.state.config, locked=bool(self.state.trained))
        self.train.set_running(self.training is not None, can_start=bool(self.state.pending))
        self.curves.render(self.state.curves)
        names, R = self.state.matrix()
        self.matrix.render(names, R, self.state.metrics(), self.state.class_il())
        self.sparsity.render(Project.open(self.state.folder).info())
        self.classify.render(self.state)

    def _refresh_if_dirty(self) -> None:
        if self._dirty:
            self._dirty = False
            self.curves.render(self.state.curves)

    # --- projects ----------------------------------------------------------------------------------------
    def open_project(self, folder: Path) -> None:
        if self.jobs.running("train"):
            self.show_error("Training is running. Cancel it before switching projects.")
            return
        try:
            self.state = ProjectState(folder)
        except CLStudioError as e:
            self.show_error(str(e))
            return
        self.queued_reports.clear()
        settings().setValue("last_project", str(folder))
        self.render_all()

    def new_project_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "New project: choose an empty folder")
        if folder:
            try:
                Project.create(folder)
            except CLStudioError as e:
                self.show_error(str(e))
                return
            self.open_project(Path(folder))

    def open_project_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a CL Studio project folder")
        if folder:
            self.open_project(Path(folder))

    # --- adding tasks ------------------------------------------------------------------------------------
    def add_task_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add task: a folder with one subfolder per class")
        if folder:
            self.handle_dropped([Path(folder)])

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.handle_dropped(paths)

    def handle_dropped(self, paths: list[Path]) -> None:
        folders = [p for p in paths if p.is_dir()]
        others = [p for p in paths if not p.is_dir()]
        if others:
            self.statusBar().showMessage(
                f"'{others[0].name}' is not a folder. Drop a folder that holds one subfolder per class "
                f"(to classify an image, use the Classify tab).",
                10000,
            )
        self.scan_queue.extend(folders)
        self._next_scan()

    def _next_scan(self) -> None:
        if self.jobs.running("scan") or not self.scan_queue:
            return
        folder = self.scan_queue.pop(0)
        progress = QProgressDialog(f"Checking the images in '{folder.name}'…", "Cancel", 0, 0, self)
        progress.setWindowModality(Qt.WindowModal)
        progress.setMinimumDuration(500)  # only shown if the scan takes longer than half a second
        worker = self.jobs.start(
            "scan",
            scan_job(folder),
            on_done=lambda report: (progress.close(), self._scanned(report)),
            on_failed=lambda msg, tb: (progress.close(), self.show_error(msg, tb), self._next_scan()),
            on_cancelled=lambda: (progress.close(), self._next_scan()),
            on_progress=lambda done, total: (progress.setMaximum(total), progress.setValue(done)),
        )
        progress.canceled.connect(worker.cancel_token.cancel)

    def _scanned(self, report: ScanReport) -> None:
        name = self.confirm_preflight(report)
        if name:
            if self.training is not None:
                self.queued_reports.append((report, name))
            else:
                self._add_report(report, name)
        self.render_all()
        self._next_scan()

    def _ask_preflight(self, report: ScanReport) -> str | None:
        dialog = PreflightDialog(report, self)
        return dialog.task_name() if dialog.exec() else None

    def _add_report(self, report: ScanReport, name: str) -> None:
        try:
            entry = Project.open(self.state.folder).add_task(report, name=name)
        except CLStudioError as e:
            self.show_error(str(e))
            return
        self.state.reload()
        self.statusBar().showMessage(f"Added task '{entry['name']}' ({len(entry['classes'])} classes).", 8000)

    # --- training ----------------------------------------------------------------------------------------
    def start_training(self, strategy: str, config: dict[str, Any]) -> None:
        if self.jobs.running("train") or not self.state.pending:
            return
        try:
            if not self.state.trained and (strategy != self.state.strategy or config != self.state.config):
                Project.open(self.state.folder).reconfigure(strategy, config)
                self.state.reload()
        except CLStudioError as e:
            self.show_error(str(e))
            return
        names = [t["name"] for t in self.state.pending]
        self.training = names[0]
        self.jobs.start(
            "train",
            train_job(self.state.folder, names),
            on_done=self._training_ended,
            on_failed=self._training_failed,
            on_cancelled=self._training_ended,
            on_event=self.on_event,
        )
        self.render_all()

    def pause_training(self, paused: bool) -> None:
        worker = self.jobs.running("train")
        if worker:
            (worker.pause_token.pause if paused else worker.pause_token.resume)()

    def cancel_training(self) -> None:
        worker = self.jobs.running("train")
        if worker:
            worker.pause_token.resume()
            worker.cancel_token.cancel()
            self.statusBar().showMessage("Cancelling after the current batch…")

    def on_event(self, event: ev.Event) -> None:
        self.train.on_event(event)
        self.sparsity.on_event(event)
        if isinstance(event, ev.TaskStarted):
            self.training = event.task
            self.tasks.render(self.state, self.training, [n for _, n in self.queued_reports])
        if isinstance(event, ev.TaskStarted | ev.EpochEnded | ev.EvalFinished | ev.Cancelled | ev.Failed):
            self.state.curves.apply(event)
            self._dirty = True
        if isinstance(event, ev.Warning):
            self.statusBar().showMessage(event.message, 15000)
        if isinstance(event, ev.TaskFinished):
            committed = Project.open(self.state.folder)  # the worker committed: show what is on disk
            self.state.doc = committed.doc
            names, R = self.state.matrix()
            self.matrix.render(names, R, self.state.metrics(), self.state.class_il())
            self.tasks.render(self.state, None, [n for _, n in self.queued_reports])
            self.sparsity.render(committed.info())
            self.classify.render(self.state)

    def _training_ended(self, _result: Any = None) -> None:
        self.training = None
        for report, name in self.queued_reports:
            self._add_report(report, name)
        self.queued_reports.clear()
        self.state.reload()
        self.render_all()
        self.statusBar().showMessage("Training finished." if _result is not None else "Training cancelled.", 10000)

    def _training_failed(self, message: str, tb: str) -> None:
        self._training_ended(None)
        self.show_error(message, tb)

    # --- classify ----------------------------------------------------------------------------------------
    def run_classify(self, paths: list[str], task: str) -> None:
        if self.jobs.running("classify"):
            return
        self.jobs.start(
            "classify",
            classify_job(self.state.folder, paths, task),
            on_done=self.classify.show_results,
            on_failed=self.show_error,
        )

    # --- errors, settings, closing -----------------------------------------------------------------------
    def show_error(self, message: str, tb: str = "") -> None:
        """The one place errors go: a readable dialog, and the traceback in the log file."""
        log.error("%s\n%s", message, tb)
        box = QMessageBox(QMessageBox.Warning, "CL Studio", message, QMessageBox.Ok, self)
        if tb:
            box.setInformativeText(f"Details are in {log_file()}")
        box.open()  # window-modal but non-blocking: a worker's error never freezes the event loop
        self.statusBar().showMessage(message.splitlines()[0], 15000)
        self.last_error = message

    def _restore_geometry(self) -> None:
        s = settings()
        if s.value("geometry"):
            self.restoreGeometry(s.value("geometry"))
        else:
            self.resize(1280, 820)
        if s.value("splitter"):
            self.splitter.restoreState(s.value("splitter"))

    def _ask_close(self) -> bool:
        answer = QMessageBox.question(
            self,
            "Training is running",
            "A task is training. Cancel it and quit? (Finished tasks are saved; this task stays untrained.)",
        )
        return answer == QMessageBox.Yes

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self.jobs.running("train") and not self.confirm_close():
            event.ignore()
            return
        self.jobs.join_all()
        s = settings()
        s.setValue("geometry", self.saveGeometry())
        s.setValue("splitter", self.splitter.saveState())
        s.setValue("last_project", str(self.state.folder))
        s.sync()
        self.refresh_timer.stop()
        event.accept()
