"""Torch datasets over a task's file index, with a decode cache and light augmentation.

Preprocessing is the paper's: Resize((S, S)) without keeping the aspect ratio, then normalise with the
backbone's mean/std. Decoded, resized uint8 images are cached in RAM (up to a byte budget), so epochs
after the first skip JPEG decoding, which otherwise dominates CPU training of a frozen backbone.
A file that fails to decode at training time (deleted or replaced since the scan) never raises: it is
dropped from its batch and counted.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from clstudio.engine.data.decode import DecodeError, decode_rgb


@dataclass(frozen=True)
class Preprocessing:
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: str = "square"  # Resize((S,S)) as the CLR code; recorded so a reader knows

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessing:
        return cls(int(d["image_size"]), tuple(d["mean"]), tuple(d["std"]), str(d.get("resize", "square")))

    def normalise(self, images_uint8: torch.Tensor) -> torch.Tensor:
        """[N,3,H,W] uint8 → float, (x/255 − mean) / std."""
        mean = torch.tensor(self.mean, device=images_uint8.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=images_uint8.device).view(1, 3, 1, 1)
        x = (images_uint8.float() / 255.0 - mean) / std
        return x.contiguous(memory_format=torch.channels_last)  # the layout the strategies' convs use


class DecodeCache:
    """Thread-safe map path → uint8 CHW tensor, bounded in bytes (first come, first kept)."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        self.used = 0
        self._items: dict[str, torch.Tensor] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> torch.Tensor | None:
        return self._items.get(key)

    def put(self, key: str, value: torch.Tensor) -> None:
        size = value.numel()
        with self._lock:
            if key not in self._items and self.used + size <= self.budget:
                self._items[key] = value
                self.used += size


def load_uint8(path: str, size: int) -> torch.Tensor:
    """Decode to a uint8 [3, size, size] tensor (raises DecodeError)."""
    # numpy's single-threaded copy: torch's parallel one wakes its thread pool, ~2 ms of one image's latency
    return torch.from_numpy(np.ascontiguousarray(decode_rgb(path, size).transpose(2, 0, 1)))


def _resized_crop(img: torch.Tensor, ch: int, cw: int, generator: torch.Generator | None) -> torch.Tensor:
    """A ch × cw window at a random place, resized back to the image's size (bilinear); float, unrounded."""
    _, h, w = img.shape
    top = int(torch.randint(0, h - ch + 1, (1,), generator=generator))
    left = int(torch.randint(0, w - cw + 1, (1,), generator=generator))
    crop = img[:, top : top + ch, left : left + cw].float()
    if (ch, cw) == (h, w):
        return crop
    return F.interpolate(crop[None], size=(h, w), mode="bilinear", align_corners=False)[0]


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.round().clamp(0, 255).to(torch.uint8)


