"""Start the desktop app: the last project, reopened as it was, or a fresh default one."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from clstudio.engine.errors import CLStudioError
from clstudio.engine.paths import projects_dir
from clstudio.engine.project import Project


def default_project() -> Path:
    from clstudio.gui.main_window import settings

    last = settings().value("last_project")
    if last and (Path(last) / "project.json").exists():
        return Path(last)
    folder = projects_dir() / "default"
    if not (folder / "project.json").exists():
        Project.create(folder)  # CLR on EfficientNet-Lite0: works offline; changeable until a task is trained
    return folder


def run_app(argv: list[str] | None = None) -> int:
    from PySide6.QtWidgets import QApplication, QMessageBox

    from clstudio.gui.main_window import MainWindow, log_file

    logging.basicConfig(filename=log_file(), level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    app = QApplication.instance() or QApplication(argv or sys.argv)
    app.setApplicationName("CL Studio")
    try:
        window = MainWindow(default_project())
    except CLStudioError as e:
        QMessageBox.critical(None, "CL Studio", str(e))
        return 1
    window.show()
    return app.exec()
