"""The linear probe as it should be fit: features of the frozen backbone computed once per image, then a
multinomial logistic regression fit to convergence by L-BFGS, its L2 strength chosen on the validation
images (Kornblith et al. 2019, "Do Better ImageNet Models Transfer Better?"). Seconds where epochs of
backbone passes took minutes, and a stronger baseline: Adam for a few epochs leaves the head under-fit.

The loop sees one "epoch": its batches are the feature passes over the train and val images (no
augmentation: a fixed feature map needs none), and its end is the fit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from clstudio.engine.data.dataset import DecodeCache, ImageListDataset, Preprocessing, image_loader
from clstudio.engine.device import autocast
from clstudio.engine.strategies.base import Strategy, TensorDict
from clstudio.engine.training.loop import EpochOutcome, FitResult, TaskData, TrainingMethod

# L2 strengths tried (on the mean cross-entropy, features standardised): from almost none to strong.
L2_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
LBFGS_ITERATIONS = 500  # full-batch steps; a few hundred images converge in far fewer


def fit_logistic_regression(
    x: torch.Tensor,
    y: torch.Tensor,
    classes: int,
    l2: float,
    start: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(W [C, D], b [C], final training cross-entropy) minimising mean CE + l2·‖W‖², by L-BFGS; ``start``:
    (W, b) to begin from (a neighbouring L2's solution) instead of zeros."""
    w0, b0 = start if start is not None else (x.new_zeros(classes, x.shape[1]), x.new_zeros(classes))
    w = w0.clone().requires_grad_(True)
    b = b0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS(
        [w, b], lr=1.0, max_iter=LBFGS_ITERATIONS, tolerance_grad=1e-7, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x @ w.T + b, y) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        ce = float(F.cross_entropy(x @ w.T + b, y))
    return w.detach(), b.detach(), ce


def fit_head(
    head: torch.nn.Linear,
    xs: torch.Tensor,
    ys: torch.Tensor,
    xv: torch.Tensor,
    yv: torch.Tensor,
    classes: int,
    check: Callable[[], object] | None = None,
    select: str = "accuracy",
) -> tuple[float, float, float]:
    """Fit ``head`` on features (train ``xs, ys``) for every L2 strength in L2_GRID and keep the best on
    validation (``xv, yv``); returns (val accuracy, L2, train cross-entropy).

    ``select='accuracy'``: the highest val accuracy, ties to the lower val loss (a probe that is the model).
    ``select='loss'``: the lowest val cross-entropy, i.e. the best-calibrated head (a start for CLR: a head
    that fits a small training set perfectly and confidently leaves the adapters almost no gradient)."""
    # Standardise for a well-conditioned fit; the scale folds back into the head below.
    mean, std = xs.mean(0), xs.std(0, unbiased=False).clamp(min=1e-6)
    zs, zv = (xs - mean) / std, (xv - mean) / std
    # Fewer images than features (30 per class × 10 classes against Lite0's 1280): the L2-penalised optimum
    # lies in the span of the training features (a component of W outside it changes no logit and only adds
    # to ‖W‖²), so the fit runs exactly in that span's coordinates: n instead of D columns.
    basis = _row_space(zs) if zs.shape[0] < zs.shape[1] else None
    fs, fv = (zs @ basis, zv @ basis) if basis is not None else (zs, zv)
    best: tuple[tuple[float, float, float], torch.Tensor, torch.Tensor, float] | None = None
    previous: tuple[torch.Tensor, torch.Tensor] | None = None
    for l2 in sorted(L2_GRID, reverse=True):  # strong to weak: each fit starts from the last one's optimum
        if check is not None:
            check()
        w, b, ce = fit_logistic_regression(fs, ys, classes, l2, previous)
        previous = (w, b)
        if basis is not None:
            w = w @ basis.T
        logits = zv @ w.T + b
        acc = float((logits.argmax(1) == yv).double().mean()) if len(yv) else 0.0
        loss = float(F.cross_entropy(logits, yv)) if len(yv) else ce
        # Higher val accuracy wins (or lower val loss); ties go to the other, then to the stronger L2.
        key = (acc, -loss, l2) if select == "accuracy" else (-loss, acc, l2)
        if best is None or key > best[0]:
            best = (key, w, b, ce)
    assert best is not None
    (*_, l2), w, b, ce = best
    zw = zv @ w.T + b
    acc = float((zw.argmax(1) == yv).double().mean()) if len(yv) else 0.0
    with torch.no_grad():
        head.weight.copy_((w / std).to(head.weight))
        head.bias.copy_((b - (w / std) @ mean).to(head.bias))
    return acc, l2, ce


def _row_space(x: torch.Tensor) -> torch.Tensor:
    """An orthonormal basis [D, r] of the span of the rows of ``x`` (r = its numerical rank)."""
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    rank = int((s > s[0] * max(x.shape) * torch.finfo(x.dtype).eps).sum()) if len(s) else 0
    return vh[: max(rank, 1)].T.contiguous()


@torch.no_grad()
def batch_features(strategy: Strategy, prep: Preprocessing, images_uint8: torch.Tensor) -> torch.Tensor:
    """The backbone's features of one uint8 batch, on the CPU in float32 (the strategy in eval mode)."""
    x = prep.normalise(images_uint8.to(strategy.device, non_blocking=True))
    with autocast(strategy.device):
        return strategy.features(x).float().cpu()


