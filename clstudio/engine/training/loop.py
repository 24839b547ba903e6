"""The one training loop: a task's epochs, with events, cancel and pause checked every batch (and every
image), epoch checkpoints with bit-identical resume, and out-of-memory back-off.

What happens inside an epoch is a ``TrainingMethod``'s business: ``per_task.py`` (a head per task: Adam,
StepLR, best epoch, early stop) and ``rehearsal.py`` (one growing head, replay, SparCL's masks). A method
never emits progress or epoch events, never writes files and never catches an out-of-memory error: the
loop does all of that once, for every strategy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from clstudio.engine import checkpoint as ckpt
from clstudio.engine.cancel import CancelToken, PauseToken
from clstudio.engine.data.dataset import DecodeCache, Preprocessing
from clstudio.engine.distributed import Collective
from clstudio.engine.errors import Cancelled, CLStudioError
from clstudio.engine.events import (
    EpochEnded,
    Event,
    ModelLive,
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
from clstudio.engine.sync_batchnorm import synchronise_batchnorm

TensorDict = dict[str, torch.Tensor]


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


@dataclass(frozen=True)
class EpochOutcome:
    val_acc: float
    best_acc: float
    best_epoch: int
    lr: float  # the learning rate the epoch trained with (0: not a gradient method)
    skipped: int  # images that failed to decode in this epoch
    train_loss: float | None = None  # set by a method whose loss is not the mean of its steps' (the probe's fit)


class TrainingMethod:
    """How one task trains, epoch by epoch. The loop calls, in order: ``begin``; then per epoch
    ``start_epoch``, ``batches`` (each through ``step``), ``end_epoch``, ``after_epoch``; ``finish``.
    ``state`` / ``load_state`` hold everything that makes a resumed run continue bit for bit."""

    epochs: int = 0
    task_name = ""  # the task in training, for a method's own events (set by the loop)
    allow_fp16 = True  # fp16 autocast needs a loss scaler; a method without one sets False (bf16 or fp32)
    dist: Collective = Collective()  # the ranks training together (distributed.py); one process by default

    def __init__(self, strategy: Strategy, prep: Preprocessing, cache: DecodeCache) -> None:
        self.strategy = strategy
        self.prep = prep
        self.cache = cache  # decoded images, shared with evaluation and replay
        self.device = strategy.device
        self.loop: TrainingLoop | None = None

    def emit(self, event: Event) -> None:
        if self.loop is not None:
            emit(self.loop.observers, event)

    def check(self) -> float:
        """Cancel / pause checkpoint for a method's inner loops (per image, per evaluation batch)."""
        return self.loop.check() if self.loop is not None else 0.0

    # --- the hooks -----------------------------------------------------------------------------------
    def begin(self, task_id: str, data: TaskData, seed: int) -> None:
        raise NotImplementedError

    def steps_per_epoch(self) -> int:
        raise NotImplementedError

    def start_epoch(self, epoch: int) -> None:
        """Before an epoch's first batch (epoch is 1-based)."""

    def batches(self, epoch: int) -> Iterable[Any]:
        raise NotImplementedError

    def step(self, batch: Any) -> tuple[float, int] | None:
        """One optimiser step; (loss, images trained on), or None when the batch had too few usable images."""
        raise NotImplementedError

    def batch_size(self) -> int:
        """Images per training step now."""
        raise NotImplementedError

    def set_batch_size(self, size: int) -> None:
        """Out of memory: use ``size`` for the rest of the task; the epoch restarts with it."""
        raise NotImplementedError

    def end_epoch(self, epoch: int) -> EpochOutcome:
        raise NotImplementedError

    def live_model(self) -> tuple[str, float] | None:
        """After ``start_epoch``: (kind, validation accuracy) when the network now holds a usable model of the
        task that should be saved for Classify before training goes on (CLR's probe head); else None."""
        return None

    def after_epoch(self, epoch: int) -> None:
        """After EpochEnded went out and before the checkpoint (a method's own per-epoch events)."""

    def finished(self, epoch: int) -> bool:
        """True to stop after ``epoch`` (early stop)."""
        return False

    def finish(self, last_epoch: int, seconds: float) -> FitResult:
        raise NotImplementedError

    def state(self) -> tuple[TensorDict, dict[str, Any]]:
        raise NotImplementedError

    def load_state(self, tensors: TensorDict, meta: dict[str, Any]) -> None:
        raise NotImplementedError

    def must_agree(self) -> TensorDict:
        """What every rank must hold identically after an epoch (checked by the loop when distributed):
        the trainable weights, and a method's own shared decisions (masks, buffer, kept samples)."""
        weights = {f"p{i}": p for i, p in enumerate(self.strategy.trainable_parameters())}
        return {**weights, **{f"b{i}": b for i, b in enumerate(self.strategy.features.buffers())}}

    def epoch_seed(self, seed: int, epoch: int) -> None:
        """Distributed: each rank draws its own augmentation, reproducibly per (seed, epoch, rank), also
        after a resume. One process keeps the global generator's single stream (and its checkpoint)."""
        if self.dist.active:
            torch.manual_seed((seed * 1_000_003 + epoch) * 65_537 + self.dist.rank)


