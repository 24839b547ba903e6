"""Generated image folders: the bundled demo, the tests and the benchmarks' smoke runs.

Each class is a simple visual concept (a shape, a colour, a stripe direction) drawn with random
position, size, colour jitter and noise, so a tiny network can learn it in seconds and a pretrained one
at once. Deterministic for a given seed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")
COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 80, 220)}
STRIPES = ("horizontal", "vertical")


def _canvas(rng: np.random.Generator, size: int) -> Image.Image:
    base = rng.integers(90, 170, size=3)
    noise = rng.normal(0, 12, size=(size, size, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


def draw(concept: str, rng: np.random.Generator, size: int = 64) -> Image.Image:
    img = _canvas(rng, size)
    d = ImageDraw.Draw(img)
    r = int(rng.integers(size // 5, size // 3))
    cx, cy = (int(v) for v in rng.integers(r, size - r, size=2))
    colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
    if concept in COLOURS:
        colour = tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in COLOURS[concept])
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif concept == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif concept == "square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif concept == "triangle":
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    elif concept in STRIPES:
        step = int(rng.integers(6, 10))
        for k in range(int(rng.integers(0, step)), size, step):
            line = [(0, k), (size, k)] if concept == "horizontal" else [(k, 0), (k, size)]
            d.line(line, fill=colour, width=max(2, step // 2))
    else:
        # Any other name: a blob in a colour derived from the name, so differently named classes differ.
        seed = int.from_bytes(hashlib.sha1(concept.encode()).digest()[:4], "big")
        base = np.random.default_rng(seed).integers(0, 256, size=3)
        d.ellipse(
            [cx - r, cy - r, cx + r, cy + r], fill=tuple(int(np.clip(c + rng.integers(-20, 21), 0, 255)) for c in base)
        )
    return img


def make_task_folder(
    root: str | Path, concepts: tuple[str, ...], per_class: int = 20, size: int = 64, seed: int = 0, ext: str = "png"
) -> Path:
    """Write root/<concept>/<i>.<ext> for each concept; returns root."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for concept in concepts:
        folder = root / concept
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw(concept, rng, size).save(folder / f"{concept}_{i:03d}.{ext}")
    return root


def make_demo(root: str | Path, per_class: int = 30) -> list[Path]:
    """The bundled demo: two tasks, 'shapes' and 'colours'."""
    root = Path(root)
    return [
        make_task_folder(root / "shapes", SHAPES, per_class, seed=1),
        make_task_folder(root / "colours", tuple(COLOURS), per_class, seed=2),
    ]
