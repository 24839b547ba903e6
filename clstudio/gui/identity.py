"""What the desktop shows of CL Studio: its name, version, icon and desktop id (the .desktop file and the
AppStream metainfo in packaging/ carry the same id)."""

from __future__ import annotations

from importlib import resources

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from clstudio import __version__

APP_ID = "io.github.clstudio.CLStudio"
ICON_SIZES = (16, 32, 48, 64, 128, 256)  # the PNGs packaging/make_icons.py renders into clstudio/resources


def app_icon() -> QIcon:
    """The window and application icon, one PNG per size so no size is scaled from another at run time."""
    icon = QIcon()
    folder = resources.files("clstudio") / "resources"
    for size in ICON_SIZES:
        with resources.as_file(folder / f"clstudio-{size}.png") as path:
            icon.addFile(str(path))
    return icon


def set_identity() -> None:
    """Name, version, icon and desktop id of the running application (static: any QApplication)."""
    QApplication.setApplicationName("CL Studio")
    QApplication.setApplicationVersion(__version__)
    QApplication.setOrganizationName("CL Studio")
    QApplication.setDesktopFileName(APP_ID)  # lets Wayland / the task bar match the window to its .desktop entry
    QApplication.setWindowIcon(app_icon())
