"""Training of the rehearsal strategies (ER, DER++, SparCL), sparcl.md §3-§7, one task at a time:

    at epoch e (before its first batch): TDM mask update if e is on the schedule, then a DDR stage
    each batch: masked-head CE on the stream batch (+ replay terms from the second task on), backward,
             weight mask and DGM mask on the gradients, SGD step, W ⊙= mask, reservoir insert, FLOPs count
    after the epoch: the last batch's (masked) gradient is kept for the next importance score

Every epoch runs (no early stop, no best-epoch pick, as in the paper). The task-data provider is given at
construction: the buffer holds references into earlier tasks' files, which are decoded again on replay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from clstudio.engine import checkpoint
from clstudio.engine.data.dataset import DecodeCache, ImageListDataset, Preprocessing
from clstudio.engine.device import autocast
from clstudio.engine.evaluate import Evaluator
from clstudio.engine.events import DataRemoved, SparsityUpdated
from clstudio.engine.events import Warning as WarningEvent
from clstudio.engine.sparcl.ddr import DataRemoval, ForgettingStats
from clstudio.engine.sparcl.dgm import GradientMasks
from clstudio.engine.sparcl.flops import FlopsCounter, iteration_cost, layer_macs
from clstudio.engine.sparcl.masks import TdmStep, coverage, sparse_layers, tdm_schedule
from clstudio.engine.strategies.base import TensorDict
from clstudio.engine.strategies.rehearsal import RehearsalConfig, RehearsalStrategy
from clstudio.engine.training.loop import EpochOutcome, FitResult, TaskData, TrainingMethod

TaskSource = Callable[[str], TaskData]  # task id → that task's data


def task_number(task_id: str) -> int:
    return int(task_id.lstrip("t"))


def masked_head_ce(logits: torch.Tensor, y: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """Cross-entropy among the current task's classes only: other logits are −inf (sparcl.md §3.1)."""
    masked = torch.full_like(logits, float("-inf"))
    masked[:, lo:hi] = logits[:, lo:hi]
    return F.cross_entropy(masked, y)


def _np(t: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(t).copy())


