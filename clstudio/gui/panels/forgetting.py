"""What was forgotten, when: a timeline per task (one row per task, one column per moment after it), each
cell the task's accuracy then and how many of its evaluation images flipped right → wrong and wrong → right
since the moment before; a click shows those images. For CLR and the linear probe, whose earlier tasks
cannot change, the zero-forgetting proof sits on top: each task's verdict and digests, as last checked."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from clstudio.engine.formatting import format_share
from clstudio.engine.views import ProjectView
from clstudio.gui.panels.gallery import ImageGallery

LOST = QColor(220, 60, 60)  # one red for forgetting, translucent so it reads on light and dark themes
EMPTY_TEXT = "The timeline fills in from the second task on: it shows what each new task changed in the earlier ones."


class ForgettingPanel(QWidget):
    def __init__(self) -> None:
        super().__init__()
        self.view: ProjectView | None = None
        self.timeline: list[dict] = []
        self.selected: tuple[int, int] | None = None  # (task row, moment column) of the shown cell
        self.summary = QLabel(EMPTY_TEXT)
        self.summary.setWordWrap(True)
        self.proof = QLabel()
        self.proof.setWordWrap(True)
        self.proof.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.table = QTableWidget(0, 0)
        self.table.setToolTip(
            "Row: a task. Column: the moment right after training that task. Each cell: the row's accuracy "
            "then, and its images that went right → wrong (✗) or wrong → right (✓) since the column before."
        )
        self.table.cellClicked.connect(self.show_cell)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.lost_button = QPushButton("right → wrong")
        self.gained_button = QPushButton("wrong → right")
        self.lost_button.clicked.connect(lambda: self._show_flips("right_to_wrong"))
        self.gained_button.clicked.connect(lambda: self._show_flips("wrong_to_right"))
        self.gallery = ImageGallery()
        buttons = QHBoxLayout()
        buttons.addWidget(QLabel("Show the images that went:"))
        buttons.addWidget(self.lost_button)
        buttons.addWidget(self.gained_button)
        buttons.addStretch(1)
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.table, 1)
        top_layout.addLayout(buttons)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(self.gallery)
        split.setSizes([300, 300])
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.proof)
        layout.addWidget(split, 1)
        self._set_buttons(None)

    def show_data(self, view: ProjectView) -> None:
        self.view = view
        self.timeline = view.forgetting_timeline()
        names = [t["task"] for t in self.timeline]
        self.table.clear()
        self.table.setRowCount(len(names))
        self.table.setColumnCount(len(names))
        self.table.setVerticalHeaderLabels(names)
        self.table.setHorizontalHeaderLabels([f"after {n}" for n in names])
        lost_total = 0
        for row, entry in enumerate(self.timeline):
            for moment in entry["moments"]:
                col = names.index(moment["after"])
                self.table.setItem(row, col, self._cell(moment, first=col == row))
                lost_total += len(moment["right_to_wrong"] or [])
        self.summary.setText(self._summary(names, lost_total))
        self._show_proof(view.proof_status())
        self.selected = None
        self._set_buttons(None)
        self.gallery.clear("Click a cell to see the images that flipped at that moment.")

    def _cell(self, moment: dict, first: bool) -> QTableWidgetItem:
        acc = format_share(moment["accuracy"])
        lost, gained = moment["right_to_wrong"], moment["wrong_to_right"]
        if first:
            text = f"{acc}\ntrained"
        elif lost is None or gained is None:
            text = f"{acc}\nno per-image record"
        else:
            text = f"{acc}\n{len(lost)} ✗ · {len(gained)} ✓"
        item = QTableWidgetItem(text)
        item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
        item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
        if lost:
            shade = QColor(LOST)
            shade.setAlphaF(min(0.25 + 0.05 * len(lost), 0.8))
            item.setBackground(shade)
        return item

    def _summary(self, names: list[str], lost_total: int) -> str:
        if len(names) < 2:
            return EMPTY_TEXT
        if lost_total == 0:
            return "No earlier task lost a single image's answer when a later task was learned."
        return (
            f"{lost_total} answer(s) to earlier tasks' images went right → wrong as later tasks were learned. "
            "In each cell: the task's accuracy then, then its images that went right → wrong (✗) and "
            "wrong → right (✓) since the column before. Red: forgetting. Click a cell to see the images."
        )

    def _show_proof(self, proof: dict[str, dict]) -> None:
        self.proof.setVisible(bool(proof))
        if not proof:
            return
        lines = [
            f"<b>{name}</b>: {p['verdict']} — weights <code>{p['weights_sha256'][:12]}</code>, "
            f"answers to its {p['images']} images <code>{p['answers_sha256'][:12]}</code>"
            for name, p in proof.items()
        ]
        self.proof.setText(
            "<b>Zero-forgetting proof</b> (each task's own weights and answers, digested when it was trained and "
            "checked after every later task; <code>clstudio verify</code> checks again):<br>" + "<br>".join(lines)
        )

    def _moment(self, row: int, col: int) -> dict | None:
        if not 0 <= row < len(self.timeline):
            return None
        k = col - row
        moments = self.timeline[row]["moments"]
        return moments[k] if 0 <= k < len(moments) else None

    def _set_buttons(self, moment: dict | None) -> None:
        for button, key, label in (
            (self.lost_button, "right_to_wrong", "right → wrong"),
            (self.gained_button, "wrong_to_right", "wrong → right"),
        ):
            flipped = moment.get(key) if moment else None
            button.setText(f"{len(flipped)} {label}" if flipped is not None else label)
            button.setEnabled(bool(flipped))

    def show_cell(self, row: int, col: int) -> None:
        moment = self._moment(row, col)
        self.selected = (row, col) if moment else None
        self._set_buttons(moment)
        if moment is not None and self.table.currentItem() is not self.table.item(row, col):
            self.table.setCurrentCell(row, col)  # a call from code shows the same cell a click would
        if moment is None:
            return
        if col == row:
            self.gallery.clear("The moment this task was trained: nothing to compare with yet.")
        elif moment["right_to_wrong"] is None:
            self.gallery.clear("This evaluation kept no per-image record (trained before it existed).")
        elif not moment["right_to_wrong"] and not moment["wrong_to_right"]:
            task = self.timeline[row]["task"]
            self.gallery.clear(f"No image of {task} changed its answer when {moment['after']} was learned.")
        else:
            self._show_flips("right_to_wrong" if moment["right_to_wrong"] else "wrong_to_right")

    def _show_flips(self, key: str) -> None:
        if self.selected is None or self.view is None:
            return
        row, col = self.selected
        moment = self._moment(row, col)
        task = self.timeline[row]["task"]
        answers = self.view.answers(task, moment["after"]) if moment else None
        if moment is None or answers is None:
            return
        kind = "right → wrong" if key == "right_to_wrong" else "wrong → right"
        self.gallery.show_images(
            answers, moment[key], f"{task}: images that went {kind} when {moment['after']} was learned"
        )
