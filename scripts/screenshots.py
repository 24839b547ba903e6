"""Drive the real app through a person's steps on generated data and save a PNG of each view.

    QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1400x900x24" python scripts/screenshots.py [--backbone tiny]

Writes docs/screenshots/*.png: a CLR run (01-09), a SparCL run (10-13) and classify without choosing the task
(14-16: Auto with "none of my tasks", a folder in the table, Task ▸ Export model), and under the numbers
(18-22: a fine-tune run's drill-down and forgetting timeline, a CLR run's proof badge and proof), and a first
start (23-24: the empty state, File ▸ New project), and 'auto' image size (31-32). Uses a throw-away
CLSTUDIO_HOME, so your own projects are untouched.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
SPARCL_SHOTS = {"epochs": 15, "batch_size": 16}


class Shooter:
    def __init__(self, app: Any) -> None:
        self.app = app

    def pump(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.app.processEvents()
            time.sleep(0.02)

    def shot(self, name: str, widget: Any) -> None:
        self.pump(0.4)
        widget.grab().save(str(OUT / f"{name}.png"))
        print("saved", OUT / f"{name}.png")

    def wait(self, cond: Callable[[], bool], timeout: float = 1800) -> None:
        end = time.monotonic() + timeout
        while not cond() and time.monotonic() < end:
            self.pump(0.1)


def watch(w: Any) -> list:
    seen: list = []
    original = w.on_event
    w.on_event = lambda e: (seen.append(e), original(e))
    return seen


def add_tasks(sh: Shooter, w: Any, folders: list[Path], preflight: Callable | None = None) -> None:
    w.confirm_preflight = preflight or (lambda report: report.name)
    w.handle_dropped(folders)
    sh.wait(lambda: len(w.session.tasks) == len(folders) and not w.jobs.busy)


def clr_run(sh: Shooter, w: Any, shapes: Path, colours: Path) -> None:
    from clstudio.engine import events as ev
    from clstudio.gui.panels.preflight import PreflightDialog

    sh.shot("01-empty-project", w)

    def preflight(report: Any) -> str:
        d = PreflightDialog(report, w)
        d.show()
        sh.shot(f"02-preflight-{report.name}", d)
        name = d.task_name()
        d.close()
        return name

    add_tasks(sh, w, [shapes, colours], preflight)
    sh.shot("03-tasks-added", w)
    seen = watch(w)
    w.train.start.click()
    sh.wait(lambda: sum(isinstance(e, ev.EpochEnded) for e in seen) >= 3)
    sh.shot("04-training", w)
    w.tabs.setCurrentWidget(w.curves)
    sh.shot("05-curves-live", w)
    sh.wait(lambda: w.training is None and not w.jobs.busy)
    for i, (panel, name) in enumerate(((w.curves, "curves"), (w.matrix, "matrix"), (w.sparsity, "cost-per-task")), 6):
        w.tabs.setCurrentWidget(panel)
        sh.shot(f"{i:02d}-{name}", w)
    w.tabs.setCurrentWidget(w.classify)
    w.classify.task.setCurrentText("colours")
    w.classify.request([str(sorted((colours / c).iterdir())[0]) for c in ("red", "green", "blue")])
    sh.wait(lambda: len(w.classify.cards) == 3, 120)
    sh.shot("09-classify", w)


def live_run(sh: Shooter, w: Any, shapes: Path, colours: Path) -> None:
    """CLR's first model: the probe head is live in Classify while CLR trains (paused to look at it)."""
    from clstudio.engine import events as ev

    add_tasks(sh, w, [colours])
    seen = watch(w)
    w.train.start.click()
    sh.wait(lambda: any(isinstance(e, ev.ModelLive) for e in seen))
    w.train.pause.click()
    sh.wait(lambda: any(isinstance(e, ev.Paused) for e in seen))
    sh.shot("28-probe-model-live", w)
    w.tabs.setCurrentWidget(w.classify)
    w.classify.request([str(sorted((colours / c).iterdir())[0]) for c in ("red", "green", "blue")])
    sh.wait(lambda: len(w.classify.cards) == 3, 120)
    sh.shot("29-classify-with-the-probe-while-clr-trains", w)
    w.tabs.setCurrentWidget(w.curves)
    w.train.pause.click()
    sh.wait(lambda: w.training is None and not w.jobs.busy)
    sh.shot("30-clr-against-its-probe", w)


