"""Training augmentations: the same size and dtype out as in, reproducible from a generator, and 'strong'
within its stated ranges (crop of 25-100 % of the area, brightness and contrast ±25 %)."""

from __future__ import annotations

import pytest
import torch

from clstudio.engine.data.dataset import AUGMENTATIONS, augment_strong


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_shape_dtype_and_reproducible(name):
    img = torch.randint(0, 256, (3, 40, 40), dtype=torch.uint8)
    aug = AUGMENTATIONS[name]
    a = aug(img, torch.Generator().manual_seed(3))
    b = aug(img, torch.Generator().manual_seed(3))
    assert a.shape == img.shape and a.dtype == torch.uint8
    assert torch.equal(a, b)


def test_strong_brightness_and_contrast_stay_in_range():
    flat = torch.full((3, 32, 32), 100, dtype=torch.uint8)  # crops and flips leave a flat image flat
    g = torch.Generator().manual_seed(0)
    values = {int(augment_strong(flat, g).float().mean().round()) for _ in range(200)}
    assert min(values) >= 75 and max(values) <= 125  # brightness ×0.75-1.25
    assert max(values) - min(values) > 30  # and it really varies


def test_strong_crops_zoom_in():
    # A white left half: how much white a crop shows depends on where it falls and how large it is.
    img = torch.zeros(3, 64, 64, dtype=torch.uint8)
    img[:, :, :32] = 255
    g = torch.Generator().manual_seed(1)
    shares = [float((augment_strong(img, g) > 127).float().mean()) for _ in range(100)]
    assert len({round(s, 2) for s in shares}) > 10  # crops differ in place and size
    assert any(s > 0.9 for s in shares) or any(s < 0.1 for s in shares)  # some crops fall inside one half
