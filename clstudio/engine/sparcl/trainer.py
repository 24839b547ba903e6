"""The rehearsal training loop (ER, DER++, SparCL), sparcl.md §3-§7, one task at a time:

    at epoch e (before its first batch): TDM mask update if e is on the schedule, then a DDR stage
    each batch: masked-head CE on the stream batch (+ replay terms from the second task on), backward,
             weight mask and DGM mask on the gradients, SGD step, W ⊙= mask, reservoir insert, FLOPs count
    after the epoch: the last batch's (masked) gradient is kept for the next importance score

Cancel and pause are checked every batch and every image, as in the per-task trainer.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from clstudio.engine.data.dataset import ImageListDataset
from clstudio.engine.events import DataRemoved, EpochEnded, SparsityUpdated, StepProgress, TaskStarted, emit
from clstudio.engine.sparcl.ddr import DataRemoval, ForgettingStats
from clstudio.engine.sparcl.dgm import GradientMasks
from clstudio.engine.sparcl.flops import FlopsCounter, iteration_cost, layer_macs
from clstudio.engine.sparcl.masks import MaskSet, sparse_layers, tdm_schedule
from clstudio.engine.strategies.rehearsal import RehearsalStrategy
from clstudio.engine.train import FitResult, TaskData, Trainer


def task_number(task_id: str) -> int:
    return int(task_id.lstrip("t"))


def masked_head_ce(logits: torch.Tensor, y: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """Cross-entropy among the current task's classes only: other logits are −inf (sparcl.md §3.1)."""
    masked = torch.full_like(logits, float("-inf"))
    masked[:, lo:hi] = logits[:, lo:hi]
    return F.cross_entropy(masked, y)


@dataclass
class _TaskRun:
    """What one task's batches share."""

    task_id: str
    data: TaskData
    lo: int
    hi: int
    optimizer: torch.optim.Optimizer
    masks: MaskSet | None
    dgm: GradientMasks | None
    stats: ForgettingStats
    replay: bool
    last_indices: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    failed: int = 0  # images that failed to decode

    def grad_sparsity(self) -> dict[str, float]:
        return self.dgm.measured if self.dgm is not None else {}


