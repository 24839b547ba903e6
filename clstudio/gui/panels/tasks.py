"""The task list: what has been learned, what waits, and where to drop a new folder. Waiting tasks can be
dragged into another training order, renamed (F2) and removed (Delete), from the keyboard or the context
menu; trained ones stay as they are (their place is part of the accuracy matrix)."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPoint, Qt, Signal, SignalInstance
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from clstudio.engine.records import TaskEntry
from clstudio.engine.views import ProjectView

DROP_HINT = "Drop a folder of images here — one subfolder per class — to add a task"
NAME, WAITING, DELETABLE = (Qt.ItemDataRole.UserRole + k for k in range(3))  # task name, waiting, deletable


class TasksPanel(QWidget):
    add_requested = Signal()
    demo_requested = Signal()  # the empty state's "Try with demo data"
    remove_requested = Signal(str)  # a waiting task's name
    rename_requested = Signal(str)
    reorder_requested = Signal(list)  # the waiting tasks' names in their new training order
    delete_requested = Signal(str)  # a trained task's name, where the strategy keeps tasks apart

    def __init__(self) -> None:
        super().__init__()
        self.title = QLabel("<b>Tasks</b>")
        self.hint = QLabel(DROP_HINT)
        self.hint.setWordWrap(True)
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setStyleSheet(
            "QLabel { border: 2px dashed palette(mid); border-radius: 8px; padding: 18px; color: palette(text); }"
        )
        self.list = QListWidget()
        self.list.setAlternatingRowColors(True)
        self.list.setWordWrap(True)
        self.list.setSpacing(2)
        self.list.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.list.model().rowsMoved.connect(self._moved)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._context_menu)
        rename = QShortcut(QKeySequence("F2"), self.list, context=Qt.ShortcutContext.WidgetShortcut)
        rename.activated.connect(lambda: self._emit_for_current(self.rename_requested))
        delete = QShortcut(
            QKeySequence(QKeySequence.StandardKey.Delete), self.list, context=Qt.ShortcutContext.WidgetShortcut
        )
        delete.activated.connect(self._delete_current)
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
        weak = state.near_chance_when_trained()
        for t in state.tasks:
            n_images = t["train_images"] + t["eval_images"]
            waiting = not t["trained"] and t["name"] != training
            chance = 1 / max(1, len(t["classes"]))
            if t["name"] in weak:
                status = f"⚠ trained, near chance: {weak[t['name']]:.0%} (guessing: {chance:.0%})"
            elif t["trained"]:
                status = f"✓ trained (val {t.get('best_val_acc', 0):.0%})" + _versus_probe(t)
            elif t["name"] == training:
                live = state.live_model(t["name"])
                status = "● training…" + (f" · probe model live (val {live['val_acc']:.0%})" if live else "")
            else:
                status = "waiting to train · drag to reorder"
            item = QListWidgetItem(f"{t['name']}\n   {len(t['classes'])} classes · {n_images} images · {status}")
            tip = "Classes: " + ", ".join(t["classes"]) + f"\nFrom: {t['source']}"
            if t["name"] in weak:
                tip += (
                    f"\nIts accuracy on {t['eval_images']} evaluation images is within two standard errors of "
                    "guessing: the model learned nothing usable. More images per class, more epochs, or "
                    "another method (CLR) may help."
                )
            if kept := t.get("probe_kept_over"):
                tip += (
                    f"\nCLR's best epoch ({kept['epoch']}, val {kept['val_acc']:.0%}) got {kept['wins']} validation "
                    f"images right that the probe missed and missed {kept['losses']} it got: not clearly better, so "
                    "the probe model stayed."
                )
            if t["name"] == training and state.live_model(t["name"]) is not None:
                tip += "\nClassify can use its probe model now; CLR replaces it if clearly better on validation."
            item.setToolTip(tip)
            item.setData(NAME, t["name"])
            item.setData(WAITING, waiting)
            item.setData(DELETABLE, bool(t["trained"]) and state.tasks_kept_apart and training is None)
            flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
            item.setFlags(flags | Qt.ItemFlag.ItemIsDragEnabled if waiting and training is None else flags)
            self.list.addItem(item)
        for name in queued or []:
            item = QListWidgetItem(f"{name}\n   queued: added when the current training ends")
            item.setFlags(Qt.ItemFlag.ItemIsEnabled)
            self.list.addItem(item)
        self.hint.setText(DROP_HINT if not state.tasks else "Drop more folders here to add tasks")
        self.demo_button.setVisible(not state.tasks and not queued)  # only on the empty state

    def task_names(self) -> list[str]:
        return [self.list.item(i).text().split("\n")[0] for i in range(self.list.count())]

    def waiting_names(self) -> list[str]:
        """The waiting tasks in the order the list shows them: the order they will train in."""
        items = (self.list.item(i) for i in range(self.list.count()))
        return [item.data(NAME) for item in items if item.data(WAITING)]

    def _moved(self, *_args: QModelIndex | int) -> None:
        self.reorder_requested.emit(self.waiting_names())

    def _delete_current(self) -> None:
        item = self.list.currentItem()
        if item is not None and item.data(DELETABLE):
            self.delete_requested.emit(item.data(NAME))
        else:
            self._emit_for_current(self.remove_requested)

    def _emit_for_current(self, signal: SignalInstance) -> None:
        item = self.list.currentItem()
        if item is not None and item.data(WAITING):
            signal.emit(item.data(NAME))

    def _context_menu(self, pos: QPoint) -> None:
        item = self.list.itemAt(pos)
        if item is None or not (item.data(WAITING) or item.data(DELETABLE)):
            return
        menu = QMenu(self)
        if item.data(WAITING):
            menu.addAction("Rename…  (F2)", lambda: self.rename_requested.emit(item.data(NAME)))
            menu.addAction("Remove…  (Delete)", lambda: self.remove_requested.emit(item.data(NAME)))
        else:
            menu.addAction("Delete trained task…  (Delete)", lambda: self.delete_requested.emit(item.data(NAME)))
        menu.exec(self.list.viewport().mapToGlobal(pos))
        menu.deleteLater()  # one menu per right-click: not kept as a child of the panel


def _versus_probe(task: TaskEntry) -> str:
    """CLR's result against the probe head it started from (its epoch 0), where it started from one."""
    if "probe_val_acc" not in task:
        return ""
    if task.get("best_epoch") == 0:
        return " · the probe model stayed"  # no CLR epoch was clearly better on validation
    return f" · CLR replaced the probe (probe: val {task['probe_val_acc']:.0%})"
