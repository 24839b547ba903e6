"""Classification results as CSV, one row per image, for spreadsheets and scripts: what `clstudio classify
--csv` writes and the app's Export CSV… button saves."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from clstudio.engine.storage import atomic_write_bytes

CSV_COLUMNS = ("path", "task", "top_class", "probability", "top_k", "none_of_my_tasks", "error")


def csv_rows(results: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One flat row per image: top-k as 'class:probability' joined by '; '; task empty for none of my tasks."""
    rows = []
    for r in results:
        top = r.get("top", [])
        rows.append(
            {
                "path": r["path"],
                "task": r.get("task") or "",
                "top_class": top[0][0] if top else "",
                "probability": f"{top[0][1]:.6f}" if top else "",
                "top_k": "; ".join(f"{c}:{p:.6f}" for c, p in top),
                "none_of_my_tasks": str(bool(r.get("none_of_my_tasks", False))).lower() if "top" in r else "",
                "error": r.get("error", ""),
            }
        )
    return rows


def write_csv(path: str | Path, results: list[dict[str, Any]]) -> None:
    """The results as CSV (UTF-8), written atomically: a crash leaves the old file or none."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(csv_rows(results))
    atomic_write_bytes(Path(path).expanduser(), buf.getvalue().encode("utf-8"))
