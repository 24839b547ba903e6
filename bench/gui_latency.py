"""UI event-loop stalls while a CLR task trains on the CPU, in the real main window (training runs in its
child process, as in the app).

    QT_QPA_PLATFORM=offscreen python bench/gui_latency.py [--backbone efficientnet_lite0] [--seconds 60]

A 10 ms QTimer on the UI thread records the gap between its ticks while training runs; a gap over 10 ms
is time the UI could not react. Prints max and p99 of the stall (gap − 10 ms). Target: max ≤ 100 ms.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--seconds", type=float, default=60)
    args = ap.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    home = Path(tempfile.mkdtemp(prefix="clstudio-latency-"))
    os.environ["CLSTUDIO_HOME"] = str(home)

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from clstudio.engine.data.synthetic import make_demo
    from clstudio.engine.project import Project
    from clstudio.gui.main_window import MainWindow

    app = QApplication(sys.argv)
    shapes, _ = make_demo(home / "demo", per_class=40)
    project = Project.create(home / "project", backbone=args.backbone, config={"epochs": 50, "patience": 100}).folder
    w = MainWindow(project)
    w.confirm_preflight = lambda r: r.name
    w.confirm_close = lambda: True
    w.show()
    w.handle_dropped([shapes])
    while w.jobs.busy or not w.session.tasks:
        app.processEvents()
        time.sleep(0.01)
    gaps: list[float] = []
    at: list[float] = []
    last = [0.0]
    t0 = time.perf_counter()

    def tick() -> None:
        now = time.perf_counter()
        if last[0]:
            gaps.append(now - last[0])
            at.append(last[0] - t0)
        last[0] = now

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    w.train.start.click()
    timer.start()
    QTimer.singleShot(int(args.seconds * 1000), app.quit)
    app.exec()  # the real event loop, as in the app
    timer.stop()
    w.close()
    stall = np.maximum(np.array(gaps) - 0.010, 0) * 1000
    print(f"backbone {args.backbone}, {len(gaps)} timer ticks over {args.seconds:.0f} s of CPU training")
    print(
        f"UI stall: max {stall.max():.1f} ms, p99 {np.percentile(stall, 99):.1f} ms, median {np.median(stall):.1f} ms"
    )
    worst = int(np.argmax(stall))
    print(
        f"worst stall began {at[worst]:.2f} s after Start; stalls over 50 ms: "
        + ", ".join(f"{at[i]:.1f} s" for i in np.flatnonzero(stall > 50))
    )
    print("Target: max ≤ 100 ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
