"""What 'auto' input size (image_size 0) means: the backbone's own, unless the images are small.

Upscaling 28-pixel images to 224 adds no detail, only pixels to compute: on Fashion-MNIST (28 px, one
10-class task, 30 images per class, EfficientNet-Lite0) the linear probe scored the same at 160 as at 224 px
(3 seeds, bench/real_data.py; README) while a forward pass took 2.3x less, and CLR trained in 129 s
instead of 210 s. Below 160 it lost: 128 px about a point, 96 px three to four. So a project whose first
task's images are small trains at 160 px. Larger images (photos) keep the backbone's own size: nothing was
measured for them, and downscaling a photo loses detail.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image

SMALL_IMAGE_SIDE = 64  # px, the longer side at or below which images count as small (MNIST 28, CIFAR 32)
SMALL_IMAGE_INPUT = 160  # px, the input size for small images (measured above)
SAMPLE = 64  # images looked at: the header of each, a few milliseconds in all


def typical_side(root: str | Path, items: Sequence[tuple[str, int]], sample: int = SAMPLE) -> int | None:
    """The median longer side, in pixels, of up to ``sample`` evenly spaced images (headers only, no
    decoding); None when none of them can be read."""
    if not items:
        return None
    step = max(1, len(items) // sample)
    sides = []
    for rel, _ in list(items)[::step][:sample]:
        try:
            with Image.open(Path(root) / rel) as img:
                sides.append(max(img.size))
        except (OSError, ValueError):
            continue  # the scan reported unreadable files; one more changes nothing here
    if not sides:
        return None
    sides.sort()
    return sides[len(sides) // 2]


def auto_input_size(native: int, side: int | None) -> int:
    """The input size 'auto' stands for: ``native`` (the backbone's), or SMALL_IMAGE_INPUT for images no
    larger than SMALL_IMAGE_SIDE on a backbone made for larger inputs (never upwards: CIFAR nets keep 32)."""
    if side is not None and side <= SMALL_IMAGE_SIDE and native > SMALL_IMAGE_INPUT:
        return SMALL_IMAGE_INPUT
    return native
