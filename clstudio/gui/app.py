"""Start the desktop app: ``clstudio-gui [PROJECT]`` opens that project; with none, the last project,
reopened as it was, or a fresh default one."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

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
    return app.exec()