class RehearsalTraining(TrainingMethod):
    strategy: RehearsalStrategy
    allow_fp16 = False  # plain SGD without a loss scaler: bf16 or fp32 only

    def __init__(
        self, strategy: RehearsalStrategy, prep: Preprocessing, cache: DecodeCache, task_source: TaskSource
    ) -> None:
        super().__init__(strategy, prep, cache)
        self.task_source = task_source
        self.evaluator = Evaluator(strategy, prep, cache, check=self.check, allow_fp16=False)
        self._replay_sets: dict[str, ImageListDataset] = {}
        self._macs: dict[str, int] | None = None
        # Diagnostics: called with ("mask_update" | "ddr" | "step", facts) inside the loop; the invariant
        # tests watch the mechanisms through it. Runs in the training thread; None in the app.
        self.probe: Callable[[str, dict[str, Any]], None] | None = None

    @property
    def config(self) -> Any:
        cfg = self.strategy.config
        assert isinstance(cfg, RehearsalConfig)
        return cfg

    def _autocast(self) -> Any:
        return autocast(self.device, allow_fp16=False)

    # --- replay --------------------------------------------------------------------------------------------
    def _replay_set(self, tid: str) -> ImageListDataset:
        if tid not in self._replay_sets:
            data = self.data if tid == self.task_id else self.task_source(tid)
            aug = self.config.augment  # buffer reads re-apply the training augmentation (§6)
            self._replay_sets[tid] = ImageListDataset(
                data.root, list(data.train), self.prep.image_size, aug, self.cache
            )
        return self._replay_sets[tid]

    def _buffer_batch(self, size: int) -> tuple[torch.Tensor, ...] | None:
        """(images, labels, logits, widths) for a uniform draw. A sample whose file can no longer be read is
        counted (``replay_unreadable``, reported with the task) and, in one process, replaced by another
        buffer sample, so the batch keeps its size. Distributed, every rank draws the same picks (the
        buffer's generator is the same everywhere) and decodes its share; there an unreadable one is left
        out (replacing it would need the other ranks to agree) and still counted."""
        buf = self.strategy.buffer
        drawn = buf.sample(size)
        self.replay_drawn += len(drawn)
        picks = self.dist.shard(drawn)
        xs, keep = self._decode_replay(picks.tolist())
        if len(keep) < len(picks) and not self.dist.active:
            taken = set(drawn.tolist())
            spare = [j for j in buf.sample(len(buf)).tolist() if j not in taken]
            while len(keep) < len(picks) and spare:
                more, extra = self._decode_replay(spare[: len(picks) - len(keep)])
                spare = spare[len(picks) - len(keep) :]
                xs, keep = xs + more, keep + extra
        if not keep:
            if not self.dist.active:
                return None
            # Distributed: an empty share still goes through the network (BatchNorm sums over every rank).
            size = self.prep.image_size
            xs, keep = [torch.zeros(0, 3, size, size, dtype=torch.uint8)], []
        k = torch.tensor(keep, dtype=torch.long)
        x = self.prep.normalise(torch.cat([t[None] if t.dim() == 3 else t for t in xs]).to(self.device))
        return x, buf.label[k].to(self.device), buf.logits[k].to(self.device), buf.width[k].to(self.device)

    def _decode_replay(self, picks: list[int]) -> tuple[list[torch.Tensor], list[int]]:
        buf, xs, keep = self.strategy.buffer, [], []
        for j in picks:
            img, label = self._replay_set(f"t{int(buf.task[j])}")[int(buf.item[j])]
            if label >= 0:
                xs.append(img)
                keep.append(j)
            else:
                self.replay_unreadable += 1
        return xs, keep

    def _replay_draws(self) -> list[tuple[str, tuple[torch.Tensor, ...] | None]]:
        """DER++: two independent draws (for the MSE and the CE term); ER: one (CE)."""
        cfg = self.config
        kinds = ("mse", "ce") if cfg.replay == "derpp" else ("ce",)
        return [(kind, self._buffer_batch(cfg.batch_size)) for kind in kinds]

    def _replay_loss(
        self, draws: list[tuple[str, tuple[torch.Tensor, ...] | None]], shares: list[float], totals: list[float]
    ) -> tuple[torch.Tensor, int]:
        """DER++: α·MSE(stored logits) + β·CE; ER: w·CE. Each term's mean is weighted by this rank's share of
        its images (1 in one process). Returns (loss, images forwarded)."""
        s, cfg = self.strategy, self.config
        loss, images = torch.zeros((), device=self.device), 0
        for (kind, batch), share, total in zip(draws, shares, totals, strict=True):
            if batch is None or total == 0:
                continue
            x, y, z, width = batch
            with self._autocast():
                out = s.full_logits(x).float()
            images += len(y)
            if len(y) == 0:  # this rank's share was empty; the others' was not
                loss = loss + out.sum() * 0.0
            elif kind == "mse":
                # The head grew since some rows were stored: compare only the columns each row had.
                cols = torch.arange(out.shape[1], device=self.device)[None, :] < width[:, None]
                zz = torch.zeros_like(out)
                zz[:, : z.shape[1]] = z
                per = ((out - zz) ** 2 * cols).sum(1) / width.clamp(min=1)
                loss = loss + cfg.alpha * per.mean() * share
            else:
                weight = cfg.beta if cfg.replay == "derpp" else cfg.er_weight
                loss = loss + weight * F.cross_entropy(out, y) * share
        return loss, images

    # --- the loop's hooks ------------------------------------------------------------------------------------
    def begin(self, task_id: str, data: TaskData, seed: int) -> None:
        s, cfg = self.strategy, self.config
        self.task_id, self.data = task_id, data
        self._replay_sets.pop(task_id, None)
        previous_tasks = len(s.task_states)
        torch.manual_seed(seed)  # head rows and augmentation draw from the global generator
        s.begin_task(task_id, data.num_classes)
        self.lo, self.hi = s.class_range(task_id)
        self.optimizer = self._sgd()
        self.train_set = ImageListDataset(data.root, list(data.train), self.prep.image_size, cfg.augment, self.cache)
        self.train_set.on_item = self.check
        self.val_loader = self.evaluator.loader(data.root, self.dist.shard(data.val))  # this rank's share
        self.n, self.bs, self.epochs = len(self.train_set), cfg.batch_size, cfg.epochs
        self.shuffle = torch.Generator().manual_seed(seed * 1_000_003 + previous_tasks)
        self.mask_rng = torch.Generator().manual_seed(seed * 7919 + previous_tasks)
        self.masks = s.masks if getattr(cfg, "tdm", False) else None
        self.plan = (
            tdm_schedule(self.epochs, cfg.sparsity, cfg.update_every, cfg.mutation_stop, cfg.mutation)
            if self.masks
            else {}
        )
        # A pretrained anchor reaches its sparsity gradually in the first task; TDM takes over after the ramp.
        self.ramp: dict[int, float] = {}
        if self.masks is not None and previous_tasks == 0 and getattr(s, "ramp_first_task", False):
            from clstudio.engine.strategies.sparcl import cubic_ramp

            self.ramp = cubic_ramp(self.epochs, cfg.sparsity, cfg.prune_ramp)
            if not self.ramp and min(self.masks.sparsity().values(), default=1.0) == 0.0:
                self.masks.prune_to(cfg.sparsity)  # a one-epoch task: nothing to ramp over
        self.removal = (
            DataRemoval(self.n, self.epochs, cfg.ddr_ratio, cfg.update_every, cfg.ddr_cutoff, seed + previous_tasks)
            if getattr(cfg, "ddr", False)
            else None
        )
        self.stats = ForgettingStats(self.n, never_learned_score=self.epochs)
        self.dgm = None
        if getattr(cfg, "dgm", False):
            from clstudio.engine.strategies.sparcl import effective_gradient_sparsity

            layers = self.masks.layers if self.masks else sparse_layers(s.features)
            self.dgm = GradientMasks(layers, effective_gradient_sparsity(cfg), cfg.dgm_refresh)
        self.replay = previous_tasks > 0 and len(s.buffer) > 0  # replay terms only from the second task on (§6)
        self.streams = (3 if cfg.replay == "derpp" else 2) if self.replay else 1
        if self._macs is None:
            self._macs = layer_macs(s.features, self.prep.image_size)
        assert s.head is not None
        self.macs = {**self._macs, "head": s.backbone.feature_dim * s.head.out_features}
        self.counter = FlopsCounter()
        self.val_acc = self.best_acc = 0.0
        self.best_epoch = self.skipped_total = self.failed = 0
        self.replay_drawn = self.replay_unreadable = 0  # buffer picks drawn / unreadable ones, this task
        self.replay_drawn_before = self.steps_before = self.steps = 0  # at the epoch's start, for its mean
        self.weight_sparsity = self.masks.sparsity() if self.masks is not None else {}  # changes at mask updates
        self.order = np.arange(self.n)
        self.last_indices = np.empty(0, dtype=np.int64)

    def _sgd(self) -> torch.optim.Optimizer:
        groups = self.strategy.param_groups(self.strategy.trainable_parameters(), self.config.lr)
        return torch.optim.SGD(groups, lr=self.config.lr, momentum=0.0, weight_decay=0.0)

    def steps_per_epoch(self) -> int:
        # The ragged last batch is skipped (§4), except when the task has fewer images than one batch.
        return max(1, len(self.order) // self.bs)

    def batch_size(self) -> int:
        return self.bs

    def set_batch_size(self, size: int) -> None:
        self.bs = size  # the epoch restarts over the same sample order

    def start_epoch(self, epoch: int) -> None:
        s, e = self.strategy, epoch - 1  # the schedules count epochs from 0, as the released code does
        step = TdmStep(self.ramp[e], None) if e in self.ramp else self.plan.get(e)
        if self.ramp and e <= max(self.ramp) and e not in self.ramp:
            step = None  # before the ramp's first prune (epoch 0): dense, no TDM step
        if self.masks is not None and step is not None:
            before = {k: v.clone() for k, v in self.masks.masks.items()} if self.probe else {}
            self.masks.update(step, s.retained_grads, self.config.tdm_lambda, self.mask_rng)
            if self.probe:
                self.probe("mask_update", {"epoch": e, "step": step, "before": before})
            self.weight_sparsity = self.masks.sparsity()
            self._emit_sparsity(epoch)
        kept = np.arange(self.n)
        if self.removal is not None:
            gone = self.removal.maybe_remove(e, self.stats)
            if len(gone):
                self.emit(DataRemoved(self.task_name, epoch, len(gone), len(self.removal.kept)))
                if self.probe:
                    self.probe("ddr", {"epoch": e, "removed": gone, "scores": self.stats.last_scores})
            kept = self.removal.kept
        self.order = kept[torch.randperm(len(kept), generator=self.shuffle).numpy()]
        self.failed_before = self.failed
        self.epoch0 = e

    def batches(self, epoch: int) -> Iterator[np.ndarray]:
        s = self.strategy
        s.set_train_mode()
        s.view = None
        bs = self.bs
        for b in range(self.steps_per_epoch()):
            self.batch_index = b
            yield self.order[b * bs : (b + 1) * bs]

    def step(self, batch: Any) -> tuple[float, int] | None:
        """One SGD step: masked-head CE (+ replay), backward, weight and gradient masks, step, re-mask,
        reservoir, FLOPs. None when too few images decoded."""
        s, d = self.strategy, self.dist
        slots = np.arange(len(batch))
        if d.active:  # this rank's share of the step's batch, by position in it
            slots = np.asarray(d.shard(slots), dtype=np.int64)
        idx = batch[slots]
        items = [self.train_set[int(i)] for i in idx]
        good = [k for k, (_, y) in enumerate(items) if y >= 0]
        self.failed += len(items) - len(good)
        # Distributed: first the whole step's image count (every rank must take the same decision), then the
        # replay draws' (each rank weighs its part of every mean by its share of that term's images).
        if d.sum_counts([len(good)])[0] < 2:  # BatchNorm in train mode needs two images
            return None
        draws = self._replay_draws() if self.replay else []
        self.steps += 1
        counts = [len(good)] + [len(b[1]) if b is not None else 0 for _, b in draws]
        totals = d.sum_counts(counts)
        shares = [c / t if t else 0.0 for c, t in zip(counts, totals, strict=True)]
        idx, slots = idx[good], slots[good]
        self.optimizer.zero_grad(set_to_none=True)
        if good:
            x = self.prep.normalise(torch.stack([items[k][0] for k in good]).to(self.device))
            y = torch.tensor([items[k][1] for k in good], device=self.device) + self.lo
            with self._autocast():
                logits = s.full_logits(x).float()
            loss = masked_head_ce(logits, y, self.lo, self.hi) * shares[0]
        else:  # nothing usable on this rank: an empty share still goes through (BatchNorm sums over ranks)
            size = self.prep.image_size
            x = self.prep.normalise(torch.zeros(0, 3, size, size, dtype=torch.uint8).to(self.device))
            y = torch.zeros(0, dtype=torch.long, device=self.device)
            with self._autocast():
                logits = s.full_logits(x).float()
            loss = logits.sum() * 0.0
        extra, _ = self._replay_loss(draws, shares[1:], totals[1:])
        loss = loss + extra
        loss.backward()
        d.sum_grads(s.trainable_parameters())
        if d.active:  # the step's samples of every rank, in batch order, for the statistics and the buffer
            idx, y_all, logits_all = self._gather_step(slots, idx, y, logits)
        else:
            y_all, logits_all = y, logits.detach()
        y_dev = y_all.to(logits_all.device)
        with torch.no_grad():  # DDR ranks samples that tie on forgetting events by this loss
            sample_loss = F.cross_entropy(logits_all.float(), y_dev, reduction="none")
        self.stats.record(idx, (logits_all.argmax(1) == y_dev).cpu().numpy(), sample_loss.cpu().numpy())
        if self.masks is not None:
            self.masks.apply_to_grads()
        if self.dgm is not None:
            self.dgm.apply(self.batch_index)
        # No product on the weights: plain SGD (no momentum, no weight decay) moves a weight only by its
        # gradient, which the masks zeroed, so a masked weight stays exactly 0 (the step probe checks it).
        self.optimizer.step()
        s.buffer.add(task_number(self.task_id), torch.as_tensor(idx), y_all.cpu(), logits_all)
        self.last_indices = idx
        grad_sparsity = self.dgm.measured if self.dgm is not None else {}
        images, replayed = int(totals[0]), int(sum(totals[1:]))
        self.counter.add_iteration(iteration_cost(self.macs, self.weight_sparsity, grad_sparsity, images + replayed, 1))
        if self.probe:
            self.probe(
                "step",
                {
                    "epoch": self.epoch0,
                    "batch": self.batch_index,
                    "indices": idx,
                    "replayed": replayed,
                    "task": self.task_id,
                },
            )
        # This rank's loss for the progress line (in one process the step's loss, as before).
        return float(loss.detach()) / (shares[0] or 1.0), len(y)

    def _gather_step(
        self, slots: np.ndarray, idx: np.ndarray, y: torch.Tensor, logits: torch.Tensor
    ) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
        """Every rank's (sample index, label, logits) of this step, ordered as in the whole batch, so the
        forgetting statistics and the reservoir see what one process would have seen."""
        d = self.dist
        keys = torch.stack([torch.as_tensor(slots), torch.as_tensor(idx), y.cpu()], dim=1).long()
        keys_all = d.gather(keys)
        logits_all = d.gather(logits.detach().float())
        order = torch.argsort(keys_all[:, 0])
        keys_all, logits_all = keys_all[order], logits_all[order]
        return keys_all[:, 1].numpy(), keys_all[:, 2], logits_all

    def end_epoch(self, epoch: int) -> EpochOutcome:
        s, cfg = self.strategy, self.config
        # The dense reference: the same schedule without DDR, at the configured batch, plus per step the
        # replay images this run's steps drew (a dense run draws from the same buffer: full batches once it
        # holds them, fewer while it is smaller than a batch; unreadable picks included).
        steps, drawn = self.steps - self.steps_before, self.replay_drawn - self.replay_drawn_before
        replay_per_step = drawn / steps if steps else 0.0
        self.counter.add_dense_epoch(
            self.macs, max(1, self.n // cfg.batch_size), min(cfg.batch_size, self.n) + replay_per_step
        )
        self.steps_before, self.replay_drawn_before = self.steps, self.replay_drawn
        # The importance score of the next mask update uses this epoch's last (masked) gradient (§3.1).
        layers = self.masks.layers if self.masks else {}
        s.retained_grads = {k: m.weight.grad.detach().clone() for k, m in layers.items() if m.weight.grad is not None}
        s.view = (self.lo, self.hi)
        self.val_acc, _ = self.evaluator.accuracy_across_ranks(self.val_loader, self.dist)
        s.view = None
        if self.val_acc >= self.best_acc:
            self.best_acc, self.best_epoch = self.val_acc, epoch
        skipped = self.failed - self.failed_before  # files that stopped decoding since the scan
        self.skipped_total += skipped
        return EpochOutcome(self.val_acc, self.best_acc, self.best_epoch, cfg.lr, skipped)

    def after_epoch(self, epoch: int) -> None:
        self._emit_sparsity(epoch)

    def finish(self, last_epoch: int, seconds: float) -> FitResult:
        self.strategy.end_task(self.task_id)
        c = self.counter
        extra: dict[str, Any] = {
            "flops_used": c.used,
            "flops_dense": c.dense,
            "iterations": c.iterations,
            "dense_iterations": c.dense_iterations,
            "streams": self.streams,
            "train_seconds": round(seconds, 2),
        }
        if self.masks is not None:
            extra["sparsity"] = {k: round(v, 6) for k, v in self.weight_sparsity.items()}
            reach = coverage(self.strategy.features, self.masks.layers, self._macs or {})
            extra.update({k: round(v, 6) for k, v in reach.items()})
        if self.removal is not None:
            extra["ddr_removed"] = int(sum(len(r) for r in self.removal.removed))
        if self.replay_unreadable:
            extra["replay_unreadable"] = self.replay_unreadable
            handled = "left out of their batches" if self.dist.active else "each replaced by another sample"
            message = (
                f"{self.replay_unreadable} replayed images of earlier tasks could not be read (moved or deleted "
                f"since they trained): {handled}; the FLOPs reference counts them."
            )
            self.emit(WarningEvent(message))
        # The final weights are the task's result (the paper keeps no best epoch); val_acc is the last epoch's.
        return FitResult(self.val_acc, self.epochs, self.epochs, seconds, self.skipped_total, extra)

    def must_agree(self) -> TensorDict:
        """Besides the weights: SparCL's masks, the replay buffer, DDR's statistics and kept samples."""
        s, out = self.strategy, super().must_agree()
        if self.masks is not None:
            out.update(self.masks.state())
        out.update(s.buffer.state())
        out["stats::events"] = _np(self.stats.events)
        if self.removal is not None:
            out["ddr::kept"] = _np(self.removal.kept)
        return out

    def _emit_sparsity(self, epoch: int) -> None:
        self.emit(SparsityUpdated(self.task_name, epoch, tuple(self.weight_sparsity.items()), self.counter.ratio))

    # --- checkpoints -----------------------------------------------------------------------------------------
    def state(self) -> tuple[TensorDict, dict[str, Any]]:
        s = self.strategy
        tensors = {f"model::{k}": v for k, v in s.snapshot().items()}
        tensors.update({f"grad::{k}": v.cpu() for k, v in s.retained_grads.items()})
        opt_tensors, opt_meta = checkpoint.optimizer_tensors(self.optimizer.state_dict())
        tensors.update(opt_tensors)
        tensors["rng::torch"] = torch.get_rng_state()
        tensors["rng::shuffle"] = self.shuffle.get_state()
        tensors["rng::mask"] = self.mask_rng.get_state()
        st = self.stats
        tensors.update(
            {
                "stats::last": _np(st.last),
                "stats::learned": _np(st.learned),
                "stats::events": _np(st.events),
                "stats::last_scores": _np(st.last_scores),
                "stats::misses": _np(st.misses),
                "stats::seen": _np(st.seen),
                "stats::loss_sum": _np(st.loss_sum),
            }
        )
        meta: dict[str, Any] = {
            "optimizer": opt_meta,
            "val_acc": self.val_acc,
            "best_acc": self.best_acc,
            "best_epoch": self.best_epoch,
            "skipped": self.skipped_total,
            "failed": self.failed,
            "flops": [self.counter.used, self.counter.dense, self.counter.iterations, self.counter.dense_iterations],
            "replay": [self.replay_drawn, self.replay_unreadable, self.steps],
        }
        if self.removal is not None:
            tensors["ddr::kept"] = _np(self.removal.kept)
            for i, r in enumerate(self.removal.removed):
                tensors[f"ddr::removed::{i}"] = _np(r)
            meta["ddr"] = {"removed": len(self.removal.removed), "rng": self.removal.rng.bit_generator.state}
        return tensors, meta

    def load_state(self, tensors: TensorDict, meta: dict[str, Any]) -> None:
        s = self.strategy
        s.restore({k[len("model::") :]: v for k, v in tensors.items() if k.startswith("model::")})
        s.retained_grads = {k[len("grad::") :]: v.to(self.device) for k, v in tensors.items() if k.startswith("grad::")}
        self.optimizer = self._sgd()  # restore() built a new head: the optimiser must hold its parameters
        self.optimizer.load_state_dict(checkpoint.optimizer_state(tensors, meta["optimizer"]))
        torch.set_rng_state(tensors["rng::torch"])
        self.shuffle.set_state(tensors["rng::shuffle"])
        self.mask_rng.set_state(tensors["rng::mask"])
        st = self.stats
        st.last, st.learned = tensors["stats::last"].numpy().copy(), tensors["stats::learned"].numpy().copy()
        st.events, st.last_scores = (
            tensors["stats::events"].numpy().copy(),
            tensors["stats::last_scores"].numpy().copy(),
        )
        if "stats::misses" in tensors:  # checkpoints written before DDR ranked by misses and loss lack them
            st.misses, st.seen = tensors["stats::misses"].numpy().copy(), tensors["stats::seen"].numpy().copy()
            st.loss_sum = tensors["stats::loss_sum"].numpy().copy()
        self.val_acc, self.best_acc = float(meta["val_acc"]), float(meta["best_acc"])
        self.best_epoch, self.skipped_total, self.failed = (
            int(meta["best_epoch"]),
            int(meta["skipped"]),
            int(meta["failed"]),
        )
        if "replay" in meta:  # older checkpoints: counted from this epoch on
            self.replay_drawn, self.replay_unreadable, self.steps = (int(v) for v in meta["replay"])
        self.replay_drawn_before, self.steps_before = self.replay_drawn, self.steps
        used, dense, iterations, dense_iterations = meta["flops"]
        self.counter = FlopsCounter(float(used), float(dense), int(iterations), int(dense_iterations))
        if self.removal is not None:
            self.removal.kept = tensors["ddr::kept"].numpy().copy()
            self.removal.removed = [tensors[f"ddr::removed::{i}"].numpy().copy() for i in range(meta["ddr"]["removed"])]
            self.removal.rng.bit_generator.state = meta["ddr"]["rng"]
        if self.masks is not None:
            self.weight_sparsity = self.masks.sparsity()
