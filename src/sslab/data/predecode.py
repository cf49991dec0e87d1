"""One-time decoding of an image folder to a uint8 memory-mapped file, which later runs read at memory speed.

JPEG decoding limits an ImageNet-100 run on a machine with few cores (about 300 images/s per core,
`sslab bench`). With ``predecode=true`` the first run decodes every image once -- Pillow, shorter
side to ``load_size``, centre square, exactly what :class:`ImageFolderImages` returns -- in parallel
workers into ``<cache>/<split>-<load_size>-<key>.u8`` (``N x 3 x S x S`` bytes: 24.8 GB for
ImageNet-100's 126,689 training images at 256 px), and every later run reads that file through
the page cache. ``key`` hashes the image list (paths, sizes, modification times) and the load
size, so a changed folder gets a new file; the file is written under a temporary name and renamed
when complete, so an interrupted decode never leaves a file that looks finished.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..io import atomic_write_text


class DecodedFolder(Protocol):
    """What is pre-decoded: a dataset of ``(uint8 (3, S, S), label, index)`` items with its files, as
    :class:`~sslab.data.imagefolder.ImageFolderImages` is (named here by its attributes: the image folder
    imports this module, not the other way round)."""

    samples: list[tuple[Path, int]]
    labels: torch.Tensor
    classes: list[str]
    load_size: int

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]: ...


def cache_key(data: DecodedFolder) -> str:
    """A digest of the images (relative path, size, mtime, label) and the load size."""
    h = hashlib.sha256(f"{data.load_size}".encode())
    for path, label in data.samples:
        st = path.stat()
        h.update(f"{path.parent.name}/{path.name}|{st.st_size}|{st.st_mtime_ns}|{label}\n".encode())
    return h.hexdigest()[:16]


class MemmapImages(Dataset):
    """The images of a pre-decoded folder: items ``(uint8 (3, S, S), label, index)`` as ImageFolderImages'.

    The file is opened lazily in each process (a DataLoader worker maps it itself; nothing is pickled
    but the path)."""

    def __init__(self, path: Path, labels: torch.Tensor, classes: list[str], size: int) -> None:
        self.path, self.labels, self.classes, self.size = Path(path), labels, classes, size
        self._array: np.memmap | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def array(self) -> np.memmap:
        if self._array is None:
            self._array = np.memmap(self.path, dtype=np.uint8, mode="r", shape=(len(self), 3, self.size, self.size))
        return self._array

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        return torch.from_numpy(np.array(self.array[index])), int(self.labels[index]), index

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_array": None}


def predecoded(data: DecodedFolder, cache: Path, split: str, workers: int | None = None) -> MemmapImages:
    """``data`` decoded once into ``cache`` (reused when its key matches), as a :class:`MemmapImages`."""
    cache = Path(cache)
    size = data.load_size
    stem = cache / f"{split}-{size}-{cache_key(data)}"
    target, meta = stem.with_suffix(".u8"), stem.with_suffix(".json")
    if not (target.is_file() and meta.is_file() and target.stat().st_size == len(data) * 3 * size * size):
        cache.mkdir(parents=True, exist_ok=True)
        tmp = stem.with_suffix(f".u8.{os.getpid()}.tmp")
        out = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=(len(data), 3, size, size))
        workers = workers if workers is not None else max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                                          else os.cpu_count() or 1)
        loader = DataLoader(data, batch_size=64, shuffle=False, num_workers=workers)
        for images, _, index in loader:
            out[int(index[0]) : int(index[-1]) + 1] = images.numpy()
        out.flush()
        del out
        atomic_write_text(json.dumps({"n": len(data), "size": size, "classes": data.classes,
                                      "labels": data.labels.tolist()}) + "\n", meta)
        os.replace(tmp, target)  # last: the image file's presence means complete
    info = json.loads(meta.read_text())
    return MemmapImages(target, torch.tensor(info["labels"], dtype=torch.long), info["classes"], info["size"])
