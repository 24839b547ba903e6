"""The training loop shared by every per-task strategy: one task at a time, with events, a cancel and a
pause token checked every batch, best-epoch selection on validation, and an early stop.

Adam (betas 0.9/0.999, eps 1e-8, no weight decay) with StepLR(epochs // lr_steps, γ = 0.1) is the CLR
paper's recipe (clr.md §3); the loss is cross-entropy plus the strategy's regulariser.
Mixed precision (bf16 where the GPU has it, else fp16 with loss scaling) runs on CUDA only.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from clstudio.engine import checkpoint
from clstudio.engine.cancel import CancelToken, PauseToken
from clstudio.engine.data.dataset import DecodeCache, ImageListDataset, Preprocessing, collate_skip_failed
from clstudio.engine.errors import CLStudioError
from clstudio.engine.events import (
    EpochEnded,
    Observer,
    Paused,
    Resumed,
    StepProgress,
    TaskResumed,
    TaskStarted,
    Warning,
    emit,
)
from clstudio.engine.strategies.base import Strategy


def resolve_device(preference: str = "auto") -> str:
    if preference == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if preference.startswith("cuda") and not torch.cuda.is_available():
        from clstudio.engine.errors import CLStudioError

        raise CLStudioError("CUDA was asked for, but this machine has no usable NVIDIA GPU. Use --device cpu.")
    return preference


def device_label(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return "cpu"


@dataclass(frozen=True)
class TaskData:
    root: str
    train: Sequence[tuple[str, int]]
    val: Sequence[tuple[str, int]]
    num_classes: int


@dataclass(frozen=True)
class FitResult:
    best_val_acc: float
    best_epoch: int
    epochs_run: int
    seconds: float
    skipped_images: int
    extra: dict[str, Any] = field(default_factory=dict)  # strategy-specific facts stored with the task


class Trainer:
    def __init__(
        self,
        strategy: Strategy,
        prep: Preprocessing,
        observers: Sequence[Observer] = (),
        cancel: CancelToken | None = None,
        pause: PauseToken | None = None,
        cache: DecodeCache | None = None,
    ) -> None:
        self.strategy = strategy
        self.prep = prep
        self.observers = list(observers)
        self.cancel = cancel or CancelToken()
        self.pause = pause or PauseToken()
        self.cache = cache if cache is not None else DecodeCache(strategy.config.cache_mb * 2**20)
        self.device = strategy.device
        self.batch_size = 0  # 0: the config's; lowered for the rest of the task after an out-of-memory error
        self._task = ""

    # --- data ----------------------------------------------------------------------------------------
    def loader(self, root: str, items: Sequence[tuple[str, int]], train: bool, seed: int = 0) -> DataLoader:
        cfg = self.strategy.config
        ds = ImageListDataset(root, list(items), self.prep.image_size, cfg.augment if train else "none", self.cache)
        if cfg.num_workers == 0:
            ds.on_item = self._item_check  # a cancel or pause lands within one image, even on a slow disk
        bs = (self.batch_size or cfg.batch_size) if train else cfg.eval_batch_size
        generator = torch.Generator().manual_seed(seed)
        return DataLoader(
            ds,
            batch_size=bs,
            shuffle=train,
            generator=generator if train else None,
            # A last batch of one image breaks BatchNorm in train mode and says little: drop only that case.
            drop_last=train and len(ds) % bs == 1 and len(ds) > 1,
            num_workers=cfg.num_workers,
            pin_memory=self.device.type == "cuda",
            collate_fn=collate_skip_failed,
            persistent_workers=cfg.num_workers > 0,
        )

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type != "cuda":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)

    def _item_check(self) -> None:
        self._check(self._task)

    def _check(self, task: str) -> float:
        """Cancel/pause checkpoint; returns seconds spent paused."""
        self.cancel.raise_if_cancelled()
        if not self.pause.paused:
            return 0.0
        emit(self.observers, Paused(task))
        waited = self.pause.wait_if_paused(self.cancel)
        emit(self.observers, Resumed(task))
        return waited

    # --- evaluation ----------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, images_uint8: torch.Tensor) -> torch.Tensor:
        """Softmax probabilities of the active task for a uint8 batch [N,3,S,S]."""
        self.strategy.eval()
        x = self.prep.normalise(images_uint8.to(self.device))
        with self._autocast():
            logits = self.strategy.forward(x)
        return logits.float().softmax(dim=1).cpu()

    @torch.no_grad()
    def accuracy(self, loader: DataLoader, task: str = "", label_offset: int = 0) -> float:
        return self.accuracy_and_loss(loader, task, label_offset)[0]

    @torch.no_grad()
    def accuracy_and_loss(self, loader: DataLoader, task: str = "", label_offset: int = 0) -> tuple[float, float]:
        """Top-1 accuracy and mean cross-entropy of the strategy's current output on a loader. The loader's
        labels are the task's own (0..C-1); ``label_offset`` shifts them to where the output puts that task's
        classes (a one-head strategy evaluated over every class)."""
        self.strategy.eval()
        correct = total = 0
        loss_sum = 0.0
        for xb, yb, _ in loader:
            self._check(task)
            if len(yb) == 0:
                continue
            x = self.prep.normalise(xb.to(self.device, non_blocking=True))
            with self._autocast():
                logits = self.strategy.forward(x).float().cpu()
            yb = yb + label_offset
            correct += int((logits.argmax(dim=1) == yb).sum())
            loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
            total += len(yb)
        return (correct / total, loss_sum / total) if total else (0.0, float("inf"))

    def evaluate_task(self, task_id: str, root: str, items: Sequence[tuple[str, int]]) -> float:
        self.strategy.activate_task(task_id)
        return self.accuracy(self.loader(root, items, train=False), task_id)

    def train_step(
        self, xb: torch.Tensor, yb: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler
    ) -> torch.Tensor:
        """One optimiser step on a uint8 batch; returns the (detached) cross-entropy."""
        x = self.prep.normalise(xb.to(self.device, non_blocking=True))
        y = yb.to(self.device, non_blocking=True)
        with self._autocast():
            loss = F.cross_entropy(self.strategy.forward(x), y)
        reg = self.strategy.regularization()
        total = loss + reg if reg is not None else loss
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss.detach()

    def _train_epoch(
        self,
        task_name: str,
        epoch: int,
        loader: DataLoader,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        step_times: list[float],
    ) -> tuple[float, int, int, float]:
        """One pass over the training data; returns (loss sum, images seen, images skipped, seconds paused)."""
        cfg = self.strategy.config
        steps = len(loader)
        loss_sum, seen, skipped, paused_s = 0.0, 0, 0, 0.0
        for step, (xb, yb, failed) in enumerate(loader, start=1):
            paused_s += self._check(task_name)
            t0 = time.monotonic()
            skipped += failed
            # A lone image left by failed decodes is skipped (BN in train mode needs two), unless batches are 1.
            if len(yb) < 1 or (len(yb) == 1 and (loader.batch_size or 1) > 1):
                continue
            loss = self.train_step(xb, yb, optimizer, scaler)
            loss_sum += float(loss) * len(yb)
            seen += len(yb)
            step_times.append(time.monotonic() - t0)
            recent = step_times[-20:]
            per_step = sum(recent) / len(recent)
            remaining = (steps - step) + (cfg.epochs - epoch) * steps
            emit(
                self.observers,
                StepProgress(
                    task_name, epoch, step, steps, float(loss), len(yb) / max(per_step, 1e-9), remaining * per_step
                ),
            )
        return loss_sum, seen, skipped, paused_s

    def _halve_batch(self, task_name: str, data: TaskData, loader: DataLoader) -> DataLoader:
        """Out of GPU memory: retry the epoch with half the batch, telling the user (down to one image)."""
        old = loader.batch_size or 1
        if old <= 1:
            raise CLStudioError(
                "Out of GPU memory even with one image per batch. Choose a smaller image size, or --device cpu."
            )
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        self.batch_size = old // 2
        emit(
            self.observers,
            Warning(
                f"'{task_name}': out of GPU memory at batch size {old}; "
                f"retrying the epoch with batch size {self.batch_size}."
            ),
        )
        state = loader.generator.get_state()
        smaller = self.loader(data.root, data.train, train=True)
        smaller.generator.set_state(state)
        return smaller

    # --- checkpoints ---------------------------------------------------------------------------------
    def _save_checkpoint(
        self,
        path: Path,
        signature: str,
        epoch: int,
        best_acc: float,
        best_loss: float,
        best_epoch: int,
        best_state: dict | None,
        skipped: int,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        scaler: torch.amp.GradScaler,
        loader: DataLoader,
    ) -> None:
        checkpoint.save(
            path,
            checkpoint.TrainingState(
                epoch=epoch,
                best_acc=best_acc,
                best_loss=best_loss,
                best_epoch=best_epoch,
                skipped=skipped,
                current=self.strategy.snapshot(),
                best=best_state,
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                scaler=scaler.state_dict(),
                torch_rng=torch.get_rng_state(),
                data_rng=loader.generator.get_state(),
                signature=signature,
            ),
        )

    def _resume(
        self,
        path: Path | None,
        signature: str,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        scaler: torch.amp.GradScaler,
        loader: DataLoader,
    ) -> checkpoint.TrainingState | None:
        if path is None or not path.exists():
            return None
        try:
            state = checkpoint.load(path)
        except CLStudioError:
            return None  # a damaged checkpoint costs the progress it held, never the task
        if state.signature != signature:
            return None
        self.strategy.restore(state.current)
        optimizer.load_state_dict(state.optimizer)
        scheduler.load_state_dict(state.scheduler)
        if state.scaler:
            scaler.load_state_dict(state.scaler)
        torch.set_rng_state(state.torch_rng)
        loader.generator.set_state(state.data_rng)
        return state

    # --- training ------------------------------------------------------------------------------------
    def fit(
        self,
        task_name: str,
        task_id: str,
        data: TaskData,
        seed: int = 0,
        checkpoint: Path | None = None,
        signature: str = "",
    ) -> FitResult:
        """Train one new task. Raises Cancelled (the strategy is then left dirty: the caller rolls back).

        With ``checkpoint``, the training state is saved there after every epoch, and a checkpoint already
        there with the same ``signature`` is resumed from its last completed epoch."""
        cfg = self.strategy.config
        self.batch_size = 0
        self._task = task_name
        torch.manual_seed(seed)  # head init and augmentation draw from the global generator
        self.strategy.begin_task(task_id, data.num_classes)
        params = [p for p in self.strategy.trainable_parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
        # Paper: step = 60 // 3 = 20. Rounded up, so a short run (5 epochs) does not decay every epoch.
        step_size = max(1, math.ceil(cfg.epochs / max(1, cfg.lr_steps)))
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=0.1)
        use_scaler = self.device.type == "cuda" and not torch.cuda.is_bf16_supported()
        scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        train_loader = self.loader(data.root, data.train, train=True, seed=seed)
        val_loader = self.loader(data.root, data.val, train=False)
        steps = len(train_loader)
        emit(self.observers, TaskStarted(task_name, cfg.epochs, steps, str(self.device)))

        start = time.monotonic()
        paused_s = 0.0
        best_acc, best_loss, best_epoch, best_state = -1.0, float("inf"), 0, None
        step_times: list[float] = []
        skipped_total = 0
        first_epoch = 1
        resumed = self._resume(checkpoint, signature, optimizer, scheduler, scaler, train_loader)
        if resumed is not None:
            first_epoch = resumed.epoch + 1
            best_acc, best_loss, best_epoch, best_state = (
                resumed.best_acc,
                resumed.best_loss,
                resumed.best_epoch,
                resumed.best,
            )
            skipped_total = resumed.skipped
            emit(self.observers, TaskResumed(task_name, resumed.epoch))
        epoch = first_epoch - 1
        stopped_early = resumed is not None and resumed.epoch - resumed.best_epoch > cfg.patience
        head = {id(p) for p in self.strategy.head.parameters()} if self.strategy.head is not None else set()
        warmup = getattr(cfg, "head_warmup", 0)
        for epoch in range(first_epoch, cfg.epochs + 1 if not stopped_early else first_epoch):
            # Head warm-up (linear probe, then the rest: Kumar et al. 2022): while the head is random, its
            # gradients would push the adapters in arbitrary directions; the backbone pass is also cheaper.
            for p in params:
                if id(p) not in head:
                    p.requires_grad_(epoch > warmup)
            self.strategy.set_train_mode()
            while True:
                try:
                    loss_sum, seen, skipped, paused = self._train_epoch(
                        task_name, epoch, train_loader, optimizer, scaler, step_times
                    )
                    break
                except torch.OutOfMemoryError:
                    train_loader = self._halve_batch(task_name, data, train_loader)
            paused_s += paused
            lr_used = optimizer.param_groups[0]["lr"]
            scheduler.step()
            val_acc, val_loss = self.accuracy_and_loss(val_loader, task_name)
            # A small validation set ties often (20 images: 5 % steps); a tie goes to the lower loss, else the
            # first, barely trained epoch would win every tie ('faithful': strictly greater accuracy only).
            tie_better = cfg.break_ties_by_loss and val_acc == best_acc and val_loss < best_loss
            if val_acc > best_acc or tie_better or not cfg.keep_best:
                best_acc, best_loss, best_epoch, best_state = val_acc, val_loss, epoch, self.strategy.snapshot()
            skipped_total += skipped
            emit(
                self.observers,
                EpochEnded(
                    task_name,
                    epoch,
                    cfg.epochs,
                    loss_sum / max(seen, 1),
                    val_acc,
                    best_acc,
                    best_epoch,
                    lr_used,
                    skipped,
                ),
            )
            if checkpoint is not None:
                self._save_checkpoint(
                    checkpoint,
                    signature,
                    epoch,
                    best_acc,
                    best_loss,
                    best_epoch,
                    best_state,
                    skipped_total,
                    optimizer,
                    scheduler,
                    scaler,
                    train_loader,
                )
            if epoch - best_epoch > cfg.patience:
                break
        for p in params:
            p.requires_grad_(True)
        if best_state is not None:
            self.strategy.restore(best_state)
        self.strategy.end_task(task_id)
        return FitResult(best_acc, best_epoch, epoch, time.monotonic() - start - paused_s, skipped_total)