class RehearsalTrainer(Trainer):
    strategy: RehearsalStrategy

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # task id → that task's data; the project provides it so buffer references can be decoded again.
        self.task_source: Callable[[str], TaskData] | None = None
        self._replay_sets: dict[str, ImageListDataset] = {}
        self._macs: dict[str, int] | None = None
        # Diagnostics: called with ("mask_update" | "ddr" | "step", facts) inside the loop; the invariant
        # tests watch the mechanisms through it. Runs in the training thread; None in the app.
        self.probe: Callable[[str, dict[str, Any]], None] | None = None

    def _autocast(self) -> contextlib.AbstractContextManager:
        # bf16 only: the plain SGD loop has no loss scaler, which fp16 would need.
        if self.device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # --- evaluation: Task-IL through the strategy's view, Class-IL over all logits ---------------------------
    def evaluate_task_class_il(self, task_id: str, root: str, items: list[tuple[str, int]]) -> float:
        lo, _ = self.strategy.class_range(task_id)
        self.strategy.view = None  # forward() now returns every class seen so far
        return self.accuracy(self.loader(root, items, train=False), task_id, label_offset=lo)

    # --- replay --------------------------------------------------------------------------------------------
    def _replay_set(self, tid: str, data: TaskData | None) -> ImageListDataset | None:
        if tid not in self._replay_sets:
            if data is None:
                if self.task_source is None:
                    return None
                data = self.task_source(tid)
            aug = self.strategy.config.augment  # buffer reads re-apply the training augmentation (§6)
            self._replay_sets[tid] = ImageListDataset(
                data.root, list(data.train), self.prep.image_size, aug, self.cache
            )
        return self._replay_sets[tid]

    def _buffer_batch(self, size: int, current: tuple[str, TaskData]) -> tuple[torch.Tensor, ...] | None:
        """(images, labels, logits, widths) for a uniform draw; samples whose file is gone are left out."""
        buf = self.strategy.buffer
        picks = buf.sample(size)
        xs, keep = [], []
        for j in picks.tolist():
            tid = f"t{int(buf.task[j])}"
            ds = self._replay_set(tid, current[1] if tid == current[0] else None)
            if ds is None:
                continue
            img, label = ds[int(buf.item[j])]
            if label >= 0:
                xs.append(img)
                keep.append(j)
        if not keep:
            return None
        k = torch.tensor(keep)
        x = self.prep.normalise(torch.stack(xs).to(self.device))
        return x, buf.label[k].to(self.device), buf.logits[k].to(self.device), buf.width[k].to(self.device)

    def _replay_loss(self, current: tuple[str, TaskData]) -> tuple[torch.Tensor, int]:
        """DER++: α·MSE(stored logits) + β·CE on two independent draws; ER: w·CE on one.
        Returns (loss, images forwarded)."""
        s, cfg = self.strategy, self.strategy.config
        loss, images = torch.zeros((), device=self.device), 0
        draws = ("mse", "ce") if cfg.replay == "derpp" else ("ce",)
        for kind in draws:
            batch = self._buffer_batch(cfg.batch_size, current)
            if batch is None:
                continue
            x, y, z, width = batch
            with self._autocast():
                out = s.full_logits(x).float()
            images += len(y)
            if kind == "mse":
                # The head grew since some rows were stored: compare only the columns each row had.
                cols = torch.arange(out.shape[1], device=self.device)[None, :] < width[:, None]
                zz = torch.zeros_like(out)
                zz[:, : z.shape[1]] = z
                per = ((out - zz) ** 2 * cols).sum(1) / width.clamp(min=1)
                loss = loss + cfg.alpha * per.mean()
            else:
                weight = cfg.beta if cfg.replay == "derpp" else cfg.er_weight
                loss = loss + weight * F.cross_entropy(out, y)
        return loss, images

    # --- training --------------------------------------------------------------------------------------------
    def _layer_macs(self) -> dict[str, int]:
        if self._macs is None:
            self._macs = layer_macs(self.strategy.features, self.prep.image_size)
        return self._macs

    def fit(
        self,
        task_name: str,
        task_id: str,
        data: TaskData,
        seed: int = 0,
        checkpoint: Any = None,
        signature: str = "",
    ) -> FitResult:
        """Train one new task (every epoch runs; no early stop, no best-epoch pick, as in the paper).

        Epoch checkpoints are not written for rehearsal strategies: an interrupted task starts over."""
        s, cfg = self.strategy, self.strategy.config
        self._task = task_name
        self._replay_sets.pop(task_id, None)
        previous_tasks = len(s.task_states)
        torch.manual_seed(seed)  # head rows and augmentation draw from the global generator
        s.begin_task(task_id, data.num_classes)
        lo, hi = s.class_range(task_id)
        optimizer = torch.optim.SGD(s.trainable_parameters(), lr=cfg.lr, momentum=0.0, weight_decay=0.0)
        train_set = ImageListDataset(data.root, list(data.train), self.prep.image_size, cfg.augment, self.cache)
        train_set.on_item = self._item_check
        val_loader = self.loader(data.root, data.val, train=False)
        n, bs, epochs = len(train_set), cfg.batch_size, cfg.epochs
        shuffle = torch.Generator().manual_seed(seed * 1_000_003 + previous_tasks)
        mask_rng = torch.Generator().manual_seed(seed * 7919 + previous_tasks)
        masks = s.masks if getattr(cfg, "tdm", False) else None
        plan = tdm_schedule(epochs, cfg.sparsity, cfg.update_every, cfg.mutation_stop, cfg.mutation) if masks else {}
        removal = (
            DataRemoval(n, epochs, cfg.ddr_ratio, cfg.update_every, cfg.ddr_cutoff, seed + previous_tasks)
            if getattr(cfg, "ddr", False)
            else None
        )
        stats = ForgettingStats(n, never_learned_score=epochs)
        dgm = None
        if getattr(cfg, "dgm", False):
            from clstudio.engine.strategies.sparcl import effective_gradient_sparsity

            layers = masks.layers if masks else sparse_layers(s.features)
            dgm = GradientMasks(layers, effective_gradient_sparsity(cfg), cfg.dgm_refresh)
        replay = previous_tasks > 0 and len(s.buffer) > 0  # replay terms only from the second task on (§6)
        streams = (3 if cfg.replay == "derpp" else 2) if replay else 1
        run = _TaskRun(task_id, data, lo, hi, optimizer, masks, dgm, stats, replay)
        macs = {**self._layer_macs(), "head": s.backbone.feature_dim * s.head.out_features}
        counter = FlopsCounter()
        emit(self.observers, TaskStarted(task_name, epochs, max(1, n // bs), str(self.device)))
        start, paused_s, skipped_total, step_times = time.monotonic(), 0.0, 0, []
        val_acc = best_acc = 0.0
        best_epoch = 0
        weight_sparsity = masks.sparsity() if masks is not None else {}  # changes only at a mask update
        for e in range(epochs):
            if masks is not None and e in plan:
                before = {k: v.clone() for k, v in masks.masks.items()} if self.probe else {}
                masks.update(plan[e], s.retained_grads, cfg.tdm_lambda, mask_rng)
                if self.probe:
                    self.probe("mask_update", {"epoch": e, "step": plan[e], "before": before})
                weight_sparsity = masks.sparsity()
                self._emit_sparsity(task_name, e + 1, weight_sparsity, counter)
            kept = np.arange(n)
            if removal is not None:
                gone = removal.maybe_remove(e, stats)
                if len(gone):
                    emit(self.observers, DataRemoved(task_name, e + 1, len(gone), len(removal.kept)))
                    if self.probe:
                        self.probe("ddr", {"epoch": e, "removed": gone, "scores": stats.last_scores})
                kept = removal.kept
            order = kept[torch.randperm(len(kept), generator=shuffle).numpy()]
            # The ragged last batch is skipped (§4), except when the task has fewer images than one batch.
            batches = max(1, len(order) // bs)
            counter.add_dense_epoch(macs, max(1, n // bs), min(bs, n), streams)
            s.set_train_mode()
            s.view = None
            loss_sum = seen = 0
            failed_before = run.failed
            for b in range(batches):
                paused_s += self._check(task_name)
                t0 = time.monotonic()
                step = self._train_batch(run, train_set, order[b * bs : (b + 1) * bs], b)
                if step is None:
                    continue
                loss_value, batch_images, replayed = step
                counter.add_iteration(
                    iteration_cost(macs, weight_sparsity, run.grad_sparsity(), batch_images + replayed, 1)
                )
                loss_sum += loss_value * batch_images
                seen += batch_images
                step_times.append(time.monotonic() - t0)
                per_step = sum(step_times[-20:]) / len(step_times[-20:])
                remaining = (batches - b - 1) + (epochs - e - 1) * batches
                emit(
                    self.observers,
                    StepProgress(
                        task_name,
                        e + 1,
                        b + 1,
                        batches,
                        loss_value,
                        batch_images / max(per_step, 1e-9),
                        remaining * per_step,
                    ),
                )
                if self.probe:
                    self.probe(
                        "step",
                        {"epoch": e, "batch": b, "indices": run.last_indices, "replayed": replayed, "task": task_id},
                    )
            # The importance score of the next mask update uses this epoch's last (masked) gradient (§3.1).
            layers = masks.layers if masks else {}
            s.retained_grads = {
                k: m.weight.grad.detach().clone() for k, m in layers.items() if m.weight.grad is not None
            }
            s.view = (lo, hi)
            val_acc, _ = self.accuracy_and_loss(val_loader, task_name)
            s.view = None
            if val_acc >= best_acc:
                best_acc, best_epoch = val_acc, e + 1
            skipped = run.failed - failed_before  # files that stopped decoding since the scan
            skipped_total += skipped
            emit(
                self.observers,
                EpochEnded(
                    task_name, e + 1, epochs, loss_sum / max(seen, 1), val_acc, best_acc, best_epoch, cfg.lr, skipped
                ),
            )
            self._emit_sparsity(task_name, e + 1, weight_sparsity, counter)
        s.end_task(task_id)
        seconds = time.monotonic() - start - paused_s
        extra = {
            "flops_used": counter.used,
            "flops_dense": counter.dense,
            "iterations": counter.iterations,
            "dense_iterations": counter.dense_iterations,
            "streams": streams,
            "train_seconds": round(seconds, 2),
        }
        if masks is not None:
            extra["sparsity"] = {k: round(v, 6) for k, v in weight_sparsity.items()}
        if removal is not None:
            extra["ddr_removed"] = int(sum(len(r) for r in removal.removed))
        # The final weights are the task's result (the paper keeps no best epoch); val_acc is the last epoch's.
        return FitResult(val_acc, epochs, epochs, seconds, skipped_total, extra)

    def _train_batch(
        self, run: _TaskRun, train_set: ImageListDataset, idx: np.ndarray, batch: int
    ) -> tuple[float, int, int] | None:
        """One SGD step: masked-head CE (+ replay), backward, weight and gradient masks, step, re-mask, reservoir.
        Returns (loss, stream images, replayed images), or None when too few images decoded."""
        s = self.strategy
        items = [train_set[int(i)] for i in idx]
        good = [k for k, (_, y) in enumerate(items) if y >= 0]
        run.failed += len(items) - len(good)
        if len(good) < 2:  # BatchNorm in train mode needs two images
            return None
        idx = idx[good]
        x = self.prep.normalise(torch.stack([items[k][0] for k in good]).to(self.device))
        y = torch.tensor([items[k][1] for k in good], device=self.device) + run.lo
        with self._autocast():
            logits = s.full_logits(x).float()
        run.stats.record(idx, (logits.argmax(1) == y).cpu().numpy())
        loss = masked_head_ce(logits, y, run.lo, run.hi)
        replayed = 0
        if run.replay:
            extra, replayed = self._replay_loss((run.task_id, run.data))
            loss = loss + extra
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if run.masks is not None:
            run.masks.apply_to_grads()
        if run.dgm is not None:
            run.dgm.apply(batch)
        run.optimizer.step()
        if run.masks is not None:
            run.masks.apply_to_weights()
        s.buffer.add(task_number(run.task_id), torch.as_tensor(idx), y.cpu(), logits.detach())
        run.last_indices = idx
        return float(loss.detach()), len(y), replayed

    def _emit_sparsity(self, task_name: str, epoch: int, sparsity: dict[str, float], counter: FlopsCounter) -> None:
        emit(self.observers, SparsityUpdated(task_name, epoch, tuple(sparsity.items()), counter.ratio))