def stack_features(
    strategy: Strategy, feats: list[torch.Tensor], labels: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batches of features and labels as one float64 matrix (the fit's precision) and one label vector."""
    if not feats:
        return torch.zeros(0, strategy.backbone.feature_dim, dtype=torch.float64), torch.zeros(0, dtype=torch.long)
    return torch.cat(feats).double(), torch.cat(labels)


def frozen_features(
    strategy: Strategy, prep: Preprocessing, loader: DataLoader
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(features [N, D] float64, labels [N], images that failed to decode) of a loader's images, eval mode."""
    strategy.eval()
    feats, labels, failed = [], [], 0
    for xb, yb, bad in loader:
        failed += bad
        if len(yb):
            feats.append(batch_features(strategy, prep, xb))
            labels.append(yb)
    return (*stack_features(strategy, feats, labels), failed)


class FrozenFeatureProbe(TrainingMethod):
    epochs = 1

    def __init__(self, strategy: Strategy, prep: Preprocessing, cache: DecodeCache) -> None:
        super().__init__(strategy, prep, cache)
        self._batch_size = 0

    def begin(self, task_id: str, data: TaskData, seed: int) -> None:
        self.task_id, self.data = task_id, data
        self._batch_size = 0
        torch.manual_seed(seed)
        self.strategy.begin_task(task_id, data.num_classes)
        self.val_acc, self.l2, self.train_loss, self.skipped = 0.0, 0.0, float("nan"), 0
        self._make_loaders()

    def _make_loaders(self) -> None:
        cfg = self.strategy.config
        cuda = self.device.type == "cuda"
        self.loaders: dict[str, DataLoader] = {}
        self.batch_counts: dict[str, int] = {}
        for split, items in (("train", self.data.train), ("val", self.data.val)):
            # Distributed: each rank passes over its share; every rank runs as many steps as the largest share.
            share = -(-len(items) // self.dist.world_size)
            self.batch_counts[split] = -(-share // self.batch_size())
            ds = ImageListDataset(
                self.data.root, list(self.dist.shard(items)), self.prep.image_size, "none", self.cache
            )
            if cfg.num_workers == 0:
                ds.on_item = self.check  # a cancel or pause lands within one image, even on a slow disk
            self.loaders[split] = image_loader(ds, self.batch_size(), False, cfg.num_workers, cuda)
        self.features: dict[str, list[torch.Tensor]] = {"train": [], "val": []}
        self.labels: dict[str, list[torch.Tensor]] = {"train": [], "val": []}

    def steps_per_epoch(self) -> int:
        return sum(self.batch_counts.values())

    def batch_size(self) -> int:
        return self._batch_size or self.strategy.config.eval_batch_size

    def set_batch_size(self, size: int) -> None:
        self._batch_size = size
        self._make_loaders()  # the feature pass starts over

    def start_epoch(self, epoch: int) -> None:
        self.strategy.eval()
        self.skipped = 0

    def batches(self, epoch: int) -> Iterator[tuple[str, Any]]:
        for split, loader in self.loaders.items():
            done = 0
            for batch in loader:
                done += 1
                yield split, batch
            for _ in range(self.batch_counts[split] - done):  # a smaller share: wait for the others' steps
                yield split, None

    def step(self, batch: Any) -> tuple[float, int] | None:
        split, loaded = batch
        if loaded is None:
            return None
        xb, yb, failed = loaded
        self.skipped += failed
        if len(yb) == 0:
            return None
        self.features[split].append(batch_features(self.strategy, self.prep, xb))
        self.labels[split].append(yb)
        return math.nan, len(yb)  # a feature pass has no loss; the fit's comes with the epoch's end

    def end_epoch(self, epoch: int) -> EpochOutcome:
        head = self.strategy.head
        assert head is not None
        d = self.dist
        xs, ys = stack_features(self.strategy, self.features["train"], self.labels["train"])
        xv, yv = stack_features(self.strategy, self.features["val"], self.labels["val"])
        xs, ys, xv, yv = (d.gather_in_order(t) for t in (xs, ys, xv, yv))
        fit = fit_head(head, xs, ys, xv, yv, self.data.num_classes, self.check)
        d.broadcast_([head.weight.data, head.bias.data])  # the same head everywhere, made certain
        self.val_acc, self.l2, self.train_loss = d.broadcast_object(fit)
        return EpochOutcome(self.val_acc, self.val_acc, 1, 0.0, self.skipped, train_loss=self.train_loss)

    def finished(self, epoch: int) -> bool:
        return True

    def finish(self, last_epoch: int, seconds: float) -> FitResult:
        self.features = {"train": [], "val": []}  # free the features
        self.strategy.end_task(self.task_id)
        return FitResult(self.val_acc, 1, last_epoch, seconds, self.skipped, {"probe_l2": self.l2})

    def state(self) -> tuple[TensorDict, dict[str, Any]]:
        meta = {"val_acc": self.val_acc, "l2": self.l2, "train_loss": self.train_loss, "skipped": self.skipped}
        return self.strategy.snapshot(), meta

    def load_state(self, tensors: TensorDict, meta: dict[str, Any]) -> None:
        self.strategy.restore(tensors)
        self.val_acc, self.l2 = float(meta["val_acc"]), float(meta["l2"])
        self.train_loss, self.skipped = float(meta["train_loss"]), int(meta["skipped"])