def augment_light(img: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random square crop of 80-100 % of the side, resized back, and a horizontal flip half the time."""
    _, h, w = img.shape
    scale = 0.8 + 0.2 * torch.rand(1, generator=generator).item()
    ch, cw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    crop = _to_uint8(_resized_crop(img, ch, cw, generator))
    if torch.rand(1, generator=generator).item() < 0.5:
        crop = crop.flip(-1)
    return crop


def augment_crop_pad(img: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """CIFAR's RandomCrop(S, padding=S/8) + horizontal flip (SparCL / mammoth): zero-pad, crop back to S."""
    _, h, w = img.shape
    pad = max(1, h // 8)
    padded = F.pad(img, (pad, pad, pad, pad))
    top = int(torch.randint(0, 2 * pad + 1, (1,), generator=generator))
    left = int(torch.randint(0, 2 * pad + 1, (1,), generator=generator))
    crop = padded[:, top : top + h, left : left + w]
    if torch.rand(1, generator=generator).item() < 0.5:
        crop = crop.flip(-1)
    return crop.contiguous()


def augment_strong(img: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Inception-style random-resized crop (25-100 % of the area, aspect 3:4-4:3), a horizontal flip half
    the time, and brightness / contrast scaled by up to ±25 %: for a network that adapts its features on a
    small folder. Measured on Fashion-MNIST at 30 images per class, it did not make CLR's adapters carry to
    new images (README, CLR item 8), so it is an option, not the default."""
    _, h, w = img.shape
    u = torch.rand(4, generator=generator).tolist()
    area = (0.25 + 0.75 * u[0]) * h * w
    aspect = math.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * u[1])
    ch = max(1, min(h, int(round(math.sqrt(area / aspect)))))
    cw = max(1, min(w, int(round(math.sqrt(area * aspect)))))
    x = _resized_crop(img, ch, cw, generator)
    if u[2] < 0.5:
        x = x.flip(-1)
    brightness, contrast = 0.75 + 0.5 * u[3], 0.75 + 0.5 * torch.rand(1, generator=generator).item()
    mean = x.mean()
    return _to_uint8((x - mean) * contrast + mean * brightness)


AUGMENTATIONS = {"light": augment_light, "crop_pad": augment_crop_pad, "strong": augment_strong}


class ImageListDataset(Dataset):
    """(path, label) items → (uint8 image [3,S,S], label); label −1 marks a file that failed to decode."""

    def __init__(
        self,
        root: str | Path,
        items: list[tuple[str, int]],
        image_size: int,
        augment: str = "none",
        cache: DecodeCache | None = None,
    ) -> None:
        self.root = Path(root)
        self.items = items
        self.image_size = image_size
        self.augment = augment
        self.cache = cache
        self.failures: dict[str, str] = {}
        self.on_item: Callable[[], object] | None = None  # called before each image (cancel / pause checks)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self.on_item is not None:
            self.on_item()
        rel, label = self.items[index]
        path = str(self.root / rel)
        img = self.cache.get(path) if self.cache else None
        if img is None:
            try:
                img = load_uint8(path, self.image_size)
            except DecodeError as e:
                self.failures[rel] = str(e)
                return torch.zeros(3, self.image_size, self.image_size, dtype=torch.uint8), -1
            if self.cache:
                self.cache.put(path, img)
        if self.augment in AUGMENTATIONS:
            img = AUGMENTATIONS[self.augment](img)
        return img, label


def collate_skip_failed(batch: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Stack a batch, leaving out images that failed to decode; returns (images, labels, n_failed)."""
    good = [(x, y) for x, y in batch if y >= 0]
    failed = len(batch) - len(good)
    if not good:
        return torch.empty(0, 3, 1, 1, dtype=torch.uint8), torch.empty(0, dtype=torch.long), failed
    xs, ys = zip(*good, strict=True)
    return torch.stack(xs), torch.tensor(ys, dtype=torch.long), failed


class RankBatches(Sampler[list[int]]):
    """A distributed run's batches: exactly the one-process loader's (the same permutation from the same
    generator, the same batch boundaries), each cut to this rank's share (every world-th image). So a step
    trains on the same images however many processes share it, and a checkpoint's generator state resumes
    with any number of them."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator, rank: int, world: int) -> None:
        self.n, self.batch_size, self.generator, self.rank, self.world = n, batch_size, generator, rank, world
        self.drop_single = n % batch_size == 1 and n > 1  # as image_loader's drop_last

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_single else -(-self.n // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.n, generator=self.generator).tolist()
        for b in range(len(self)):
            yield order[b * self.batch_size : (b + 1) * self.batch_size][self.rank :: self.world]


def image_loader(
    dataset: ImageListDataset,
    batch_size: int,
    train: bool,
    num_workers: int = 0,
    pin_memory: bool = False,
    seed: int = 0,
    share: tuple[int, int] | None = None,
) -> DataLoader:
    """Batches of (uint8 images, labels, failed count). Training: shuffled by a generator of its own (its state
    is what an epoch checkpoint saves); with ``share`` = (rank, world), this rank's part of each of those
    batches (``RankBatches``); evaluation: in order."""
    generator = torch.Generator().manual_seed(seed) if train else None
    common: dict[str, Any] = dict(
        num_workers=num_workers,
        pin_memory=pin_memory,
        collate_fn=collate_skip_failed,
        persistent_workers=num_workers > 0,
        generator=generator,
    )
    if share is not None and generator is not None:
        return DataLoader(dataset, batch_sampler=RankBatches(len(dataset), batch_size, generator, *share), **common)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train,
        # A last batch of one image breaks BatchNorm in train mode and says little: drop only that case.
        drop_last=train and len(dataset) % batch_size == 1 and len(dataset) > 1,
        **common,
    )
