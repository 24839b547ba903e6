"""The main window: wires the panels to the session and to background jobs. No model lives here, and no
policy either: the session (gui/session.py) decides, the window asks and renders."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QInputDialog,
    QMainWindow,
    QMessageBox,
    QProgressDialog,
    QSplitter,
    QTabWidget,
)

from clstudio import __version__
from clstudio.engine import events as ev
from clstudio.engine import html_report, per_class
from clstudio.engine.data.scan import ScanReport
from clstudio.engine.data.synthetic import make_demo
from clstudio.engine.device import device_label, resolve_device
from clstudio.engine.errors import CLStudioError
from clstudio.engine.formatting import input_size_note
from clstudio.engine.paths import config_dir, data_dir, log_dir, projects_dir
from clstudio.engine.views import ProjectView, SavedProject
from clstudio.gui.identity import app_icon
from clstudio.gui.panels.classify import ClassifyPanel
from clstudio.gui.panels.curves import CurvesPanel
from clstudio.gui.panels.drilldown import DrillDownDialog
from clstudio.gui.panels.forgetting import ForgettingPanel
from clstudio.gui.panels.matrix import MatrixPanel
from clstudio.gui.panels.new_project import NewProjectChoice, NewProjectDialog
from clstudio.gui.panels.preflight import PreflightDialog
from clstudio.gui.panels.sparsity import SparsityPanel
from clstudio.gui.panels.tasks import TasksPanel
from clstudio.gui.panels.train import TrainPanel
from clstudio.gui.session import Session
from clstudio.gui.workers import (
    JobRunner,
    classify_job,
    create_project_job,
    delete_task_job,
    export_model_job,
    prepare_classify_job,
    reconfigure_job,
    scan_job,
    train_job,
)

log = logging.getLogger("clstudio.gui")
REFRESH_MS = 100  # plots redraw at most 10 times a second, whatever the event rate


def settings() -> QSettings:
    """An INI file in CL Studio's config folder, so tests (CLSTUDIO_HOME) never touch the user's settings."""
    return QSettings(str(config_dir() / "gui.ini"), QSettings.Format.IniFormat)


RECENT_MAX = 8  # File ▸ Open recent: enough to cover the projects a person switches between


def _recent(s: QSettings) -> list[str]:
    value = s.value("recent_projects") or []
    return [value] if isinstance(value, str) else [str(v) for v in value]  # INI reads a 1-list as a string


def remember_project(folder: Path) -> None:
    """The project just opened becomes the last one and the first of the recent ones."""
    s = settings()
    folder_s = str(Path(folder).resolve())
    s.setValue("recent_projects", [folder_s, *(f for f in _recent(s) if f != folder_s)][:RECENT_MAX])
    s.setValue("last_project", folder_s)
    s.sync()


def recent_projects() -> list[Path]:
    """Recent projects that still exist, newest first."""
    return [Path(f) for f in _recent(settings()) if (Path(f) / "project.json").exists()]


def log_file() -> Path:
    return log_dir() / "clstudio.log"


class MainWindow(QMainWindow):
    def __init__(self, project_folder: Path) -> None:
        super().__init__()
        self.setWindowIcon(app_icon())  # also where the app did not set it (tests, embedding)
        self.jobs = JobRunner(self)
        self.session = Session(project_folder)
        self._dirty = False
        # Hooks that tests replace; by default they ask the person.
        self.confirm_preflight: Callable[[ScanReport], str | None] = self._ask_preflight
        self.confirm_close: Callable[[], bool] = self._ask_close
        self.ask_new_project: Callable[[], NewProjectChoice | None] = self._ask_new_project
        self.confirm_remove: Callable[[str], bool] = self._ask_remove
        self.confirm_delete: Callable[[str], bool] = self._ask_delete
        self.ask_task_name: Callable[[str], str | None] = self._ask_task_name

        self.tasks = TasksPanel()
        self.train = TrainPanel(device_label(self.device()))
        self.curves = CurvesPanel()
        self.matrix = MatrixPanel()
        self.forgetting = ForgettingPanel()
        self._forgetting_stale = True  # drawn when its tab is shown: it reads every per-image record
        self.sparsity = SparsityPanel()
        self.classify = ClassifyPanel()
        self.tabs = QTabWidget()
        for panel, title in (
            (self.train, "Train"),
            (self.curves, "Accuracy curves"),
            (self.matrix, "Accuracy matrix"),
            (self.forgetting, "Forgetting"),
            (self.sparsity, "Sparsity and cost"),
            (self.classify, "Classify"),
        ):
            self.tabs.addTab(panel, title)
            key = f"Ctrl+{self.tabs.count()}"  # Ctrl+1 … Ctrl+7: the tabs in order, as in browsers
            QShortcut(QKeySequence(key), self, lambda p=panel: self.tabs.setCurrentWidget(p))
            self.tabs.setTabToolTip(self.tabs.count() - 1, f"{title} ({key})")
        for key, button in self.train.keys.items():
            QShortcut(QKeySequence(key), self, lambda b=button: b.click() if b.isEnabled() else None)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.tasks.setMinimumWidth(220)  # task names and their status stay on two lines at 1024 px
        self.splitter.addWidget(self.tasks)
        self.splitter.addWidget(self.tabs)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setSizes([300, 900])
        self.setCentralWidget(self.splitter)
        self.setAcceptDrops(True)
        self._build_menus()
        self.statusBar().showMessage("Ready")

        self.tasks.add_requested.connect(self.add_task_dialog)
        self.tasks.demo_requested.connect(self.try_demo)
        self.tasks.remove_requested.connect(self.remove_task)
        self.tasks.rename_requested.connect(self.rename_task)
        self.tasks.delete_requested.connect(self.delete_trained_task)
        self.tasks.reorder_requested.connect(lambda names: self._edit_tasks(self.session.reorder_tasks, names))
        self.train.start_requested.connect(self.start_training)
        self.train.pause_requested.connect(self.pause_training)
        self.train.cancel_requested.connect(self.cancel_training)
        self.classify.classify_requested.connect(self.run_classify)
        self.matrix.cell_clicked.connect(self.open_drilldown)
        self.matrix.proof_requested.connect(lambda: self.tabs.setCurrentWidget(self.forgetting))
        self.tabs.currentChanged.connect(lambda _i: self._render_forgetting())
        self.refresh_timer = QTimer(self)
        self.refresh_timer.setInterval(REFRESH_MS)
        self.refresh_timer.timeout.connect(self._refresh_if_dirty)
        self.refresh_timer.start()
        self._restore_geometry()
        remember_project(project_folder)
        self.render_all()

    # --- menus -------------------------------------------------------------------------------------------
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        for text, shortcut, slot in (
            ("&New project…", QKeySequence.StandardKey.New, self.new_project_dialog),
            ("&Open project…", QKeySequence.StandardKey.Open, self.open_project_dialog),
            ("&Add task…", "Ctrl+T", self.add_task_dialog),
            ("Export &report…", "Ctrl+R", self.export_report_dialog),
            ("&Quit", QKeySequence.StandardKey.Quit, self.close),
        ):
            action = QAction(text, self)
            action.setShortcut(shortcut)
            action.triggered.connect(slot)
            file_menu.addAction(action)
            if slot == self.open_project_dialog:
                self.recent_menu = file_menu.addMenu("Open &recent")
                self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        edit_menu = self.menuBar().addMenu("&Edit")
        self.undo_action = QAction("&Undo remove", self)
        self.undo_action.setShortcut(QKeySequence.StandardKey.Undo)
        self.undo_action.setEnabled(False)
        self.undo_action.triggered.connect(self.undo_remove)
        edit_menu.addAction(self.undo_action)
        task_menu = self.task_menu = self.menuBar().addMenu("&Task")
        self.export_action = QAction("&Export model…", self)
        self.export_action.setStatusTip("Save one task's model as ONNX or TorchScript, with a JSON file of its classes")
        self.export_action.triggered.connect(self.export_model_dialog)
        task_menu.addAction(self.export_action)
        help_menu = self.menuBar().addMenu("&Help")
        about = QAction("&About CL Studio", self)
        about.triggered.connect(self.show_about)
        help_menu.addAction(about)

    def open_drilldown(self, row: int, col: int) -> None:
        """A cell of R opened: that task's confusion matrix and images as evaluated after task ``row``."""
        view = self.session.view
        names = view.trained_names()
        answers = view.answers(names[col], names[row])
        if answers is None:
            self.statusBar().showMessage("This evaluation kept no per-image record (trained before it existed).", 8000)
            return
        flips = None
        if row > col:
            before = view.answers(names[col], names[row - 1])
            if before is not None:
                flips = per_class.flips(answers.labels, before.pred, answers.pred)
        proof = view.proof_status().get(names[col], {}).get("verdict")
        DrillDownDialog(answers, flips, proof, self).exec()

    def export_report_dialog(self) -> None:
        if not self.session.view.trained_tasks():
            self.statusBar().showMessage("Train a task first: the report shows what was learned.", 8000)
            return
        default = str(self.session.folder.with_suffix(".html"))
        out, _ = QFileDialog.getSaveFileName(self, "Export report", default, "HTML report (*.html)")
        if not out:
            return
        if self.jobs.running("report"):
            self.statusBar().showMessage("A report is being written already.", 5000)
            return
        folder = self.session.folder
        self.statusBar().showMessage("Writing the report…")

        def failed(message: str, tb: str) -> None:
            log.error("report failed: %s\n%s", message, tb)
            QMessageBox.warning(self, "Export report", f"Could not write the report: {message}")

        # In a worker: a big project's report decodes hundreds of thumbnails. The worker reads the project
        # from disk itself, so only the two paths cross threads.
        self.jobs.start(
            "report",
            lambda _worker: str(html_report.write(SavedProject(folder), out)),
            on_done=lambda path: self.statusBar().showMessage(f"Report written to {path}", 10000),
            on_failed=failed,
        )

    def show_about(self) -> None:
        QMessageBox.about(
            self,
            "About CL Studio",
            f"<b>CL Studio {__version__}</b><br>Continual learning on image folders, without forgetting."
            f"<br><br>Project: {self.session.folder}<br>Log file: {log_file()}",
        )

    @property
    def training(self) -> str | None:
        return self.session.training

    # --- rendering ---------------------------------------------------------------------------------------
    def render_all(self) -> None:
        view = self.session.view
        self.setWindowTitle(f"CL Studio — {self.session.folder.name}")
        self.tasks.show_data(view, self.training, self.session.queued_names)
        self._show_settings(view, view.doc["preprocessing"].get("image_size"), view.auto_size_note())
        self.train.set_running(self.training is not None, bool(view.pending_tasks()), self._why_no_start(view))
        self.curves.show_data(self.session.curves)
        self._render_results()

    def _show_settings(self, view: ProjectView, image_size: int | None, size_note: str) -> None:
        self.train.show_project(
            view.strategy_name,
            view.config,
            locked=bool(view.trained_tasks()),
            image_size=image_size,
            blurb=view.strategy_blurb(),
            size_note=size_note,
        )

    def _why_no_start(self, view: ProjectView) -> str:
        if self.jobs.running("scan") or self.session.queued_names:
            return "Reading the folders you added…"
        if not view.tasks:
            return "Add a task first: drop a folder of images (one subfolder per class), or Try with demo data."
        if not view.pending_tasks():
            return "Every task is trained. Drop another folder to teach the model a new task."
        return ""

    def _render_results(self) -> None:
        view = self.session.view
        cil_R, cil_metrics = view.accuracy_matrix_class_il(), view.metrics_class_il()
        class_il = (cil_R, cil_metrics) if cil_R is not None and cil_metrics is not None else None
        self.matrix.show_data(
            view.trained_names(), view.accuracy_matrix(), view.metrics(), class_il, view.proof_status()
        )
        self._forgetting_stale = True
        self._render_forgetting()
        self.sparsity.show_data(view.info())
        self.classify.show_data(view)
        self.export_action.setEnabled(bool(view.trained_tasks()) and not view.class_incremental)

    def _render_forgetting(self) -> None:
        if self._forgetting_stale and self.tabs.currentWidget() is self.forgetting:
            self._forgetting_stale = False
            self.forgetting.show_data(self.session.view)

    def _refresh_if_dirty(self) -> None:
        if self._dirty:
            self._dirty = False
            self.curves.show_data(self.session.curves)

    # --- projects ----------------------------------------------------------------------------------------
    def open_project(self, folder: Path) -> None:
        if self.jobs.running("train"):
            self.show_error("Training is running. Cancel it before switching projects.")
            return
        try:
            self.session = Session(folder)
        except CLStudioError as e:
            self.show_error(str(e))
            return
        self.undo_action.setEnabled(False)  # the removal to undo belonged to the other project
        remember_project(folder)
        self.render_all()

    def new_project_dialog(self) -> None:
        if self.jobs.running("setup"):
            return
        choice = self.ask_new_project()
        if choice is None:
            return
        settings().setValue("device", choice.device)
        self.train.device.setText(f"Device: {device_label(self.device())}")
        # Building the backbone takes seconds: off the GUI thread.
        self.statusBar().showMessage(f"Creating the project {choice.folder}…")
        self.jobs.start(
            "setup",
            create_project_job(choice.folder, choice.strategy, choice.backbone, choice.preset, choice.weights_file),
            on_done=lambda _: self.open_project(choice.folder),
            on_failed=self.show_error,
        )

    def _ask_new_project(self) -> NewProjectChoice | None:
        dialog = NewProjectDialog(projects_dir(), self)
        return dialog.choice() if dialog.exec() == QDialog.DialogCode.Accepted else None

    def open_project_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a CL Studio project folder")
        if folder:
            self.open_project(Path(folder))

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        for folder in recent_projects():
            if folder == self.session.folder.resolve():
                continue
            action = self.recent_menu.addAction(f"{folder.name}  —  {folder.parent}")
            action.triggered.connect(lambda _=False, f=folder: self.open_project(f))
        if self.recent_menu.isEmpty():
            self.recent_menu.addAction("No other project yet").setEnabled(False)

    def device(self) -> str:
        """The device the person chose (New project ▸ Train on); auto where that GPU is not here any more."""
        chosen = str(settings().value("device", "auto"))
        try:
            return resolve_device(chosen)
        except CLStudioError:
            return resolve_device("auto")

    def try_demo(self) -> None:
        """The empty state's "Try with demo data": two small generated tasks, added like dropped folders."""
        if self.jobs.running("demo"):
            return
        demo = data_dir() / "demo"
        self.statusBar().showMessage("Making the demo images…")
        self.jobs.start(
            "demo",
            lambda _worker: [str(f) for f in make_demo(demo)],
            on_done=lambda folders: self.handle_dropped([Path(f) for f in folders]),
            on_failed=self.show_error,
        )

    # --- editing the waiting tasks -----------------------------------------------------------------------
    def _edit_tasks(self, fn: Callable[..., Any], *args: Any) -> bool:
        try:
            fn(*args)
        except CLStudioError as e:
            self.show_error(str(e))
            self.render_all()  # a refused drag snaps back
            return False
        self.render_all()
        return True

    def remove_task(self, name: str) -> None:
        if self.confirm_remove(name) and self._edit_tasks(self.session.remove_task, name):
            self.undo_action.setText(f"&Undo remove '{name}'")
            self.undo_action.setEnabled(True)
            self.statusBar().showMessage(f"Removed '{name}' (its images stay where they are). Ctrl+Z brings it back.")

    def delete_trained_task(self, name: str) -> None:
        if self.jobs.running("train") or self.jobs.running("edit"):
            self.show_error("Training is running: delete a trained task when it has ended (or Cancel it).")
            return
        if not self.confirm_delete(name):
            return
        self.statusBar().showMessage(f"Deleting '{name}'…")

        def done(record: dict[str, Any]) -> None:
            self.session.deleted(record)  # type: ignore[arg-type]
            self.undo_action.setText(f"&Undo delete '{name}'")
            self.undo_action.setEnabled(True)
            self.render_all()
            self.statusBar().showMessage(f"Deleted '{name}'; every other task is as it was. Ctrl+Z brings it back.")

        self.jobs.start("edit", delete_task_job(self.session.folder, name), on_done=done, on_failed=self.show_error)

    def _ask_delete(self, name: str) -> bool:
        answer = QMessageBox.question(
            self,
            "Delete trained task",
            f"Delete the trained task '{name}'? Its model and its row and column of the accuracy matrix go; "
            "every other task stays exactly as it is. Edit ▸ Undo (Ctrl+Z) brings it back until the project "
            "changes again.",
        )
        return answer == QMessageBox.StandardButton.Yes

    def undo_remove(self) -> None:
        self.undo_action.setEnabled(False)
        self.undo_action.setText("&Undo remove")
        names: list[str] = []
        if self._edit_tasks(lambda: names.append(self.session.undo_remove())):
            self.statusBar().showMessage(f"'{names[0]}' is back in the queue.", 8000)

    def rename_task(self, name: str) -> None:
        new_name = self.ask_task_name(name)
        if new_name and new_name != name:
            self._edit_tasks(self.session.rename_task, name, new_name)

    def _ask_remove(self, name: str) -> bool:
        answer = QMessageBox.question(
            self,
            "Remove task",
            f"Remove the waiting task '{name}' from this project? Its images stay where they are, and "
            "Edit ▸ Undo (Ctrl+Z) brings it back.",
        )
        return answer == QMessageBox.StandardButton.Yes

    def _ask_task_name(self, name: str) -> str | None:
        new_name, ok = QInputDialog.getText(self, "Rename task", "New name:", text=name)
        return new_name if ok else None

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
        refused = self.session.enqueue(paths)
        if refused:
            self.statusBar().showMessage(refused[0], 10000)
        self._next_scan()

    def _next_scan(self) -> None:
        if self.jobs.running("scan"):
            return
        folder = self.session.next_scan()
        if folder is None:
            return
        progress = QProgressDialog(f"Checking the images in '{folder.name}'…", "Cancel", 0, 0, self)
        progress.setWindowModality(Qt.WindowModality.WindowModal)
        progress.setMinimumDuration(500)  # only shown if the scan takes longer than half a second

        def done(report: ScanReport) -> None:
            progress.close()
            self._scanned(report)

        def failed(message: str, tb: str) -> None:
            progress.close()
            self.show_error(message, tb)
            self._next_scan()

        def cancelled() -> None:
            progress.close()
            self._next_scan()

        def advanced(done: int, total: int) -> None:
            progress.setMaximum(total)
            progress.setValue(done)

        worker = self.jobs.start(
            "scan", scan_job(folder), on_done=done, on_failed=failed, on_cancelled=cancelled, on_progress=advanced
        )
        progress.canceled.connect(worker.cancel_token.cancel)

    def _scanned(self, report: ScanReport) -> None:
        name = self.confirm_preflight(report)
        if name:
            try:
                self.statusBar().showMessage(self.session.accept(report, name), 8000)
            except CLStudioError as e:
                self.show_error(str(e))
        self.render_all()
        self._next_scan()

    def _ask_preflight(self, report: ScanReport) -> str | None:
        dialog = PreflightDialog(report, self)
        return dialog.task_name() if dialog.exec() else None

    # --- training ----------------------------------------------------------------------------------------
    def start_training(self, strategy: str, config: dict[str, Any]) -> None:
        if self.jobs.running("train") or self.jobs.running("setup") or not self.session.can_start():
            return
        if not self.session.needs_reconfigure(strategy, config):
            self._launch_training()
            return
        # New settings may mean a new image size, which builds the backbone: off the GUI thread.
        self.statusBar().showMessage("Applying the new settings…")
        self.jobs.start(
            "setup",
            reconfigure_job(self.session.folder, strategy, config),
            on_done=self._settings_applied,
            on_failed=self.show_error,
        )

    def _settings_applied(self, _strategy: str) -> None:
        self.session.reload()
        self._launch_training()

    def _launch_training(self) -> None:
        names = self.session.start()
        if not names:
            return
        self.jobs.start(
            "train",
            train_job(self.session.folder, names, self.device()),
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
        if self.session.on_event(event):
            self._dirty = True
        if isinstance(event, ev.TaskStarted | ev.ModelLive):
            self.tasks.show_data(self.session.view, self.training, self.session.queued_names)
        if isinstance(event, ev.ModelLive):
            self.classify.show_data(self.session.view)  # the probe model answers while CLR trains
        if isinstance(event, ev.Warning):
            self.statusBar().showMessage(event.message, 15000)
        if isinstance(event, ev.InputSizeChosen):
            self.statusBar().showMessage(input_size_note(event) + ".", 20000)
            self._show_settings(self.session.view, event.size, "")  # the file is the training process's until it ends
        if isinstance(event, ev.TaskFinished):
            self.tasks.show_data(self.session.view, None, self.session.queued_names)
            self._render_results()

    def _training_ended(self, _result: Any = None) -> None:
        errors = self.session.training_ended()
        self.render_all()
        self.statusBar().showMessage("Training finished." if _result is not None else "Training cancelled.", 10000)
        for message in errors:
            self.show_error(message)
        if _result is not None and not self.jobs.running("prepare-classify"):
            # Quietly: a failure here only means classify exports on first use or answers through torch.
            self.jobs.start(
                "prepare-classify",
                prepare_classify_job(self.session.folder),
                on_failed=lambda message, tb: log.warning("Preparing classify failed: %s", message),
            )

    def _training_failed(self, message: str, tb: str) -> None:
        self._training_ended(None)
        self.show_error(message, tb)

    # --- classify ----------------------------------------------------------------------------------------
    def run_classify(self, paths: list[str], task: str) -> None:
        if self.jobs.running("classify"):
            return

        def failed(message: str, tb: str) -> None:
            self.classify.show_failure()
            self.show_error(message, tb)

        self.jobs.start(
            "classify",
            classify_job(self.session.folder, paths, task),
            on_done=self.classify.show_results,
            on_failed=failed,
            on_progress=self.classify.show_progress,
        )

    # --- export ------------------------------------------------------------------------------------------
    def export_model_dialog(self) -> None:
        names = self.session.view.trained_names()
        if not names:
            return
        task, ok = QInputDialog.getItem(self, "Export model", "Task to export:", names, len(names) - 1, False)
        if not ok:
            return
        path, chosen = QFileDialog.getSaveFileName(
            self, f"Export '{task}'", f"{task}.onnx", "ONNX (*.onnx);;TorchScript (*.pt)"
        )
        if path:
            self.export_model(task, "torchscript" if chosen.startswith("TorchScript") else "onnx", Path(path))

    def export_model(self, task: str, fmt: str, out: Path) -> None:
        if self.jobs.running("export"):
            return
        self.statusBar().showMessage(f"Exporting '{task}' as {fmt}…")
        self.jobs.start(
            "export",
            export_model_job(self.session.folder, task, fmt, out),
            on_done=lambda model: self.statusBar().showMessage(
                f"Exported '{task}' to {model} (and {Path(model).name}.json: classes, input, normalisation)", 15000
            ),
            on_failed=self.show_error,
        )

    # --- errors, settings, closing -----------------------------------------------------------------------
    def show_error(self, message: str, tb: str = "") -> None:
        """The one place errors go: a readable dialog, and the traceback in the log file."""
        log.error("%s\n%s", message, tb)
        box = QMessageBox(QMessageBox.Icon.Warning, "CL Studio", message, QMessageBox.StandardButton.Ok, self)
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
        return answer == QMessageBox.StandardButton.Yes

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self.jobs.running("train") and not self.confirm_close():
            event.ignore()
            return
        self.jobs.join_all()
        s = settings()
        s.setValue("geometry", self.saveGeometry())
        s.setValue("splitter", self.splitter.saveState())
        s.sync()
        remember_project(self.session.folder)
        self.refresh_timer.stop()
        event.accept()
