"""ImageFolder / ImageNet-100: ``root/<split>/<class>/<image>`` decoded lazily in DataLoader workers or on the device.

Each worker decodes with Pillow (or, with ``decode=device``, only reads the file, which the training
device decodes with nvJPEG: :mod:`sslab.data.decode`), resizes the shorter side to ``load_size`` and centre-crops a
``load_size`` square, returning uint8 ``(3, load_size, load_size)``; random resized crops and the
other augmentations then run batched on the device (see :mod:`sslab.data.views`). Cropping the
stored square first loses the borders of very wide images, the usual price of batched GPU
augmentation (FFCV makes the same trade). An optional class-list file (one folder name per line)
selects a subset of classes, e.g. the 100 ImageNet classes of ImageNet-100.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .datasets import DataError, DatasetInfo, register
from .decode import EncodedImages, square_geometry
from .predecode import predecoded

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")  # any letter case
SPLIT_ALIASES = {"test": "val", "val": "val", "train": "train"}


def read_class_list(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"class-list file {path} not found (one class folder name per line)")
    names = [line.split()[0] for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if not names:
        raise DataError(f"class-list file {path} is empty")
    return names


class ImageFolderImages(Dataset):
    """Images under ``folder/<class>/``: items are ``(uint8 (3, S, S), label, index)``."""

    def __init__(self, folder: Path, load_size: int = 256, classes: list[str] | None = None) -> None:
        if not folder.is_dir():
            raise DataError(
                f"image folder {folder} not found: arrange images as {folder}/<class>/<image> "
                "(ImageNet: the train/ and val/ folders of ILSVRC2012 sorted by class)"
            )
        present = sorted(p.name for p in folder.iterdir() if p.is_dir())
        if classes is not None:
            absent = [c for c in classes if c not in present]
            if absent:
                raise DataError(f"class '{absent[0]}' from the class list is not a folder of {folder}")
        self.classes = classes if classes is not None else present
        if not self.classes:
            raise DataError(f"{folder} has no class sub-folders")
        self.samples: list[tuple[Path, int]] = []
        for label, name in enumerate(self.classes):
            files = sorted(p for p in (folder / name).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
            self.samples.extend((p, label) for p in files)
        if not self.samples:
            raise DataError(f"{folder} has class folders but no images with extensions {', '.join(IMAGE_EXTENSIONS[:5])}...")
        self.labels = torch.tensor([y for _, y in self.samples], dtype=torch.long)
        self.load_size = load_size

    def __len__(self) -> int:
        return len(self.samples)

    def decode(self, path: Path) -> torch.Tensor:
        from PIL import Image

        try:
            with Image.open(path) as im:
                im = im.convert("RGB")
                nw, nh, left, top = square_geometry(*im.size, self.load_size)
                im = im.resize((nw, nh), Image.BILINEAR)
                im = im.crop((left, top, left + self.load_size, top + self.load_size))
                arr = np.asarray(im, dtype=np.uint8)
        except (OSError, ValueError) as e:
            raise DataError(f"cannot decode image {path}: {e}") from None
        return torch.from_numpy(arr.copy()).permute(2, 0, 1)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        path, label = self.samples[index]
        return self.decode(path), label, index


class ImageFolderBytes(ImageFolderImages):
    """The same images as encoded files: items ``(EncodedImages, label, index)``, decoded on the training
    device (:mod:`sslab.data.decode`); workers only read bytes."""

    def __getitem__(self, index: int) -> tuple[EncodedImages, int, int]:
        path, label = self.samples[index]
        try:
            data = torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)
        except OSError as e:
            raise DataError(f"cannot read image {path}: {e}") from None
        return EncodedImages([data], self.load_size, [str(path)]), label, index


def load_imagefolder(
    split: str, root: Path, classes_file: str | None = None, load_size: int = 256, predecode: bool = False,
    cache_dir: str | None = None, decode: str = "workers",
):
    """``split`` is ``train`` or ``val`` (``test`` is an alias of ``val``) under ``root``. With ``predecode``
    the images are decoded once into a uint8 memory-mapped file in ``cache_dir`` (default
    ``<root>/.sslab_cache``) and read from there (:mod:`sslab.data.predecode`); otherwise ``decode=workers``
    decodes with Pillow in DataLoader workers and ``decode=device`` hands the files' bytes to the training
    device (:mod:`sslab.data.decode`; ``auto`` is resolved by the caller, :func:`~sslab.data.decode.resolve_decode`)."""
    classes = read_class_list(Path(classes_file)) if classes_file else None
    if decode not in ("workers", "device"):
        raise DataError(f"unknown decode '{decode}' for an image folder; valid choices: workers, device")
    kind = ImageFolderBytes if decode == "device" and not predecode else ImageFolderImages
    data = kind(root / SPLIT_ALIASES[split], load_size=load_size, classes=classes)
    if predecode:
        return predecoded(data, Path(cache_dir) if cache_dir else root / ".sslab_cache", SPLIT_ALIASES[split])
    return data


IMAGENET100_CLASSES = Path(__file__).with_name("imagenet100_classes.txt")
IMAGENET_SOURCE = "https://image-net.org (ILSVRC2012 train and val, val sorted into class folders)"


def load_imagenet100(split: str, root: Path, classes_file: str | None = None, load_size: int = 256, **kw):
    """ImageNet-100: the CMC class subset (:data:`IMAGENET100_CLASSES`) of an ImageNet folder, or of a
    folder holding only those classes; ``classes_file`` swaps in another list."""
    return load_imagefolder(split, root, classes_file or str(IMAGENET100_CLASSES), load_size, **kw)


register(DatasetInfo(
    name="imagenet100", load=load_imagenet100, splits=("train", "val", "test"), pretrain_split="train", train_split="train",
    test_split="val", image_size=224, channels=3, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
    resolution="imagenet", needs_root=True,
    description="ImageNet-100 (CMC's 100 classes, solo-learn's list): root/train/<wnid>/*, root/val/<wnid>/*",
    files=tuple(f"{split}/{c}/" for split in ("train", "val") for c in read_class_list(IMAGENET100_CLASSES)),
    source=IMAGENET_SOURCE, options=("classes_file", "predecode", "cache_dir", "decode"),
))
register(DatasetInfo(
    name="imagenet", load=load_imagefolder, splits=("train", "val", "test"), pretrain_split="train", train_split="train",
    test_split="val", image_size=224, channels=3, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
    resolution="imagenet", needs_root=True,
    description="ImageNet-1k (ILSVRC2012): root/train/<wnid>/*, root/val/<wnid>/* (1,000 class folders each)",
    files=("train/", "val/"), source=IMAGENET_SOURCE, options=("classes_file", "predecode", "cache_dir", "decode"),
))
register(DatasetInfo(
    name="imagefolder", load=load_imagefolder, splits=("train", "val", "test"), pretrain_split="train", train_split="train",
    test_split="val", image_size=224, channels=3, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
    resolution="imagenet", needs_root=True,
    description="root/train/<class>/*, root/val/<class>/*; classes_file= selects a subset", files=("train/", "val/"),
    options=("classes_file", "predecode", "cache_dir", "decode"),
))
