"""Writes a labelled image set as CL Studio task folders, in the layout a user would drop in:
    <prefix>-<class>-<class>.../{train,val,test}/<class>/<id>.png   and a `.complete` marker last,
so a folder cut short by an interrupted run is written again, and a complete one is reused."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

# For one class: its images by split, each as (file stem, 8-bit grey image).
SplitImages = dict[str, Iterable[tuple[int, np.ndarray]]]


def write_task_folders(
    out: Path,
    prefix: str,
    classes: Sequence[str],
    classes_per_task: int,
    images_of: Callable[[int], SplitImages],
) -> list[Path]:
    """One folder per run of ``classes_per_task`` classes; ``images_of(c)`` is asked only for classes written."""
    folders = []
    for t in range(len(classes) // classes_per_task):
        labels = range(t * classes_per_task, (t + 1) * classes_per_task)
        folder = out / f"{prefix}-{'-'.join(classes[c] for c in labels)}"
        folders.append(folder)
        if (folder / ".complete").exists():
            continue
        for c in labels:
            for split, images in images_of(c).items():
                d = folder / split / classes[c]
                d.mkdir(parents=True, exist_ok=True)
                for stem, img in images:
                    Image.fromarray(img, "L").save(d / f"{stem}.png")
        (folder / ".complete").write_text("ok")
    return folders
