"""Render resources/clstudio.svg into every icon file the platforms want, and the app's runtime copies.

    QT_QPA_PLATFORM=offscreen python packaging/make_icons.py

resources/icons/clstudio-<n>.png (16 … 1024 px: Linux hicolor sizes, the .desktop entry, AppStream),
resources/clstudio.ico (Windows, 16 … 256 px), resources/clstudio.icns (macOS, 16 … 1024 px), and
clstudio/resources/ (the SVG and the PNGs the window icon is built from, installed as package data).
Qt's own SVG renderer draws the PNGs, so the art has one source; Pillow packs the .ico and .icns.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SVG = ROOT / "resources" / "clstudio.svg"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512, 1024)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)  # what Windows reads from an .ico
RUNTIME_SIZES = (16, 32, 48, 64, 128, 256)  # enough for title bars, task bars and docks at 1× and 2×


def render(size: int, out: Path) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    QSvgRenderer(str(SVG)).render(painter)
    painter.end()
    if not image.save(str(out)):
        raise SystemExit(f"could not write {out}")


def main() -> int:
    from PIL import Image
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication(sys.argv)  # QImage text/SVG rendering needs one
    icons = ROOT / "resources" / "icons"
    icons.mkdir(parents=True, exist_ok=True)
    for size in SIZES:
        render(size, icons / f"clstudio-{size}.png")
    biggest = Image.open(icons / "clstudio-1024.png")
    biggest.save(ROOT / "resources" / "clstudio.ico", sizes=[(s, s) for s in ICO_SIZES])
    biggest.save(ROOT / "resources" / "clstudio.icns")
    runtime = ROOT / "clstudio" / "resources"
    runtime.mkdir(exist_ok=True)
    shutil.copy2(SVG, runtime / "clstudio.svg")
    for size in RUNTIME_SIZES:
        shutil.copy2(icons / f"clstudio-{size}.png", runtime / f"clstudio-{size}.png")
    print("wrote", icons, ROOT / "resources" / "clstudio.ico", ROOT / "resources" / "clstudio.icns", runtime)
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main())
