"""DDR, dynamic data removal (sparcl.md §4): count forgetting events of every current-task sample and,
at a few stages early in the task, permanently drop the samples forgotten least, up to a ratio ρ.

Prediction = argmax over all logits (Class-IL). Score = correct→incorrect transitions since the last reset;
a sample never predicted correctly in the window gets the maximum score (it is hard, so it is kept).
"""

from __future__ import annotations

import numpy as np


class ForgettingStats:
    def __init__(self, n: int, never_learned_score: int) -> None:
        self.n = n
        self.never = never_learned_score
        self.last_scores = np.zeros(n, dtype=np.int64)  # the scores the last removal ranked by
        self.reset()

    def reset(self) -> None:
        self.last = np.full(self.n, -1, dtype=np.int8)  # -1: not presented since the reset
        self.learned = np.zeros(self.n, dtype=bool)
        self.events = np.zeros(self.n, dtype=np.int64)

    def record(self, indices: np.ndarray, correct: np.ndarray) -> None:
        correct = correct.astype(np.int8)
        self.events[indices] += (self.last[indices] == 1) & (correct == 0)
        self.learned[indices] |= correct == 1
        self.last[indices] = correct

    def scores(self) -> np.ndarray:
        return np.where(self.learned, self.events, self.never)


def removal_stages(epochs: int, every: float, cutoff: float) -> list[int]:
    """Epochs e > 0 with e ≡ 0 (mod period) and e ≤ cutoff: {5, 10, 15, 20} for the paper's 50 epochs."""
    period = max(1, round(every * epochs))
    last = round(cutoff * epochs)
    return [e for e in range(period, epochs, period) if e <= last]


class DataRemoval:
    """Which current-task samples are still trained on, and the staged removal of the easy ones."""

    def __init__(self, n: int, epochs: int, ratio: float, every: float, cutoff: float, seed: int) -> None:
        self.n = n
        self.stages = removal_stages(epochs, every, cutoff)
        self.per_stage = int(ratio * n / len(self.stages)) if self.stages else 0
        self.kept = np.arange(n)
        self.removed: list[np.ndarray] = []
        self.rng = np.random.default_rng(seed)

    def maybe_remove(self, epoch: int, stats: ForgettingStats) -> np.ndarray:
        """At a stage epoch, drop the ``per_stage`` lowest-scoring kept samples; returns what was removed."""
        if epoch not in self.stages or self.per_stage == 0:
            return np.empty(0, dtype=np.int64)
        stats.last_scores = stats.scores()
        scores = stats.last_scores[self.kept]
        # Ties (mostly the many zero-count samples) break at random, not by index, so no class is favoured.
        order = np.lexsort((self.rng.random(len(self.kept)), scores))
        k = min(self.per_stage, max(0, len(self.kept) - 1))
        gone = np.sort(self.kept[order[:k]])
        self.kept = np.setdiff1d(self.kept, gone)
        self.removed.append(gone)
        stats.reset()
        return gone
