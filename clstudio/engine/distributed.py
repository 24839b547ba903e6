"""Training on several processes (``torchrun``): the collectives the training methods need, on
``torch.distributed`` (gloo on the CPU, NCCL on CUDA).

Every rank runs the same training; the data of each step is split between them, and what must stay the
same everywhere is made the same by construction, then checked:
- a step's usable-image counts are summed first (``sum_counts``), so each rank scales its loss by its share
  and the summed gradient (``sum_grads``) is the gradient of the whole batch's mean loss, as in one process;
- a cancel on any rank travels with those counts, so every rank stops at the same step;
- what one rank computed alone (a probe fit, BatchNorm running statistics) is broadcast from rank 0;
- at the end of every epoch a digest of what must be identical (trainable weights, SparCL masks, the replay
  buffer, DDR's kept samples) is compared across ranks (``check_same``): a divergence is an error that names
  the ranks, never a silently different model.

Why not ``DistributedDataParallel``'s module wrapper: its reducer expects one forward per backward over a
fixed set of trainable parameters. Rehearsal does three forwards per step (stream, two replay draws) and
masks the gradients between backward and step; the per-task methods change the trainable set between
epochs (head warm-up) and the linear probe has no backward at all. The arithmetic DDP performs — sum the
gradients of the trainable parameters across ranks, in one flat bucket — is what ``sum_grads`` does, once
per step, after backward. A single process uses ``Collective()`` (world size 1), where every method is the
identity, so one-process training is bit for bit what it was.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import torch

from clstudio.engine import storage
from clstudio.engine.errors import CLStudioError

S = TypeVar("S")  # anything sliced like a sequence: a list, a tensor, an array

# Rank 0 evaluates every task alone after each task while the others wait: allow it hours, not minutes.
WAIT_TIMEOUT = datetime.timedelta(hours=6)


class RanksDiverged(CLStudioError):
    pass


class Collective:
    """One process: nothing to exchange."""

    rank = 0
    world_size = 1
    local_rank = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def shard(self, items: S) -> S:
        """This rank's part of an ordered sequence (every world_size-th item from its rank)."""
        return items

    def sum_counts(self, values: Sequence[float]) -> list[float]:
        return [float(v) for v in values]

    def sum_per_rank(self, value: float) -> list[float]:
        """Each rank's ``value``, in rank order."""
        return [float(value)]

    def sum_tensor(self, t: torch.Tensor) -> torch.Tensor:
        """Element-wise sum of ``t`` over the ranks (a new tensor, on ``t``'s device)."""
        return t.clone()

    def sum_grads(self, params: Iterable[torch.nn.Parameter]) -> None:
        pass

    def gather(self, rows: torch.Tensor) -> torch.Tensor:
        """Every rank's ``rows`` (same trailing shape, any count), stacked in rank order."""
        return rows

    def gather_in_order(self, rows: torch.Tensor) -> torch.Tensor:
        """``gather`` of rows computed for ``shard(items)``, put back in the items' order (so a fit over them
        sees what one process would). Where a rank dropped rows (unreadable images) they stay in rank order."""
        return rows

    def broadcast_(self, tensors: Iterable[torch.Tensor]) -> None:
        """Overwrite ``tensors`` in place with rank 0's."""

    def broadcast_object(self, obj: Any) -> Any:
        return obj

    def check_same(self, what: str, tensors: Iterable[torch.Tensor]) -> str:
        """Digest of ``tensors``; with several ranks, an error unless every rank has the same one."""
        return digest(tensors)

    def close(self) -> None:
        pass


