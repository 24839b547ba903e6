"""The handwritten digits that ship with scikit-learn (1,797 scans of 8×8 px, about 180 per class; UCI's
"Optical Recognition of Handwritten Digits") written out as CL Studio task folders, in the same layout as
`fashion_mnist.py`. A second real dataset that installs by name, far from ImageNet's photos: the case where
a frozen backbone's features fit worst and reprogramming them should pay most.

There is no official test split: each seed shuffles each class once and cuts it into train, val and test,
so the three never share an image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from task_folders import SplitImages, write_task_folders

CLASSES = tuple(str(d) for d in range(10))


def load() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SystemExit("the digits come with scikit-learn: pip install -e '.[bench]'") from None
    digits = load_digits()
    # 0..16 ink levels, as scanned; stretched to 0..255 grey so a PNG viewer shows them as a person would.
    images = np.clip(np.rint(digits.images * (255 / 16)), 0, 255).astype(np.uint8)
    return images, digits.target.astype(np.int64)


def write_tasks(
    out: Path,
    per_class: int,
    val_per_class: int,
    test_per_class: int,
    classes_per_task: int = 2,
    seed: int = 0,
) -> list[Path]:
    """Write 10 // classes_per_task task folders; returns their paths (reuses a folder already written)."""
    rng = np.random.default_rng(seed)
    images, labels = load()

    def images_of(c: int) -> SplitImages:
        pool = rng.permutation(np.flatnonzero(labels == c))
        need = per_class + val_per_class + test_per_class
        if need > len(pool):
            raise SystemExit(f"digit {c} has {len(pool)} images; {need} were asked for")
        parts = np.split(pool[:need], [per_class, per_class + val_per_class])
        splits = zip(("train", "val", "test"), parts, strict=True)
        return {split: [(i, images[i]) for i in ids] for split, ids in splits}

    return write_task_folders(out, "digits", CLASSES, classes_per_task, images_of)
