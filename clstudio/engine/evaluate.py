"""Accuracy of a strategy's model on a task's images: Task-IL (argmax inside the task's classes) for every
strategy, Class-IL (argmax over every class seen) for one-head strategies, and the softmax that classify
shows. The rows of the accuracy matrix R come from here; the formulas over R are in ``metrics.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from clstudio.engine.data.dataset import DecodeCache, ImageListDataset, Preprocessing, image_loader
from clstudio.engine.device import autocast
from clstudio.engine.distributed import Collective
from clstudio.engine.routing import TaskRouter
from clstudio.engine.strategies.base import Strategy


@dataclass(frozen=True)
class EvalSet:
    """One task's evaluation images: its test split, or its validation split where it has no test."""

    task_id: str
    root: str
    items: Sequence[tuple[str, int]]


@dataclass(frozen=True)
class TaskPredictions:
    """How the model answered one task's evaluation images at one moment: per image, in the order of the
    task's evaluation list, the predicted class (−1: the file could not be read), its probability and the
    true class's probability. ``probs_sha256`` digests every readable image's float32 probabilities, in
    order: the zero-forgetting proof compares it (engine/proof.py)."""

    labels: tuple[int, ...]
    pred: tuple[int, ...]
    p_pred: tuple[float, ...]
    p_true: tuple[float, ...]
    probs_sha256: str

    @classmethod
    def from_probs(
        cls, items: Sequence[tuple[str, int]], positions: torch.Tensor, probs: torch.Tensor
    ) -> TaskPredictions:
        labels = torch.tensor([y for _, y in items], dtype=torch.long)
        pred = torch.full((len(items),), -1, dtype=torch.long)
        p_pred = torch.zeros(len(items))
        p_true = torch.zeros(len(items))
        if len(positions):
            probs = probs.float()
            top_p, top = probs.max(dim=1)
            pred[positions], p_pred[positions] = top, top_p
            p_true[positions] = probs.gather(1, labels[positions].unsqueeze(1)).squeeze(1)
        digest = hashlib.sha256(probs.float().contiguous().numpy().tobytes()).hexdigest()
        return cls(tuple(labels.tolist()), tuple(pred.tolist()), tuple(p_pred.tolist()), tuple(p_true.tolist()), digest)

    @property
    def readable(self) -> int:
        return sum(1 for p in self.pred if p >= 0)

    @property
    def accuracy(self) -> float:
        """Top-1 accuracy over the images that could be read (what R holds)."""
        right = sum(1 for p, y in zip(self.pred, self.labels, strict=True) if p == y)
        return right / max(self.readable, 1)