class TorchCollective(Collective):
    """The ranks of a ``torchrun`` launch (RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous in the environment)."""

    def __init__(self, device: str) -> None:
        import torch.distributed as dist

        self.dist = dist
        self.rank, self.world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        cuda = device.startswith("cuda")
        if cuda:
            torch.cuda.set_device(self.local_rank)
        self.device = torch.device(f"cuda:{self.local_rank}" if cuda else "cpu")
        if not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo", timeout=WAIT_TIMEOUT)
        if not self.is_main:
            storage.forbid_writes(f"rank {self.rank} of a distributed run: only rank 0 writes the project")

    def shard(self, items: S) -> S:
        return items[self.rank :: self.world_size]  # type: ignore[index]

    def sum_counts(self, values: Sequence[float]) -> list[float]:
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)
        self.dist.all_reduce(t)
        return t.tolist()

    def sum_tensor(self, t: torch.Tensor) -> torch.Tensor:
        out = t.detach().to(self.device, copy=True)
        self.dist.all_reduce(out)
        return out.to(t.device)

    def sum_grads(self, params: Iterable[torch.nn.Parameter]) -> None:
        ps = [p for p in params if p.requires_grad]
        if not ps:
            return
        for p in ps:
            if p.grad is None:  # a rank whose step had no usable image still joins with zeros
                p.grad = torch.zeros_like(p)
        grads = [p.grad for p in ps if p.grad is not None]
        flat = torch.cat([g.reshape(-1).to(torch.float32) for g in grads]).to(self.device)
        self.dist.all_reduce(flat)
        offset = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[offset : offset + n].view_as(g))
            offset += n

    def gather(self, rows: torch.Tensor) -> torch.Tensor:
        counts = [int(c) for c in self.sum_per_rank(len(rows))]
        width = max(counts)
        padded = torch.zeros((width, *rows.shape[1:]), dtype=rows.dtype, device=self.device)
        padded[: len(rows)] = rows.to(self.device)
        out = [torch.empty_like(padded) for _ in range(self.world_size)]
        self.dist.all_gather(out, padded)
        return torch.cat([o[:c] for o, c in zip(out, counts, strict=True)]).cpu()

    def gather_in_order(self, rows: torch.Tensor) -> torch.Tensor:
        counts = [int(c) for c in self.sum_per_rank(len(rows))]
        stacked = self.gather(rows)
        total, n = sum(counts), self.world_size
        if counts != [len(range(r, total, n)) for r in range(n)]:
            return stacked
        out = torch.empty_like(stacked)
        out[torch.cat([torch.arange(r, total, n) for r in range(n)])] = stacked
        return out

    def sum_per_rank(self, value: float) -> list[float]:
        t = torch.zeros(self.world_size, dtype=torch.float64, device=self.device)
        t[self.rank] = float(value)
        self.dist.all_reduce(t)
        return t.tolist()

    def broadcast_(self, tensors: Iterable[torch.Tensor]) -> None:
        for t in tensors:
            if t.device == self.device:
                self.dist.broadcast(t, src=0)
            else:  # e.g. CPU-side state under NCCL: go through the communication device
                tmp = t.to(self.device)
                self.dist.broadcast(tmp, src=0)
                t.copy_(tmp)

    def broadcast_object(self, obj: Any) -> Any:
        box = [obj]
        self.dist.broadcast_object_list(box, src=0)
        return box[0]

    def check_same(self, what: str, tensors: Iterable[torch.Tensor]) -> str:
        mine = digest(tensors)
        every: list[Any] = [None] * self.world_size
        self.dist.all_gather_object(every, mine)
        differ = [r for r, d in enumerate(every) if d != every[0]]
        if differ:
            raise RanksDiverged(
                f"Distributed training went out of step: {what} on rank(s) {', '.join(map(str, differ))} differ "
                f"from rank 0's. The task stays untrained; please report this with the command you ran."
            )
        return mine

    def close(self) -> None:
        if not self.dist.is_initialized():
            return
        try:
            # Leave together: a rank tearing its group down while another still talks to it aborts in gloo.
            self.dist.barrier()
        except RuntimeError:
            pass  # a peer is gone already; nothing left to wait for
        self.dist.destroy_process_group()


def digest(tensors: Iterable[torch.Tensor]) -> str:
    """SHA-256 of the tensors' bytes in order (short hex): equal exactly when every value is."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().contiguous().cpu()
        h.update(str(t.dtype).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def from_environment(device: str) -> Collective:
    """The ranks this process belongs to: several under ``torchrun``, else just itself."""
    return TorchCollective(device) if launched_by_torchrun() else Collective()


def is_peer_failure(error: BaseException) -> bool:
    """Whether an exception is a collective that broke because another rank stopped (killed, crashed)."""
    import torch.distributed as dist

    backend_error = getattr(dist, "DistBackendError", ())
    text = str(error).lower()
    return isinstance(error, backend_error) or (
        isinstance(error, RuntimeError)
        and any(s in text for s in ("connection closed", "connection reset", "gloo", "nccl", "broken pipe"))
    )
