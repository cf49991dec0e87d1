"""Tiny datasets written in the exact on-disk formats the loaders read (nothing is downloaded):
CIFAR python pickles, STL-10 binaries (column-major planes, labels 1..10), ImageFolder trees of JPEGs."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def write_cifar_batch(path: Path, n: int, label_key: str, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).tolist()
    with open(path, "wb") as f:
        pickle.dump({"batch_label": "x", "data": data, label_key: labels, "filenames": ["a"] * n}, f)
    return data, labels


def write_cifar(root: Path, fmt, n: int = 8) -> None:
    """Every batch file of ``fmt`` (CIFAR10 / CIFAR100) with ``n`` images each, and the meta file."""
    folder = Path(root) / fmt.folder
    folder.mkdir(parents=True, exist_ok=True)
    for i, (name, _) in enumerate(fmt.train + fmt.test):
        write_cifar_batch(folder / name, n, fmt.label_key, i)
    with open(folder / fmt.meta[0], "wb") as f:
        pickle.dump({fmt.names_key: [f"class{i}" for i in range(10)]}, f)


def write_stl_part(folder: Path, part: str, images_hwc: np.ndarray, labels=None) -> None:
    # STL-10 stores each image as 3 planes, each column-major: write (n, 3, W, H)
    images_hwc.transpose(0, 3, 2, 1).astype(np.uint8).tofile(folder / f"{part}_X.bin")
    if labels is not None:
        (np.asarray(labels, np.uint8) + 1).tofile(folder / f"{part}_y.bin")


def write_stl10(root: Path, n: int = 8, seed: int = 0) -> None:
    folder = Path(root) / "stl10_binary"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for part in ("train", "test", "unlabeled"):
        labels = None if part == "unlabeled" else np.arange(n) % 10
        write_stl_part(folder, part, rng.integers(0, 256, (n, 96, 96, 3), dtype=np.uint8), labels)


def write_imagefolder(root: Path, classes: list[str], per_class: int = 1, size: int = 40, seed: int = 0) -> None:
    """``root/{train,val}/<class>/<i>.JPEG`` with random colour JPEGs."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        for c in classes:
            d = Path(root) / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8)).save(d / f"{i}.JPEG")
