"""Drive the real app through a person's steps on generated data and save a PNG of each view.

    QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1400x900x24" python scripts/screenshots.py [--backbone tiny]

Writes docs/screenshots/*.png. Uses a throw-away CLSTUDIO_HOME, so your own projects are untouched.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--epochs", type=int, default=6)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="clstudio-shots-"))
    os.environ["CLSTUDIO_HOME"] = str(home)

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from clstudio.engine import events as ev
    from clstudio.engine.data.synthetic import make_demo
    from clstudio.engine.project import Project
    from clstudio.gui.main_window import MainWindow
    from clstudio.gui.panels.preflight import PreflightDialog

    app = QApplication(sys.argv)
    OUT.mkdir(parents=True, exist_ok=True)
    shapes, colours = make_demo(home / "demo", per_class=30)
    project = Project.create(home / "project", backbone=args.backbone, config={"epochs": args.epochs}).folder
    w = MainWindow(project)
    w.resize(1360, 860)
    w.show()

    def pump(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.02)

    def shot(name: str, widget=None) -> None:
        pump(0.4)
        (widget or w).grab().save(str(OUT / f"{name}.png"))
        print("saved", OUT / f"{name}.png")

    def wait(cond, timeout: float = 1800) -> None:
        end = time.monotonic() + timeout
        while not cond() and time.monotonic() < end:
            pump(0.1)

    shot("01-empty-project")
    dialogs: list[PreflightDialog] = []

    def preflight(report):
        d = PreflightDialog(report, w)
        d.show()
        dialogs.append(d)
        shot(f"02-preflight-{report.name}", d)
        name = d.task_name()
        d.close()
        return name

    w.confirm_preflight = preflight
    w.handle_dropped([shapes, colours])
    wait(lambda: len(w.state.tasks) == 2 and not w.jobs.busy)
    shot("03-tasks-added")
    seen: list = []
    original = w.on_event
    w.on_event = lambda e: (seen.append(e), original(e))
    w.train.start.click()
    wait(lambda: sum(isinstance(e, ev.EpochEnded) for e in seen) >= 3)
    shot("04-training")
    w.tabs.setCurrentWidget(w.curves)
    shot("05-curves-live")
    wait(lambda: w.training is None and not w.jobs.busy)
    for i, (panel, name) in enumerate(((w.curves, "curves"), (w.matrix, "matrix"), (w.sparsity, "cost-per-task")), 6):
        w.tabs.setCurrentWidget(panel)
        shot(f"{i:02d}-{name}")
    w.tabs.setCurrentWidget(w.classify)
    w.classify.task.setCurrentText("colours")
    w.classify.request([str(sorted((colours / c).iterdir())[0]) for c in ("red", "green", "blue")])
    wait(lambda: len(w.classify.cards) == 3, 120)
    shot("09-classify")
    w.confirm_close = lambda: True
    w.close()
    QTimer.singleShot(0, app.quit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
