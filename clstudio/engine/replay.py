"""The rehearsal buffer (sparcl.md §6, mammoth's reservoir): every presented current-task sample is offered;
reads draw a batch uniformly without replacement.

It stores *references* (task number, index in that task's training list), the global label and, for DER++,
the unmasked logits of the step that inserted it, never decoded images: the project then keeps a 500-sample
buffer in a few kilobytes and it survives a restart. The head grows with every task, so each stored logit
row remembers its width and DER++ compares only the columns that existed when it was stored.
"""

from __future__ import annotations

import torch

TensorDict = dict[str, torch.Tensor]


class ReservoirBuffer:
    def __init__(self, capacity: int, generator: torch.Generator | None = None) -> None:
        self.capacity = capacity
        self.seen = 0
        self.task = torch.zeros(0, dtype=torch.int64)
        self.item = torch.zeros(0, dtype=torch.int64)
        self.label = torch.zeros(0, dtype=torch.int64)
        self.logits = torch.zeros(0, 0)
        self.width = torch.zeros(0, dtype=torch.int64)
        self.generator = generator or torch.Generator().manual_seed(0)

    def __len__(self) -> int:
        return len(self.label)

    def add(self, task: int, items: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor) -> None:
        """Reservoir sampling over every presentation (duplicates across epochs are possible, as in mammoth)."""
        logits = logits.detach().float().cpu()
        self._widen(logits.shape[1])
        for i in range(len(labels)):
            if len(self) < self.capacity:
                slot = len(self)
                self._append_empty()
            else:
                r = int(torch.randint(0, self.seen + 1, (1,), generator=self.generator))
                slot = r if r < self.capacity else -1
            self.seen += 1
            if slot < 0:
                continue
            self.task[slot], self.item[slot], self.label[slot] = task, int(items[i]), int(labels[i])
            self.logits[slot].zero_()
            self.logits[slot, : logits.shape[1]] = logits[i]
            self.width[slot] = logits.shape[1]

    def sample(self, size: int) -> torch.Tensor:
        """Indices of a batch drawn uniformly without replacement."""
        n = min(size, len(self))
        return torch.randperm(len(self), generator=self.generator)[:n]

    def _append_empty(self) -> None:
        self.task = torch.cat([self.task, torch.zeros(1, dtype=torch.int64)])
        self.item = torch.cat([self.item, torch.zeros(1, dtype=torch.int64)])
        self.label = torch.cat([self.label, torch.zeros(1, dtype=torch.int64)])
        self.width = torch.cat([self.width, torch.zeros(1, dtype=torch.int64)])
        self.logits = torch.cat([self.logits, torch.zeros(1, self.logits.shape[1])])

    def _widen(self, width: int) -> None:
        if width > self.logits.shape[1]:
            pad = torch.zeros(len(self), width - self.logits.shape[1])
            self.logits = torch.cat([self.logits, pad], dim=1)

    # --- persistence (part of the strategy's shared state) -----------------------------------------------
    def state(self) -> TensorDict:
        return {
            "buffer::task": self.task.clone(),
            "buffer::item": self.item.clone(),
            "buffer::label": self.label.clone(),
            "buffer::logits": self.logits.clone(),
            "buffer::width": self.width.clone(),
            "buffer::seen": torch.tensor([self.seen], dtype=torch.int64),
            "buffer::rng": self.generator.get_state(),
        }

    def load_state(self, state: TensorDict) -> None:
        self.task, self.item = state["buffer::task"].long(), state["buffer::item"].long()
        self.label, self.width = state["buffer::label"].long(), state["buffer::width"].long()
        self.logits = state["buffer::logits"].float()
        self.seen = int(state["buffer::seen"][0])
        self.generator.set_state(state["buffer::rng"].to(torch.uint8))
