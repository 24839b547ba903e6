"""Shared test helpers: quick training of a strategy on random tensors, and hashing of tensors."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import torch
import torch.nn.functional as F

from clstudio.engine.models.backbones import create_backbone
from clstudio.engine.strategies import create_strategy
from clstudio.engine.strategies.registry import make_config


def make_strategy(name: str, backbone: str, **config):
    bb = create_backbone(backbone, weights="random")
    return create_strategy(name, bb, make_config(name, config), "cpu")


def train_steps(strategy, task_id: str, num_classes: int, steps: int = 3, size: int = 32, seed: int = 0) -> None:
    """A few Adam steps of a new task on random data: enough to move every trainable tensor."""
    g = torch.Generator().manual_seed(seed)
    strategy.begin_task(task_id, num_classes)
    opt = torch.optim.Adam([p for p in strategy.trainable_parameters() if p.requires_grad], lr=1e-2)
    for _ in range(steps):
        strategy.set_train_mode()
        x = torch.randn(8, 3, size, size, generator=g)
        y = torch.randint(0, num_classes, (8,), generator=g)
        loss = F.cross_entropy(strategy.forward(x), y)
        reg = strategy.regularization()
        if reg is not None:
            loss = loss + reg
        opt.zero_grad()
        loss.backward()
        opt.step()
    strategy.end_task(task_id)


@torch.no_grad()
def logits(strategy, task_id: str, x: torch.Tensor) -> torch.Tensor:
    strategy.activate_task(task_id)
    strategy.eval()
    return strategy.forward(x).clone()


def tensor_hash(tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def clstudio(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    """The real command line, in a subprocess (the test's CLSTUDIO_HOME included)."""
    out = subprocess.run(
        [sys.executable, "-m", "clstudio", *args], capture_output=True, text=True, env={**os.environ}, timeout=timeout
    )
    if check and out.returncode != 0:
        raise AssertionError(f"clstudio {args} exited {out.returncode}:\n{out.stderr}")
    return out
