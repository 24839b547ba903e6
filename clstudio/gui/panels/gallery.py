"""A gallery of a task's evaluation images: thumbnails (sharp on HiDPI screens), file name, what the model
said and how sure it was, the true class in the tooltip, and a button that opens the image's folder. Shared
by the drill-down (one confusion cell) and the forgetting timeline (the images that flipped)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, QUrl
from PySide6.QtGui import QDesktopServices, QIcon, QPixmap
from PySide6.QtWidgets import QLabel, QListView, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from clstudio.engine.views import TaskAnswers

THUMB = 96
MAX_THUMBS = 200  # decoded on the GUI thread: enough for any cell of a small folder, bounded for a big one


class ImageGallery(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.caption = QLabel()
        self.caption.setWordWrap(True)
        self.list = QListWidget()
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setResizeMode(QListView.ResizeMode.Adjust)
        self.list.setWordWrap(True)
        self.list.setGridSize(QSize(THUMB + 48, THUMB + 56))
        self.list.itemDoubleClicked.connect(self._open_folder)
        self.open_button = QPushButton("Open the image's folder")
        self.open_button.setEnabled(False)
        self.open_button.clicked.connect(lambda: self._open_folder(self.list.currentItem()))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.caption)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.open_button, 0, Qt.AlignmentFlag.AlignRight)

    def files(self) -> list[str]:
        """The files shown, in order (what a test or a caller checks)."""
        return [self.list.item(k).data(Qt.ItemDataRole.UserRole) for k in range(self.list.count())]

    def clear(self, caption: str = "") -> None:
        self.list.clear()
        self.caption.setText(caption)
        self.open_button.setEnabled(False)

    def show_images(self, answers: TaskAnswers, positions: list[int], title: str) -> None:
        a = answers
        self.list.clear()
        shown = positions[:MAX_THUMBS]
        more = f" (first {len(shown)})" if len(positions) > len(shown) else ""
        self.caption.setText(f"<b>{title}</b>: {len(positions)} image(s){more}")
        ratio = self.devicePixelRatioF()
        for i in shown:
            pix = QPixmap(a.files[i])
            if not pix.isNull():
                pix = pix.scaled(
                    round(THUMB * ratio),
                    round(THUMB * ratio),
                    Qt.AspectRatioMode.KeepAspectRatio,
                    Qt.TransformationMode.SmoothTransformation,
                )
                pix.setDevicePixelRatio(ratio)
            said = a.classes[a.pred[i]] if a.pred[i] >= 0 else "unreadable"
            item = QListWidgetItem(QIcon(pix), f"{Path(a.files[i]).name}\n{said} {a.p_pred[i]:.0%}")
            item.setToolTip(
                f"{a.files[i]}\ntrue class {a.classes[a.labels[i]]}: {a.p_true[i]:.1%}\nsaid {said}: {a.p_pred[i]:.1%}"
            )
            item.setData(Qt.ItemDataRole.UserRole, a.files[i])
            self.list.addItem(item)
        if self.list.count():
            self.list.setCurrentRow(0)
        self.open_button.setEnabled(self.list.count() > 0)

    def _open_folder(self, item: QListWidgetItem | None) -> None:
        if item is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(item.data(Qt.ItemDataRole.UserRole)).parent)))