class Evaluator:
    def __init__(
        self,
        strategy: Strategy,
        prep: Preprocessing,
        cache: DecodeCache | None = None,
        check: Callable[[], object] | None = None,
        allow_fp16: bool = True,
    ) -> None:
        self.strategy = strategy
        self.prep = prep
        self.cache = cache
        self.check = check  # cancel / pause, once per batch
        self.allow_fp16 = allow_fp16
        self.device = strategy.device

    def loader(self, root: str, items: Sequence[tuple[str, int]]) -> DataLoader:
        cfg = self.strategy.config
        ds = ImageListDataset(root, list(items), self.prep.image_size, "none", self.cache)
        return image_loader(ds, cfg.eval_batch_size, False, cfg.num_workers, self.device.type == "cuda")

    @torch.no_grad()
    def predict(self, images_uint8: torch.Tensor) -> torch.Tensor:
        """Softmax probabilities of the active task for a uint8 batch [N,3,S,S]."""
        self.strategy.eval()
        x = self.prep.normalise(images_uint8.to(self.device))
        with autocast(self.device, self.allow_fp16):
            logits = self.strategy.forward(x)
        return logits.float().softmax(dim=1).cpu()

    @torch.no_grad()
    def accuracy_and_loss(self, loader: DataLoader, label_offset: int = 0) -> tuple[float, float]:
        """Top-1 accuracy and mean cross-entropy of the strategy's current output on a loader. The loader's
        labels are the task's own (0..C-1); ``label_offset`` shifts them to where the output puts that task's
        classes (a one-head strategy evaluated over every class)."""
        correct, loss_sum, total = self.sums(loader, label_offset)
        return (correct / total, loss_sum / total) if total else (0.0, float("inf"))

    @torch.no_grad()
    def sums(
        self, loader: DataLoader, label_offset: int = 0, right: list[torch.Tensor] | None = None
    ) -> tuple[int, float, int]:
        """(correct, summed cross-entropy, images) of ``accuracy_and_loss``: what ranks add up. ``right``
        collects, batch by batch, which images were answered correctly."""
        self.strategy.eval()
        correct = total = 0
        loss_sum = 0.0
        for xb, yb, _ in loader:
            if self.check is not None:
                self.check()
            if len(yb) == 0:
                continue
            x = self.prep.normalise(xb.to(self.device, non_blocking=True))
            with autocast(self.device, self.allow_fp16):
                logits = self.strategy.forward(x).float().cpu()
            yb = yb + label_offset
            hits = logits.argmax(dim=1) == yb
            if right is not None:
                right.append(hits)
            correct += int(hits.sum())
            loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
            total += len(yb)
        return correct, loss_sum, total

    def accuracy_across_ranks(self, loader: DataLoader, dist: Collective) -> tuple[float, float]:
        """``accuracy_and_loss`` of the images of every rank's ``loader`` together (each holds its shard)."""
        return self.answers_across_ranks(loader, dist)[:2]

    def answers_across_ranks(self, loader: DataLoader, dist: Collective) -> tuple[float, float, torch.Tensor]:
        """``accuracy_across_ranks`` and, per image (in the items' order), whether it was answered right."""
        right: list[torch.Tensor] = []
        correct, loss_sum, total = dist.sum_counts(self.sums(loader, right=right))
        mine = torch.cat(right) if right else torch.zeros(0, dtype=torch.bool)
        hits = dist.gather_in_order(mine.to(torch.uint8)).bool()  # uint8 over the wire: every backend has it
        return ((correct / total, loss_sum / total) if total else (0.0, float("inf"))) + (hits,)

    @torch.no_grad()
    def predictions(self, task: EvalSet) -> TaskPredictions:
        """The active model's answer for each of a task's evaluation images (Task-IL: within its classes)."""
        self.strategy.activate_task(task.task_id)
        positions, probs = [], []
        for xb, pos, _ in self._by_position(task):
            positions.append(pos)
            probs.append(self.predict(xb))
        return TaskPredictions.from_probs(task.items, *_joined(positions, probs, self._classes(task)))

    def _by_position(self, task: EvalSet) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        """Batches of a task's evaluation images labelled by their position in its list (unreadable ones left
        out), so every answer can be stored against the file it came from."""
        for xb, pos, failed in self.loader(task.root, [(path, i) for i, (path, _) in enumerate(task.items)]):
            if self.check is not None:
                self.check()
            if len(pos):
                yield xb, pos, failed

    def _classes(self, task: EvalSet) -> int:
        return self.strategy.task_classes.get(task.task_id, 0) or max((y for _, y in task.items), default=0) + 1

    def class_il(self, task: EvalSet) -> float:
        """Accuracy over every class seen so far; only for strategies with one growing head."""
        lo, _ = self.strategy.class_range(task.task_id)
        self.strategy.show_all_classes()
        return self.accuracy_and_loss(self.loader(task.root, task.items), label_offset=lo)[0]

    def rows(self, tasks: Sequence[EvalSet]) -> tuple[dict[str, TaskPredictions], dict[str, float] | None]:
        """Each task's predictions, whose accuracy is its Task-IL entry of R (and Class-IL accuracy, for
        one-head strategies), by task id."""
        preds = {t.task_id: self.predictions(t) for t in tasks}
        if not self.strategy.class_incremental:
            return preds, None
        return preds, {t.task_id: self.class_il(t) for t in tasks}

    # --- the task router -----------------------------------------------------------------------------
    @torch.no_grad()
    def anchor_features(self, images_uint8: torch.Tensor) -> torch.Tensor:
        """The anchor's pooled features of a uint8 batch (what the router reads), float32 on the CPU."""
        x = self.prep.normalise(images_uint8.to(self.device))
        with self.strategy.at_anchor(), autocast(self.device, self.allow_fp16):
            return self.strategy.features(x).float().cpu()

    @property
    def anchor_is_task_features(self) -> bool:
        """Whether the anchor's features are every task's own (no per-task tensors in the network: the linear
        probe), so a task's answer needs only its head on them, not a second forward."""
        return not self.strategy.task_feature_names()

    @torch.no_grad()
    def predict_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """Softmax of the active task's head on features already computed (see ``anchor_is_task_features``)."""
        head = self.strategy.head
        assert head is not None, "no active task"
        return head(features.to(self.device, head.weight.dtype)).float().softmax(dim=1).cpu()

    def features_of(self, root: str, items: Sequence[tuple[str, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """(anchor features [N, D] float64, labels [N]) of a list of images; unreadable ones are left out."""
        feats, labels = [], []
        for xb, yb, _ in self.loader(root, items):
            if self.check is not None:
                self.check()
            if len(yb):
                feats.append(self.anchor_features(xb).double())
                labels.append(yb)
        if not feats:
            return torch.zeros(0, self.strategy.backbone.feature_dim, dtype=torch.float64), torch.zeros(
                0, dtype=torch.long
            )
        return torch.cat(feats), torch.cat(labels)

    @torch.no_grad()
    def routed_rows(
        self,
        tasks: Sequence[EvalSet],
        router: TaskRouter,
        anchor_cache: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> tuple[dict[str, TaskPredictions], dict[str, float], dict[str, float]]:
        """By task id: the predictions with the task given (their accuracy is Task-IL), routing accuracy (the
        router sends the image to its own task) and routed Class-IL accuracy (routed there and right).

        The anchor never changes, so its features of a task's images are computed once and kept in
        ``anchor_cache`` (by task id: features and the positions of the images they came from) for the
        evaluations after later tasks; where a task has no tensors of its own in the network (the linear
        probe), those features are its features too, and its head is all that runs."""
        preds, routing, routed = {}, {}, {}
        cache = anchor_cache if anchor_cache is not None else {}
        for t in tasks:
            self.strategy.activate_task(t.task_id)
            feats, positions, probs = self._anchor_and_probs(t, cache)
            preds[t.task_id] = p = TaskPredictions.from_probs(t.items, positions, probs)
            goes_home = router.task_distances(feats).argmin(dim=1) == router.task_ids.index(t.task_id)
            correct = torch.tensor([p.pred[i] == p.labels[i] for i in positions.tolist()], dtype=torch.bool)
            n = max(len(correct), 1)
            routing[t.task_id] = int(goes_home.sum()) / n
            routed[t.task_id] = int((goes_home & correct).sum()) / n
        return preds, routing, routed

    def _anchor_and_probs(
        self, t: EvalSet, cache: dict[str, tuple[torch.Tensor, torch.Tensor]]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(anchor features [N, D], positions [N], the active task's probabilities [N, C]) over a task's
        readable images. With the features the task's own, the head runs once on all of them, fresh or
        cached, so the answer is bit-for-bit the same after every later task."""
        own_features = self.anchor_is_task_features
        if t.task_id not in cache:
            feats, positions, probs = [], [], []
            for xb, pos, _ in self._by_position(t):
                feats.append(self.anchor_features(xb))
                positions.append(pos)
                if not own_features:
                    probs.append(self.predict(xb))
            pos_all, feat_all = _joined(positions, feats, self.strategy.backbone.feature_dim)
            cache[t.task_id] = (feat_all, pos_all)
            if not own_features:
                return feat_all, pos_all, _joined(positions, probs, self._classes(t))[1]
        feat_all, pos_all = cache[t.task_id]
        if own_features:
            return feat_all, pos_all, self.predict_from_features(feat_all)
        positions, probs = [], []
        for xb, pos, _ in self._by_position(t):
            positions.append(pos)
            probs.append(self.predict(xb))
        return feat_all, pos_all, _joined(positions, probs, self._classes(t))[1]


def _joined(positions: list[torch.Tensor], rows: list[torch.Tensor], width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenated positions and rows of per-batch results; empty tensors when no image could be read."""
    if not rows:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, width)
    return torch.cat(positions), torch.cat(rows)
