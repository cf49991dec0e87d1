"""shifted_mnist: deterministic from its seed, balanced, disjoint splits, digits where and as large as drawn."""

from __future__ import annotations

import hashlib

import torch

from sslab.data import dataset_info, load_split
from sslab.data.datasets import load_mnist5k
from sslab.data.shifted import CANVAS, INTENSITY, SCALE, render


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.numpy().tobytes()).hexdigest()


def test_same_seed_same_bytes_other_seed_other_bytes():
    digits = load_mnist5k("test").images[:200]
    a, pa = render(digits, seed=7)
    b, pb = render(digits, seed=7)
    c, _ = render(digits, seed=8)
    assert _digest(a) == _digest(b) and torch.equal(pa, pb)
    assert _digest(a) != _digest(c)


def test_each_digit_lies_in_its_box_at_its_scale_and_intensity():
    digits = load_mnist5k("train").images[:300]
    canvases, params = render(digits, seed=3)
    assert canvases.shape == (300, 1, CANVAS, CANVAS) and canvases.dtype == torch.uint8
    sizes, rows, cols, amps = params.T
    assert sizes.min() >= round(28 * SCALE[0]) and sizes.max() <= round(28 * SCALE[1])
    assert amps.min() >= INTENSITY[0] and amps.max() <= INTENSITY[1]
    for i in range(300):
        s, r, c = int(sizes[i]), int(rows[i]), int(cols[i])
        assert 0 <= r and r + s <= CANVAS and 0 <= c and c + s <= CANVAS
        img = canvases[i, 0].float()
        outside = img.clone()
        outside[r:r + s, c:c + s] = 0
        assert outside.sum() == 0  # nothing drawn outside the digit's box
        # a resize keeps the mean brightness: the drawn ink is amp * (s/28)^2 of the original's
        ink = digits[i].float().sum() * amps[i] * (s / 28) ** 2
        assert abs(img.sum() - ink) <= 0.03 * ink + 300, i


def test_splits_balanced_disjoint_and_normalised_as_registered():
    train, test = load_split("shifted_mnist", "train"), load_split("shifted_mnist", "test")
    assert len(train) == 4000 and len(test) == 1000
    assert torch.bincount(train.labels).tolist() == [400] * 10 and torch.bincount(test.labels).tolist() == [100] * 10
    src_train = {_digest(x) for x in load_mnist5k("train").images}
    assert not any(_digest(x) in src_train for x in load_mnist5k("test").images)  # no source digit in both splits
    info = dataset_info("shifted_mnist")
    x = train.images.float() / 255
    assert info.image_size == CANVAS and info.channels == 1 and info.resolution == "mnist"
    assert abs(x.mean() - info.mean[0]) < 1e-3 and abs(x.std() - info.std[0]) < 1e-3