class TrainingLoop:
    def __init__(
        self,
        method: TrainingMethod,
        observers: Sequence[Observer] = (),
        cancel: CancelToken | None = None,
        pause: PauseToken | None = None,
    ) -> None:
        self.method = method
        self.observers: list[Observer] = list(observers)
        self.cancel = cancel or CancelToken()
        self.pause = pause or PauseToken()
        self._task = ""
        method.loop = self

    def check(self) -> float:
        """Cancel/pause checkpoint; returns seconds spent paused. Distributed, a cancel takes effect only at
        the step boundary, together on every rank (``_step_check``): a rank that stopped alone mid-step
        would leave the others waiting in a collective."""
        if not self.method.dist.active:
            self.cancel.raise_if_cancelled()
        if not self.pause.paused:
            return 0.0
        emit(self.observers, Paused(self._task))
        waited = self.pause.wait_if_paused(self.cancel)
        emit(self.observers, Resumed(self._task))
        return waited

    def fit(
        self,
        task_name: str,
        task_id: str,
        data: TaskData,
        seed: int = 0,
        checkpoint: Path | None = None,
        signature: str = "",
        device: str = "cpu",
        save_live: Callable[[TensorDict, dict[str, str]], None] | None = None,
    ) -> FitResult:
        """Train one new task. Raises Cancelled (the strategy is then left dirty: the caller rolls back).

        With ``checkpoint``, the training state is saved there after every epoch, and a checkpoint already
        there with the same ``signature`` is resumed from its last completed epoch. ``save_live`` stores a
        usable model the method has before training ends (its per-task tensors and what it is)."""
        m = self.method
        self._task = m.task_name = task_name
        synchronise_batchnorm(m.strategy.features, m.dist)  # whole-batch statistics across ranks
        m.begin(task_id, data, seed)
        emit(self.observers, TaskStarted(task_name, m.epochs, m.steps_per_epoch(), device))
        start, paused_s = time.monotonic(), 0.0
        step_times: list[float] = []
        last = self._resume(checkpoint, signature)
        dist = m.dist
        found = dist.sum_per_rank(last)
        if len(set(found)) > 1:
            raise CLStudioError(
                f"The processes of this run found different checkpoints of '{task_name}' (last epochs by rank: "
                f"{', '.join(str(int(e)) for e in found)}): every machine must see the same project folder."
            )
        checks = 0
        if last < 0:  # a checkpoint that could not be applied: start over from a clean begin
            m.begin(task_id, data, seed)
            last = 0
        if last:
            emit(self.observers, TaskResumed(task_name, last))
        if not (last and m.finished(last)):
            for epoch in range(last + 1, m.epochs + 1):
                m.epoch_seed(seed, epoch)
                m.start_epoch(epoch)
                live = m.live_model()
                if live is not None and save_live is not None:
                    kind, val_acc = live
                    seconds = time.monotonic() - start - paused_s
                    if dist.is_main:
                        facts = {"model": kind, "val_acc": f"{val_acc:.6f}", "seconds": f"{seconds:.2f}"}
                        save_live(m.strategy.current_task_state(), facts)
                    emit(self.observers, ModelLive(task_name, kind, val_acc, seconds))
                while True:
                    try:
                        loss_sum, seen, paused = self._epoch(task_name, epoch, step_times)
                        break
                    except torch.OutOfMemoryError:
                        if dist.active:  # the ranks cannot agree on a retry mid-epoch
                            raise CLStudioError(
                                f"Out of GPU memory on rank {dist.rank} (batch {m.batch_size()} per process). "
                                "Use a smaller --batch-size or image size; the last epoch checkpoint is kept."
                            ) from None
                        self._back_off(task_name)
                paused_s += paused
                out = m.end_epoch(epoch)
                if dist.active:
                    dist.check_same(f"the weights after epoch {epoch}", m.must_agree().values())
                    checks += 1
                emit(
                    self.observers,
                    EpochEnded(
                        task_name,
                        epoch,
                        m.epochs,
                        out.train_loss if out.train_loss is not None else loss_sum / max(seen, 1),
                        out.val_acc,
                        out.best_acc,
                        out.best_epoch,
                        out.lr,
                        out.skipped,
                    ),
                )
                m.after_epoch(epoch)
                if checkpoint is not None and dist.is_main:
                    tensors, meta = m.state()
                    ckpt.save(checkpoint, ckpt.TrainingState(epoch, signature, tensors, meta))
                last = epoch
                if m.finished(epoch):
                    break
        result = m.finish(last, time.monotonic() - start - paused_s)
        if dist.active:
            result.extra["distributed"] = {"processes": dist.world_size, "epochs_checked_identical": checks}
        return result

    def _epoch(self, task_name: str, epoch: int, step_times: list[float]) -> tuple[float, int, float]:
        """One pass over the method's batches; returns (loss sum, images seen, seconds paused)."""
        m = self.method
        steps = m.steps_per_epoch()
        loss_sum, seen, paused_s = 0.0, 0, 0.0
        for step, batch in enumerate(m.batches(epoch), start=1):
            paused_s += self.check()
            if m.dist.active and m.dist.sum_counts([self.cancel.cancelled])[0]:
                raise Cancelled()  # some rank was asked to stop: all stop at this step
            t0 = time.monotonic()
            out = m.step(batch)
            if out is None:
                continue
            loss, images = out
            loss_sum += loss * images
            seen += images
            step_times.append(time.monotonic() - t0)
            recent = step_times[-20:]
            per_step = sum(recent) / len(recent)
            remaining = (steps - step) + (m.epochs - epoch) * steps
            emit(
                self.observers,
                StepProgress(task_name, epoch, step, steps, loss, images / max(per_step, 1e-9), remaining * per_step),
            )
        return loss_sum, seen, paused_s

    def _back_off(self, task_name: str) -> None:
        """Out of GPU memory: retry the epoch with half the batch, telling the user (down to one image)."""
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        old = self.method.batch_size()
        if old <= 1:
            raise CLStudioError(
                "Out of GPU memory even with one image per batch. Choose a smaller image size, or --device cpu."
            )
        self.method.set_batch_size(old // 2)
        emit(
            self.observers,
            Warning(
                f"'{task_name}': out of GPU memory at batch size {old}; retrying the epoch with batch size {old // 2}."
            ),
        )

    def _resume(self, path: Path | None, signature: str) -> int:
        """Restore a checkpoint made for this very training; returns its last completed epoch (0: none,
        −1: one was half applied and the method must begin again)."""
        if path is None or not path.exists():
            return 0
        try:
            state = ckpt.load(path)
        except CLStudioError:
            return 0  # a damaged checkpoint costs the progress it held, never the task
        if state.signature != signature:
            return 0
        try:
            self.method.load_state(state.tensors, state.meta)
        except (KeyError, ValueError, TypeError, RuntimeError):
            return -1  # written by another version of the method
        return state.epoch
