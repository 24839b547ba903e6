"""Every view of the app in a light and a dark palette, at 1280×800 and at a small 1024×700 window.

    QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1400x900x24" python scripts/screenshots_themes.py [--backbone tiny]

Writes docs/screenshots/themes/<theme>-<size>-<view>.png: the six tabs of a trained CLR project (two demo
tasks), the New-project dialog, the pre-flight sheet and the drill-down; and three tabs at 1920×1080 (a 4K
screen at 200 %). The dark palette is what a dark
desktop hands Qt (Fusion style, dark window and base colours): the app takes every colour from it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots" / "themes"
SIZES = {"1280x800": (1280, 800), "1024x700": (1024, 700)}
BIG = (1920, 1080)  # a 4K screen at the usual 200 % scale: the window in logical pixels (light, one shot per tab)


def dark_palette() -> Any:
    from PySide6.QtGui import QColor, QPalette

    p = QPalette()
    roles = QPalette.ColorRole
    for role, rgb in (
        (roles.Window, (45, 45, 48)),
        (roles.WindowText, (230, 230, 230)),
        (roles.Base, (30, 30, 32)),
        (roles.AlternateBase, (55, 55, 60)),
        (roles.Text, (230, 230, 230)),
        (roles.Button, (55, 55, 60)),
        (roles.ButtonText, (230, 230, 230)),
        (roles.Highlight, (42, 130, 218)),
        (roles.HighlightedText, (255, 255, 255)),
        (roles.ToolTipBase, (55, 55, 60)),
        (roles.ToolTipText, (230, 230, 230)),
        (roles.PlaceholderText, (150, 150, 150)),
        (roles.Mid, (110, 110, 115)),
        (roles.Link, (100, 170, 255)),
    ):
        p.setColor(role, QColor(*rgb))
    p.setColor(QPalette.ColorGroup.Disabled, roles.WindowText, QColor(140, 140, 140))
    p.setColor(QPalette.ColorGroup.Disabled, roles.ButtonText, QColor(140, 140, 140))
    p.setColor(QPalette.ColorGroup.Disabled, roles.Text, QColor(140, 140, 140))
    return p


def pump(app: Any, seconds: float = 0.4) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", default="efficientnet_lite0")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="clstudio-themes-"))
    os.environ["CLSTUDIO_HOME"] = str(home)

    from PySide6.QtWidgets import QApplication

    from clstudio.engine.data.scan import scan_folder
    from clstudio.engine.data.synthetic import make_demo
    from clstudio.engine.project import Project
    from clstudio.gui import main_window
    from clstudio.gui.identity import set_identity
    from clstudio.gui.panels.new_project import NewProjectDialog
    from clstudio.gui.panels.preflight import PreflightDialog

    app = QApplication(sys.argv)
    set_identity()
    app.setStyle("Fusion")  # the same style under both palettes: only the colours differ
    light = app.palette()
    OUT.mkdir(parents=True, exist_ok=True)
    shapes, colours = make_demo(home / "demo", per_class=30)
    project = Project.create(home / "demo-project", backbone=args.backbone, config={"epochs": 4})
    for folder in (shapes, colours):
        project.add_task(folder)
    project.train_pending()
    opened: list = []
    main_window.DrillDownDialog.exec = lambda self: (opened.append(self), self.show(), 0)[-1]

    def save(widget: Any, name: str) -> None:
        pump(app)
        widget.grab().save(str(OUT / f"{name}.png"))
        print("saved", name)

    for theme, palette in (("light", light), ("dark", dark_palette())):
        app.setPalette(palette)
        for size, (width, height) in SIZES.items():
            w = main_window.MainWindow(project.folder)  # built under the palette, as at start-up
            w.resize(width, height)
            w.show()
            for i in range(w.tabs.count()):
                w.tabs.setCurrentIndex(i)
                slug = w.tabs.tabText(i).lower().replace(" ", "-")
                save(w, f"{theme}-{size}-{i + 1}-{slug}")
            w.confirm_close = lambda: True
            w.close()
        if theme == "light":
            w = main_window.MainWindow(project.folder)
            w.resize(*BIG)
            w.show()
            for i in (0, 2, 3):  # Train, Accuracy matrix, Forgetting: the views with the most layout
                w.tabs.setCurrentIndex(i)
                save(w, f"light-1920x1080-{i + 1}-{w.tabs.tabText(i).lower().replace(' ', '-')}")
            w.confirm_close = lambda: True
            w.close()
        dialog = NewProjectDialog(home)
        dialog.show()
        save(dialog, f"{theme}-dialog-new-project")
        dialog.close()
        pre = PreflightDialog(scan_folder(shapes))
        pre.show()
        save(pre, f"{theme}-dialog-preflight")
        pre.close()
        w = main_window.MainWindow(project.folder)
        w.open_drilldown(1, 0)
        save(opened[-1], f"{theme}-dialog-drilldown")
        opened[-1].close()
        w.confirm_close = lambda: True
        w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
