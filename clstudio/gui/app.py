"""Start the desktop app: ``clstudio-gui [PROJECT]`` opens that project; with none, the last project,
reopened as it was, or a fresh default one."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from clstudio import __version__
from clstudio.engine.errors import CLStudioError
from clstudio.engine.paths import projects_dir
from clstudio.engine.project import Project
from clstudio.gui.identity import set_identity


def default_project() -> Path:
    from clstudio.gui.main_window import settings

    last = settings().value("last_project")
    if last and (Path(last) / "project.json").exists():
        return Path(last)
    folder = projects_dir() / "default"
    if not (folder / "project.json").exists():
        Project.create(folder)  # CLR on EfficientNet-Lite0: works offline; changeable until a task is trained
    return folder


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="clstudio-gui", description="CL Studio: continual learning on image folders.")
    parser.add_argument("project", nargs="?", type=Path, help="a project folder to open (default: the last one)")
    parser.add_argument("--version", action="version", version=f"CL Studio {__version__}")
    # For packaging/smoke.sh: prove a built app starts, trains in its child process and quits by itself.
    parser.add_argument("--smoke-train", type=Path, metavar="FOLDER", help=argparse.SUPPRESS)
    parser.add_argument("--quit-after", type=float, default=None, help=argparse.SUPPRESS)
    # Qt's own options (-style, -platform, …) pass through to QApplication.
    args, _qt_args = parser.parse_known_args(argv)
    return args


def run_app(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    args = parse_args(argv[1:])
    from PySide6.QtWidgets import QApplication, QMessageBox

    from clstudio.gui.main_window import MainWindow, log_file

    logging.basicConfig(filename=log_file(), level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    app = QApplication.instance() or QApplication(argv)
    set_identity()
    try:
        folder = args.project.expanduser().resolve() if args.project else default_project()
        if not (folder / "project.json").exists():
            raise CLStudioError(
                f"{folder} is not a CL Studio project (no project.json). Open a project folder, or start "
                "clstudio-gui with no argument to open the last one."
            )
        window = MainWindow(folder)
    except CLStudioError as e:
        QMessageBox.critical(None, "CL Studio", str(e))
        return 1
    window.show()
    if args.smoke_train is not None or args.quit_after is not None:
        return _smoke(app, window, args.smoke_train, args.quit_after or 0.0)
    return app.exec()


def _smoke(app: Any, window: Any, folder: Path | None, seconds: float) -> int:
    """Show the window ``seconds``; with ``folder``, first add it as a task (the pre-flight accepted as is)
    and train it through Start, in the training child process, as a person would. Exit 0 when that task
    trained, 3 when it did not."""
    from PySide6.QtCore import QTimer

    stage = {"added": folder is None, "started": folder is None}

    def step() -> None:
        if not stage["added"]:
            if window.session.view.pending_tasks() and not window.jobs.busy:
                stage["added"] = True
        elif not stage["started"]:
            stage["started"] = True
            window.train.start.click()
        elif window.training is None and not window.jobs.busy:
            QTimer.singleShot(int(seconds * 1000), window.close)
            return
        QTimer.singleShot(200, step)

    if folder is not None:
        window.confirm_preflight = lambda report: report.name
        window.handle_dropped([folder])
    QTimer.singleShot(200, step)
    app.exec()
    left = window.session.view.pending_tasks()
    if folder is not None and left:
        print(f"smoke: not trained: {', '.join(t['name'] for t in left)}", file=sys.stderr)
        return 3
    print(f"smoke: window shown, {len(window.session.view.trained_tasks())} task(s) trained")
    return 0
