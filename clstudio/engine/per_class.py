"""What lies under one accuracy number: the confusion matrix, per-class precision / recall / F1, and which
images changed their answer between two moments (the forgetting explorer). Plain functions over the
per-image predictions an evaluation stores (``evaluations.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def confusion(labels: Sequence[int], pred: Sequence[int], classes: int) -> list[list[int]]:
    """counts[true][predicted] over the images that could be read (pred −1 is left out)."""
    counts = [[0] * classes for _ in range(classes)]
    for y, p in zip(labels, pred, strict=True):
        if p >= 0:
            counts[y][p] += 1
    return counts


def per_class_scores(counts: Sequence[Sequence[int]], class_names: Sequence[str]) -> list[dict[str, Any]]:
    """Precision, recall and F1 of each class from a confusion matrix; None where a ratio has no images
    under it (a class never predicted has no precision), so a table never shows a 0 that was not measured."""
    out = []
    for c, name in enumerate(class_names):
        tp = counts[c][c]
        support = sum(counts[c])
        predicted = sum(row[c] for row in counts)
        precision = tp / predicted if predicted else None
        recall = tp / support if support else None
        f1 = (
            2 * precision * recall / (precision + recall)
            if precision is not None and recall is not None and precision + recall > 0
            else (0.0 if precision is not None and recall is not None else None)
        )
        out.append({"class": name, "precision": precision, "recall": recall, "f1": f1, "support": support})
    return out


def cell_images(labels: Sequence[int], pred: Sequence[int], true_class: int, predicted: int) -> list[int]:
    """Positions (in the task's evaluation list) of the images of one confusion cell."""
    return [i for i, (y, p) in enumerate(zip(labels, pred, strict=True)) if y == true_class and p == predicted]


def flips(labels: Sequence[int], before: Sequence[int], after: Sequence[int]) -> tuple[list[int], list[int]]:
    """(right → wrong, wrong → right): positions of the images whose answer went from correct to wrong, and
    back, between two evaluations of the same task. Images unreadable at either moment are not counted."""
    lost, gained = [], []
    for i, (y, b, a) in enumerate(zip(labels, before, after, strict=True)):
        if a < 0 or b < 0:
            continue
        if b == y and a != y:
            lost.append(i)
        elif b != y and a == y:
            gained.append(i)
    return lost, gained
