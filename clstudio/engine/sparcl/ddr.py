"""DDR, dynamic data removal (sparcl.md §4): count forgetting events of every current-task sample and,
at a few stages early in the task, permanently drop the samples forgotten least, up to a ratio ρ.

Prediction = argmax over all logits (Class-IL). Score = correct→incorrect transitions since the last reset;
a sample never predicted correctly in the window gets the maximum score (it is hard, so it is kept).

At few epochs the paper's statistics cannot rank: with the app's 10 epochs the stages are one epoch apart,
each sample is seen once per window, and a forgetting event needs two presentations, so every score is 0 or
"never learned" and the removal would be a random draw of the correct samples. Two changes keep the
paper's intent (drop what the network already finds easy) at any epoch count:
- the window is kept open across stages (no reset) whenever a stage period holds fewer than two epochs;
- samples with the same score are ranked by how often they were misclassified, then by their mean loss in
  the window (low first), and only exact ties at random. With the paper's 50 epochs the windows and the
  primary score are the paper's; the finer order only replaces its random tie-break.
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
        self.misses = np.zeros(self.n, dtype=np.int64)  # presentations predicted wrong
        self.seen = np.zeros(self.n, dtype=np.int64)
        self.loss_sum = np.zeros(self.n, dtype=np.float64)

    def record(self, indices: np.ndarray, correct: np.ndarray, loss: np.ndarray | None = None) -> None:
        """One presentation of ``indices``: whether each was predicted right, and its cross-entropy."""
        correct = correct.astype(np.int8)
        self.events[indices] += (self.last[indices] == 1) & (correct == 0)
        self.learned[indices] |= correct == 1
        self.last[indices] = correct
        self.misses[indices] += correct == 0
        self.seen[indices] += 1
        if loss is not None:
            self.loss_sum[indices] += loss

    def scores(self) -> np.ndarray:
        return np.where(self.learned, self.events, self.never)

    def mean_loss(self) -> np.ndarray:
        return self.loss_sum / np.maximum(self.seen, 1)


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
        # Fewer than two epochs between stages: no forgetting event could happen inside one window.
        self.keep_window = max(1, round(every * epochs)) < 2
        self.per_stage = int(ratio * n / len(self.stages)) if self.stages else 0
        self.kept = np.arange(n)
        self.removed: list[np.ndarray] = []
        self.rng = np.random.default_rng(seed)

    def maybe_remove(self, epoch: int, stats: ForgettingStats) -> np.ndarray:
        """At a stage epoch, drop the ``per_stage`` lowest-scoring kept samples; returns what was removed."""
        if epoch not in self.stages or self.per_stage == 0:
            return np.empty(0, dtype=np.int64)
        stats.last_scores = stats.scores()
        kept = self.kept
        # Easiest first: fewest forgetting events, then fewest misses, then lowest mean loss; exact ties
        # break at random, not by index, so no class is favoured.
        order = np.lexsort(
            (self.rng.random(len(kept)), stats.mean_loss()[kept], stats.misses[kept], stats.last_scores[kept])
        )
        k = min(self.per_stage, max(0, len(kept) - 1))
        gone = np.sort(kept[order[:k]])
        self.kept = np.setdiff1d(kept, gone)
        self.removed.append(gone)
        if not self.keep_window:
            stats.reset()
        return gone
