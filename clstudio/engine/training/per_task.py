"""Training of the per-task-head strategies (CLR, linear probe, fine-tune): a new head for each task.

Adam (betas 0.9/0.999, eps 1e-8, no weight decay) with StepLR(epochs // lr_steps, γ = 0.1) is the CLR
paper's recipe (clr.md §3); the loss is cross-entropy plus the strategy's regulariser. The weights of the
epoch with the best validation accuracy are kept, and a task stops early after ``patience`` epochs without
improvement. Mixed precision (bf16 where the GPU has it, else fp16 with loss scaling) runs on CUDA only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from clstudio.engine import checkpoint, metrics
from clstudio.engine.data.dataset import DecodeCache, ImageListDataset, Preprocessing, image_loader
from clstudio.engine.device import autocast
from clstudio.engine.evaluate import Evaluator
from clstudio.engine.strategies.base import Strategy, TensorDict, TrainConfig
from clstudio.engine.training.loop import EpochOutcome, FitResult, TaskData, TrainingMethod
from clstudio.engine.training.probe import fit_head, frozen_features

CURRENT, BEST, PROBE = "current::", "best::", "probe::"


class PerTaskHeadTraining(TrainingMethod):
    loader: DataLoader  # the task's training batches (made in begin, remade on an out-of-memory back-off)

    def __init__(self, strategy: Strategy, prep: Preprocessing, cache: DecodeCache) -> None:
        super().__init__(strategy, prep, cache)
        self.evaluator = Evaluator(strategy, prep, cache, check=self.check, allow_fp16=True)
        self._batch_size = 0  # 0: the config's; lowered for the rest of the task after an out-of-memory error

    @property
    def config(self) -> TrainConfig:
        cfg = self.strategy.config
        assert isinstance(cfg, TrainConfig)
        return cfg

    # --- data ----------------------------------------------------------------------------------------
    def _train_loader(self, seed: int = 0) -> DataLoader:
        cfg = self.config
        ds = ImageListDataset(self.data.root, list(self.data.train), self.prep.image_size, cfg.augment, self.cache)
        if cfg.num_workers == 0:
            ds.on_item = self.check  # a cancel or pause lands within one image, even on a slow disk
        # Distributed: each rank gets its share of the very batches one process would train on.
        share = (self.dist.rank, self.dist.world_size) if self.dist.active else None
        cuda = self.device.type == "cuda"
        return image_loader(ds, self.batch_size(), True, cfg.num_workers, cuda, seed, share)

    def batch_size(self) -> int:
        """Images per step (over every rank of a distributed run)."""
        return self._batch_size or self.config.batch_size

    def set_batch_size(self, size: int) -> None:
        # The data order carries on from where the failed attempt left the generator.
        state = self.loader.generator.get_state()
        self._batch_size = size
        self.loader = self._train_loader(self.seed)
        self.loader.generator.set_state(state)

    # --- the loop's hooks ------------------------------------------------------------------------------
    def begin(self, task_id: str, data: TaskData, seed: int) -> None:
        s, cfg = self.strategy, self.config
        self.task_id, self.data, self._batch_size, self.seed = task_id, data, 0, seed
        self.epochs = cfg.epochs
        torch.manual_seed(seed)  # head init and augmentation draw from the global generator
        s.begin_task(task_id, data.num_classes)
        self.params = [p for p in s.trainable_parameters() if p.requires_grad]
        self.dist.broadcast_(p.data for p in self.params)  # every rank starts from rank 0's (as DDP does)
        groups = s.param_groups(self.params, cfg.lr)
        self.optimizer = torch.optim.Adam(groups, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
        # Paper: step = 60 // 3 = 20. Rounded up, so a short run (5 epochs) does not decay every epoch.
        step_size = max(1, math.ceil(cfg.epochs / max(1, cfg.lr_steps)))
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=step_size, gamma=0.1)
        use_scaler = self.device.type == "cuda" and not torch.cuda.is_bf16_supported()
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        self.loader = self._train_loader(seed)
        # This rank's share of the validation images (all of them in one process); results add up over ranks.
        self.val_loader = self.evaluator.loader(data.root, self.dist.shard(data.val))
        self.best_acc, self.best_loss, self.best_epoch = -1.0, float("inf"), 0
        self.best_state: TensorDict | None = None
        self.skipped_total = self._skipped = 0
        self.head = {id(p) for p in s.head.parameters()} if s.head is not None else set()
        self.probe_fit: tuple[float, float, float] | None = None  # (val acc, L2, train CE) of the probe head
        self._live: tuple[str, float] | None = None
        # The probe as epoch 0, kept apart so CLR replaces it only when clearly better (see finish).
        self.probe_state: TensorDict | None = None
        self.probe_val: tuple[float, float] | None = None
        self.probe_right: torch.Tensor | None = None  # which validation images the probe answers right
        self.best_right: torch.Tensor | None = None  # ... and the best epoch
        self.probe_kept_over: dict[str, Any] | None = None

    def steps_per_epoch(self) -> int:
        return len(self.loader)

    def start_epoch(self, epoch: int) -> None:
        # Linear probe, then the rest (Kumar et al. 2022): while the head is random, its gradients would push
        # the adapters in arbitrary directions. Either fit the head once on the frozen features (probe_head:
        # seconds, and the adapters keep the whole schedule) or train it alone for head_warmup epochs.
        probe_head = self.strategy.starts_from_probe()
        if probe_head and epoch == 1:
            xv, yv = self._fit_probe_head()
            # The probe is the model until an epoch beats it on validation ("epoch 0"): CLR replaces it only
            # where its adapters really help, so it is never worse than the probe on the images that choose.
            acc, loss, right = self._probe_answers(xv, yv)
            self.best_acc, self.best_loss, self.best_epoch, self.best_state = acc, loss, 0, self.strategy.snapshot()
            self.probe_state, self.probe_val = self.best_state, (acc, loss)
            self.probe_right = self.best_right = right
            self._live = ("probe", acc)  # a complete model already: Classify can use it while CLR trains
        warmup = 0 if probe_head else getattr(self.config, "head_warmup", 0)
        for p in self.params:
            if id(p) not in self.head:
                p.requires_grad_(epoch > warmup)
        self.strategy.set_train_mode()
        self._skipped = 0

    def live_model(self) -> tuple[str, float] | None:
        live, self._live = self._live, None
        return live

    def _fit_probe_head(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The head as a logistic regression on the task's features before any adapter moved (identity).
        Returns the validation features and labels (every rank's, in the items' order) it was chosen on."""
        # The training images without augmentation; the validation loader is already plain. Distributed, each
        # rank computes the features of its share and every rank fits on all of them.
        d = self.dist
        ds = ImageListDataset(self.data.root, list(d.shard(self.data.train)), self.prep.image_size, "none", self.cache)
        ds.on_item = self.check
        xs, ys, _ = frozen_features(self.strategy, self.prep, image_loader(ds, self.config.eval_batch_size, False))
        xv, yv, _ = frozen_features(self.strategy, self.prep, self.val_loader)
        xs, ys, xv, yv = (d.gather_in_order(t) for t in (xs, ys, xv, yv))
        head = self.strategy.head
        assert head is not None
        fit = fit_head(head, xs, ys, xv, yv, self.data.num_classes, self.check, select="loss")
        d.broadcast_([head.weight.data, head.bias.data])  # the same fit everywhere, made certain
        self.probe_fit = d.broadcast_object(fit)
        return xv, yv

    @torch.no_grad()
    def _probe_answers(self, xv: torch.Tensor, yv: torch.Tensor) -> tuple[float, float, torch.Tensor]:
        """What ``_validate_answers`` would say of the probe, from the validation features the fit just
        computed: the adapters are the identity, so a second pass over the images would compute the same
        features again (about a second of the 13-16 s to the first usable model at 224 px on two CPU cores)."""
        head = self.strategy.head
        assert head is not None
        if len(yv) == 0:
            return 0.0, float("inf"), torch.zeros(0, dtype=torch.bool)
        logits = head(xv.to(head.weight.device, head.weight.dtype)).float()
        y = yv.to(logits.device)
        right = (logits.argmax(1) == y).cpu()
        return float(right.double().mean()), float(F.cross_entropy(logits, y)), right

    def batches(self, epoch: int) -> Iterable[Any]:
        return self.loader

    def step(self, batch: Any) -> tuple[float, int] | None:
        xb, yb, failed = batch
        self._skipped += failed
        # A lone image left by failed decodes is skipped (BN in train mode needs two), unless batches are 1.
        everyone = self.dist.sum_counts([len(yb)])[0]  # the images of this step on every rank
        if everyone < 1 or (everyone == 1 and self.batch_size() > 1):
            return None
        return float(self.train_step(xb, yb, share=len(yb) / everyone)), len(yb)

    def train_step(self, xb: torch.Tensor, yb: torch.Tensor, share: float = 1.0) -> torch.Tensor:
        """One optimiser step on a uint8 batch; returns the (detached) cross-entropy. ``share``: this rank's
        part of the step's images, so that the gradients summed over ranks are those of the mean loss."""
        if share > 0:
            x = self.prep.normalise(xb.to(self.device, non_blocking=True))
            y = yb.to(self.device, non_blocking=True)
            with autocast(self.device):
                loss = F.cross_entropy(self.strategy.forward(x), y)
            total = loss * share
        else:  # nothing usable here this step: an empty share still goes through (BatchNorm sums over ranks)
            size = self.prep.image_size
            x = self.prep.normalise(torch.zeros(0, 3, size, size, dtype=torch.uint8).to(self.device))
            with autocast(self.device):
                total = self.strategy.forward(x).float().sum() * 0.0
            loss = torch.zeros((), device=self.device)
        reg = self.strategy.regularization()
        if reg is not None:
            total = total + reg / self.dist.world_size
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.dist.sum_grads(self.params)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach()

    def end_epoch(self, epoch: int) -> EpochOutcome:
        cfg = self.config
        lr_used = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        val_acc, val_loss, right = self._validate_answers()
        # A small validation set ties often (20 images: 5 % steps); a tie goes to the lower loss, else the
        # first, barely trained epoch would win every tie ('faithful': strictly greater accuracy only).
        tie_better = cfg.break_ties_by_loss and val_acc == self.best_acc and val_loss < self.best_loss
        if val_acc > self.best_acc or tie_better or not cfg.keep_best:
            self.best_acc, self.best_loss, self.best_epoch = val_acc, val_loss, epoch
            self.best_state = self.strategy.snapshot()
            self.best_right = right
        self.skipped_total += self._skipped
        return EpochOutcome(val_acc, self.best_acc, self.best_epoch, lr_used, self._skipped)

    def _validate_answers(self) -> tuple[float, float, torch.Tensor]:
        return self.evaluator.answers_across_ranks(self.val_loader, self.dist)

    def _keep_probe_unless_clearly_beaten(self) -> None:
        """The best CLR epoch was chosen as the best of many on a few validation images, so a gain of a
        point or two is mostly luck (measured: +2-3 validation points, -0.4 to -1.8 on held-out test images,
        bench/real_data.py); it replaces the probe only when it wins on clearly more of the same validation
        images than it loses (metrics.clearly_better)."""
        if self.probe_state is None or self.best_epoch == 0 or self.probe_val is None:
            return
        if getattr(self.config, "replace_probe", "better") != "clearly_better":
            return
        best, probe = self.best_right, self.probe_right
        if best is None or probe is None or best.shape != probe.shape:
            return  # an image failed to decode in between: the answers no longer pair up
        wins, losses = int((best & ~probe).sum()), int((~best & probe).sum())
        if metrics.clearly_better(wins, losses):
            return
        self.probe_kept_over = {"epoch": self.best_epoch, "val_acc": self.best_acc, "wins": wins, "losses": losses}
        self.best_state, self.best_epoch = self.probe_state, 0
        self.best_acc, self.best_loss = self.probe_val

    def finished(self, epoch: int) -> bool:
        return epoch - self.best_epoch > self.config.patience

    def finish(self, last_epoch: int, seconds: float) -> FitResult:
        for p in self.params:
            p.requires_grad_(True)
        self._keep_probe_unless_clearly_beaten()
        if self.best_state is not None:
            self.strategy.restore(self.best_state)
        self.strategy.end_task(self.task_id)
        extra: dict[str, Any] = {}
        if self.probe_fit:
            extra = {"probe_val_acc": self.probe_fit[0], "probe_l2": self.probe_fit[1]}
        if self.probe_kept_over:
            extra["probe_kept_over"] = self.probe_kept_over
        return FitResult(self.best_acc, self.best_epoch, last_epoch, seconds, self.skipped_total, extra)

    # --- checkpoints ---------------------------------------------------------------------------------
    def state(self) -> tuple[TensorDict, dict[str, Any]]:
        tensors = {CURRENT + k: v for k, v in self.strategy.snapshot().items()}
        if self.best_state is not None:
            tensors.update({BEST + k: v for k, v in self.best_state.items()})
        if self.probe_state is not None:
            # Copies: until an epoch beats it, the best state is this very dict (safetensors refuses shared memory)
            tensors.update({PROBE + k: v.clone() for k, v in self.probe_state.items()})
        for name, right in (("probe", self.probe_right), ("best", self.best_right)):
            if right is not None:
                tensors[f"right::{name}"] = right.to(torch.uint8)
        opt_tensors, opt_meta = checkpoint.optimizer_tensors(self.optimizer.state_dict())
        tensors.update(opt_tensors)
        tensors["rng::torch"] = torch.get_rng_state()
        tensors["rng::data"] = self.loader.generator.get_state()
        meta = {
            "best_acc": self.best_acc,
            "best_loss": self.best_loss,
            "best_epoch": self.best_epoch,
            "skipped": self.skipped_total,
            "optimizer": opt_meta,
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "probe": list(self.probe_fit) if self.probe_fit else None,
            "probe_val": list(self.probe_val) if self.probe_val else None,
        }
        return tensors, meta

    def load_state(self, tensors: TensorDict, meta: dict[str, Any]) -> None:
        self.strategy.restore({k[len(CURRENT) :]: v for k, v in tensors.items() if k.startswith(CURRENT)})
        self.optimizer.load_state_dict(checkpoint.optimizer_state(tensors, meta["optimizer"]))
        self.scheduler.load_state_dict(meta["scheduler"])
        if meta["scaler"]:
            self.scaler.load_state_dict(meta["scaler"])
        torch.set_rng_state(tensors["rng::torch"])
        self.loader.generator.set_state(tensors["rng::data"])
        best = {k[len(BEST) :]: v for k, v in tensors.items() if k.startswith(BEST)}
        self.best_state = best or None
        self.best_acc, self.best_loss = float(meta["best_acc"]), float(meta["best_loss"])
        self.best_epoch, self.skipped_total = int(meta["best_epoch"]), int(meta["skipped"])
        probe = meta.get("probe")
        self.probe_fit = (float(probe[0]), float(probe[1]), float(probe[2])) if probe else None
        self.probe_state = {k[len(PROBE) :]: v for k, v in tensors.items() if k.startswith(PROBE)} or None
        probe_val = meta.get("probe_val")
        self.probe_val = (float(probe_val[0]), float(probe_val[1])) if probe_val else None
        self.probe_right, self.best_right = (
            tensors[f"right::{name}"].bool() if f"right::{name}" in tensors else None for name in ("probe", "best")
        )
