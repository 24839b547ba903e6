"""Fashion-MNIST (Debian's dataset-fashion-mnist) written out as CL Studio task folders.

Each task is a folder in the layout a user would drop in, with an explicit split:
    task/train/<class>/*.png   N images per class from the official training set
    task/val/<class>/*.png     held-out training images, for best-epoch selection
    task/test/<class>/*.png    images from the official test set: what R reports
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from task_folders import SplitImages, write_task_folders

ROOT = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot")


def idx(path: Path) -> np.ndarray:
    data = (gzip.open if str(path).endswith(".gz") else open)(path, "rb").read()
    nd = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * nd).reshape(dims)


def load(split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    if not (ROOT / f"{prefix}-images-idx3-ubyte.gz").exists():
        raise SystemExit(f"Fashion-MNIST not found under {ROOT}: apt-get install dataset-fashion-mnist")
    return idx(ROOT / f"{prefix}-images-idx3-ubyte.gz"), idx(ROOT / f"{prefix}-labels-idx1-ubyte.gz")


def write_tasks(
    out: Path,
    per_class: int,
    val_per_class: int,
    test_per_class: int,
    pad_to: int = 0,
    classes_per_task: int = 2,
    seed: int = 0,
) -> list[Path]:
    """Write 10 // classes_per_task task folders; returns their paths (reuses a folder already written)."""
    rng = np.random.default_rng(seed)
    xtr, ytr = load("train")
    xte, yte = load("test")

    def padded(img: np.ndarray) -> np.ndarray:
        if not pad_to:
            return img
        p = (pad_to - img.shape[0]) // 2
        return np.pad(img, ((p, pad_to - img.shape[0] - p),) * 2)

    def images_of(c: int) -> SplitImages:
        pool = rng.permutation(np.flatnonzero(ytr == c))
        tests = rng.permutation(np.flatnonzero(yte == c))[:test_per_class]
        return {
            "train": [(i, padded(xtr[i])) for i in pool[:per_class]],
            "val": [(i, padded(xtr[i])) for i in pool[per_class : per_class + val_per_class]],
            "test": [(i, padded(xte[i])) for i in tests],
        }

    return write_task_folders(out, "fmnist", CLASSES, classes_per_task, images_of)
