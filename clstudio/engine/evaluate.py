"""Accuracy of a strategy's model on a task's images: Task-IL (argmax inside the task's classes) for every
strategy, Class-IL (argmax over every class seen) for one-head strategies, and the softmax that classify
shows. The rows of the accuracy matrix R come from here; the formulas over R are in ``metrics.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    def sums(self, loader: DataLoader, label_offset: int = 0) -> tuple[int, float, int]:
        """(correct, summed cross-entropy, images) of ``accuracy_and_loss``: what ranks add up."""
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
            correct += int((logits.argmax(dim=1) == yb).sum())
            loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
            total += len(yb)
        return correct, loss_sum, total

    def accuracy_across_ranks(self, loader: DataLoader, dist: Collective) -> tuple[float, float]:
        """``accuracy_and_loss`` of the images of every rank's ``loader`` together (each holds its shard)."""
        correct, loss_sum, total = dist.sum_counts(self.sums(loader))
        return (correct / total, loss_sum / total) if total else (0.0, float("inf"))

    def task_il(self, task: EvalSet) -> float:
        self.strategy.activate_task(task.task_id)
        return self.accuracy_and_loss(self.loader(task.root, task.items))[0]

    def class_il(self, task: EvalSet) -> float:
        """Accuracy over every class seen so far; only for strategies with one growing head."""
        lo, _ = self.strategy.class_range(task.task_id)
        self.strategy.show_all_classes()
        return self.accuracy_and_loss(self.loader(task.root, task.items), label_offset=lo)[0]

    def rows(self, tasks: Sequence[EvalSet]) -> tuple[dict[str, float], dict[str, float] | None]:
        """Task-IL accuracy of each task (and Class-IL, for one-head strategies), by task id."""
        row = {t.task_id: self.task_il(t) for t in tasks}
        if not self.strategy.class_incremental:
            return row, None
        return row, {t.task_id: self.class_il(t) for t in tasks}

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
    ) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
        """By task id: Task-IL accuracy (the task given), routing accuracy (the router sends the image to its
        own task) and routed Class-IL accuracy (routed there and classified right).

        The anchor never changes, so its features of a task's images are computed once and kept in
        ``anchor_cache`` (by task id) for the evaluations after later tasks; where a task has no tensors of
        its own in the network (the linear probe), those features are its features too, and its head is all
        that runs."""
        task_il, routing, routed = {}, {}, {}
        own_features = self.anchor_is_task_features
        cache = anchor_cache if anchor_cache is not None else {}
        for t in tasks:
            self.strategy.activate_task(t.task_id)
            feats, correct = self._anchor_and_correct(t, cache, own_features)
            goes_home = router.task_distances(feats).argmin(dim=1) == router.task_ids.index(t.task_id)
            n = max(len(correct), 1)
            task_il[t.task_id] = int(correct.sum()) / n
            routing[t.task_id] = int(goes_home.sum()) / n
            routed[t.task_id] = int((goes_home & correct).sum()) / n
        return task_il, routing, routed

    def _anchor_and_correct(
        self, t: EvalSet, cache: dict[str, tuple[torch.Tensor, torch.Tensor]], own_features: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(anchor features [N, D], whether the active task's prediction is right [N]) over a task's images."""
        if t.task_id in cache and own_features:
            cached, labels = cache[t.task_id]
            return cached, self.predict_from_features(cached).argmax(dim=1) == labels
        feats_out, labels_out, correct = [], [], []
        for xb, yb, _ in self.loader(t.root, t.items):
            if self.check is not None:
                self.check()
            if len(yb) == 0:
                continue
            batch: torch.Tensor | None = None
            if t.task_id not in cache:
                batch = self.anchor_features(xb)
                feats_out.append(batch)
                labels_out.append(yb)
            probs = self.predict_from_features(batch) if own_features and batch is not None else self.predict(xb)
            correct.append(probs.argmax(dim=1) == yb)
        if t.task_id not in cache:
            empty = torch.zeros(0, self.strategy.backbone.feature_dim)
            cache[t.task_id] = (
                torch.cat(feats_out) if feats_out else empty,
                torch.cat(labels_out) if labels_out else torch.zeros(0, dtype=torch.long),
            )
        return cache[t.task_id][0], torch.cat(correct) if correct else torch.zeros(0, dtype=torch.bool)