def size_run(sh: Shooter, w: Any, shapes: Path, colours: Path) -> None:
    """31-32: 'auto' image size, what the settings say before the first task trains, and the note when its
    small images (the demo's are 64 px) decide it."""
    from clstudio.engine import events as ev

    w.tabs.setCurrentWidget(w.train)
    w.train.form.advanced.expand(animate=False)
    sh.shot("31-auto-size-before-the-first-task", w)
    add_tasks(sh, w, [shapes])
    seen = watch(w)
    w.train.start.click()
    sh.wait(lambda: any(isinstance(e, ev.EpochEnded) for e in seen))
    assert any(isinstance(e, ev.InputSizeChosen) for e in seen)
    sh.shot("32-auto-size-chosen", w)
    sh.wait(lambda: w.training is None and not w.jobs.busy)


def odd_images(folder: Path) -> list[Path]:
    """Images unlike the demo tasks: a scanned-page look and a photo-like noise field."""
    import numpy as np
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    page = Image.new("RGB", (64, 64), "white")
    d = ImageDraw.Draw(page)
    for y in range(6, 60, 8):
        d.text((4, y), "invoice 42 total", fill="black")
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    paths = [folder / "scanned-page.png", folder / "noise.png"]
    page.save(paths[0])
    noise.save(paths[1])
    return paths


def classify_run(sh: Shooter, w: Any, shapes: Path, colours: Path) -> None:
    """A project with both demo tasks trained: Auto on a few images, a folder, the export action."""
    from PySide6.QtCore import QPoint

    w.tabs.setCurrentWidget(w.classify)
    assert w.classify.chosen_task() == "auto"
    from clstudio.engine.project import Project

    odd = odd_images(shapes.parent / "odd")
    # The demo's colours are drawn as shapes too, so some of them look like the shapes task: show one that
    # the router sends to colours, next to a triangle and an image unlike both.
    greens = Project.open(w.session.folder).classify([colours / "green"], "auto")
    green = next(r["path"] for r in greens if r["task"] == "colours")
    picks = [sorted((shapes / "triangle").iterdir())[0], green, odd[0]]
    w.classify.request([str(p) for p in picks])
    sh.wait(lambda: len(w.classify.cards) == 3, 120)
    sh.shot("14-classify-auto", w)
    w.classify.request([str(shapes.parent)])  # the whole demo folder, subfolders included
    sh.wait(lambda: not w.jobs.busy and w.classify.views.currentWidget() is w.classify.table, 300)
    w.classify.table.sortItems(4)
    sh.shot("15-classify-folder-table", w)
    w.export_model("shapes", "onnx", shapes.parent / "shapes.onnx")
    sh.wait(lambda: not w.jobs.busy, 120)
    w.task_menu.popup(w.mapToGlobal(QPoint(60, 24)))
    sh.pump(0.5)
    w.task_menu.setActiveAction(w.export_action)
    sh.pump(0.3)
    screen = w.screen().grabWindow(0)
    screen.copy(w.frameGeometry()).save(str(OUT / "16-export-model.png"))
    print("saved", OUT / "16-export-model.png")
    w.task_menu.hide()


def sparcl_run(sh: Shooter, w: Any, shapes: Path, colours: Path) -> None:
    from clstudio.engine import events as ev

    add_tasks(sh, w, [shapes, colours])
    sh.shot("10-sparcl-settings", w)
    seen = watch(w)
    w.train.start.click()
    w.tabs.setCurrentWidget(w.sparsity)
    sh.wait(lambda: any(isinstance(e, ev.TaskStarted) and e.task == "colours" for e in seen))
    sh.wait(lambda: sum(isinstance(e, ev.SparsityUpdated) and e.task == "colours" for e in seen) >= 3)
    sh.shot("11-sparcl-sparsity-live", w)
    sh.wait(lambda: w.training is None and not w.jobs.busy)
    sh.shot("12-sparcl-sparsity", w)
    w.tabs.setCurrentWidget(w.matrix)
    sh.shot("13-sparcl-matrix-class-il", w)


def forgetting_run(sh: Shooter, w: Any, shapes: Path, colours: Path) -> None:
    """18-20 on a fine-tune project (it forgets): a click on R, the drill-down it opens, the timeline."""
    from clstudio.gui import main_window

    opened: list = []
    main_window.DrillDownDialog.exec = lambda self: (opened.append(self), self.show(), 0)[-1]
    w.tabs.setCurrentWidget(w.matrix)
    sh.shot("19-matrix-click-a-cell", w)
    w.open_drilldown(1, 0)
    sh.shot("18-drilldown-confusion-and-images", opened[0])
    opened[0].close()
    w.tabs.setCurrentWidget(w.forgetting)
    w.forgetting.show_cell(0, 1)
    sh.shot("20-forgetting-timeline", w)


