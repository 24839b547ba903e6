"""The task list: what has been learned, what waits, and where to drop a new folder."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

from clstudio.engine.views import ProjectView

DROP_HINT = "Drop a folder of images here — one subfolder per class — to add a task"


class TasksPanel(QWidget):
    add_requested = Signal()
    demo_requested = Signal()  # the empty state's "Try with demo data"

    def __init__(self) -> None:
        super().__init__()
        self.title = QLabel("<b>Tasks</b>")
        self.hint = QLabel(DROP_HINT)
        self.hint.setWordWrap(True)
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setStyleSheet(
            "QLabel { border: 2px dashed #8a8f98; border-radius: 8px; padding: 18px; color: #4a4f58; }"
        )
        self.list = QListWidget()
        self.list.setAlternatingRowColors(True)
        self.list.setWordWrap(True)
        self.list.setSpacing(2)
        self.add_button = QPushButton("Add task…")
        self.add_button.setToolTip("Choose a folder with one subfolder per class (you can also drop folders here)")
        self.add_button.clicked.connect(self.add_requested)
        self.demo_button = QPushButton("Try with demo data")
        self.demo_button.setToolTip("Adds two small generated tasks (shapes, colours) to this project, to try the app")
        self.demo_button.clicked.connect(self.demo_requested)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.hint)
        layout.addWidget(self.add_button)
        layout.addWidget(self.demo_button)

    def show_data(self, state: ProjectView, training: str | None = None, queued: list[str] | None = None) -> None:
        self.list.clear()
        for t in state.tasks:
            n_images = t["train_images"] + t["eval_images"]
            if t["trained"]:
                status = f"✓ trained (val {t.get('best_val_acc', 0):.0%})"
            elif t["name"] == training:
                status = "● training…"
            else:
                status = "waiting to train"
            item = QListWidgetItem(f"{t['name']}\n   {len(t['classes'])} classes · {n_images} images · {status}")
            item.setToolTip("Classes: " + ", ".join(t["classes"]) + f"\nFrom: {t['source']}")
            self.list.addItem(item)
        for name in queued or []:
            self.list.addItem(QListWidgetItem(f"{name}\n   queued: added when the current training ends"))
        self.hint.setText(DROP_HINT if not state.tasks else "Drop more folders here to add tasks")
        self.demo_button.setVisible(not state.tasks and not queued)  # only on the empty state

    def task_names(self) -> list[str]:
        return [self.list.item(i).text().split("\n")[0] for i in range(self.list.count())]