def proof_run(sh: Shooter, w: Any, shapes: Path, colours: Path) -> None:
    """21-22 on a CLR project: the matrix's zero-forgetting badge, and the proof its link opens."""
    w.tabs.setCurrentWidget(w.matrix)
    sh.shot("21-matrix-proof-badge", w)
    w.matrix.proof_badge.linkActivated.emit("proof")
    w.forgetting.show_cell(0, 1)
    sh.shot("22-forgetting-proof-clr", w)


def newcomer_run(sh: Shooter, w: Any, shapes: Path, colours: Path) -> None:
    """23-24: the empty state (why Start is disabled, Try with demo data) and File ▸ New project."""
    from clstudio.gui.panels.new_project import NewProjectDialog

    w.tabs.setCurrentWidget(w.train)
    sh.shot("23-empty-state-start-disabled", w)
    dialog = NewProjectDialog(w.session.folder.parent, w)
    dialog.name.setText("birds")
    dialog.backbone.setCurrentIndex(dialog.backbone.findData("resnet50"))
    dialog.show()
    sh.shot("24-new-project", dialog)
    dialog.close()


def trained(project: Any, folders: list[Path]) -> Any:
    for folder in folders:
        project.add_task(folder)
    project.train_pending()
    return project


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", default="efficientnet_lite0", help="the CLR run's backbone")
    ap.add_argument("--epochs", type=int, default=15, help="the CLR run's epochs (6 is too few for the demo)")
    ap.add_argument(
        "--only",
        choices=["clr", "sparcl", "classify", "results", "newcomer", "live", "size"],
        help="shoot one run only",
    )
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="clstudio-shots-"))
    os.environ["CLSTUDIO_HOME"] = str(home)

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from clstudio.engine.data.synthetic import make_demo
    from clstudio.engine.project import Project
    from clstudio.gui.main_window import MainWindow

    app = QApplication(sys.argv)
    sh = Shooter(app)
    OUT.mkdir(parents=True, exist_ok=True)
    shapes, colours = make_demo(home / "demo", per_class=30)

    def window(project: Project) -> MainWindow:
        w = MainWindow(project.folder)
        w.resize(1360, 860)
        w.show()
        return w

    runs = []
    if args.only in (None, "classify"):
        p = Project.create(home / "classify", backbone=args.backbone, config={"epochs": 3})
        runs.append((classify_run, trained(p, [shapes, colours])))
    if args.only in (None, "newcomer"):
        runs.append((newcomer_run, Project.create(home / "first", backbone=args.backbone)))
    if args.only in (None, "results"):
        # lr 0.01 on the shared weights: fine-tune forgets some of shapes while it learns colours
        p = Project.create(
            home / "finetune", strategy="finetune", backbone=args.backbone, config={"epochs": 4, "lr": 0.01}
        )
        runs.append((forgetting_run, trained(p, [shapes, colours])))
        p = Project.create(home / "proof", backbone=args.backbone, config={"epochs": 3})
        runs.append((proof_run, trained(p, [shapes, colours])))
    if args.only in (None, "live"):
        runs.append((live_run, Project.create(home / "live", backbone=args.backbone, config={"epochs": 4})))
    if args.only in (None, "size"):
        runs.append((size_run, Project.create(home / "size", backbone=args.backbone, config={"epochs": 2})))
    if args.only in (None, "clr"):
        p = Project.create(home / "clr", backbone=args.backbone, config={"epochs": args.epochs})
        runs.append((clr_run, p))
    if args.only in (None, "sparcl"):
        # SparCL's paper preset (CIFAR ResNet-18 from scratch at 32 px) on the demo folders, a few epochs.
        runs.append(
            # 15 epochs of 4 steps: enough for the toy tasks from scratch (colours reaches 100 %)
            (sparcl_run, Project.create(home / "sparcl", strategy="sparcl", preset="paper", config=SPARCL_SHOTS))
        )
    for run, project in runs:
        w = window(project)
        run(sh, w, shapes, colours)
        w.confirm_close = lambda: True
        w.close()
    QTimer.singleShot(0, app.quit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
