"""decode=device: image files read by the loader, decoded (and squared) on the training device."""

import numpy as np
import pytest
import torch
from ondisk import write_imagefolder

from sslab.data import DataError
from sslab.data.decode import DeviceDecoder, EncodedImages, as_images, collate_images, pil_decode, resolve_decode
from sslab.data.imagefolder import ImageFolderBytes, ImageFolderImages, load_imagefolder


def _folder(root, shapes=((500, 375), (120, 90), (40, 64), (300, 300), (33, 200))):
    """Images of several shapes (wider, taller, smaller than the load size), JPEG and one PNG, smooth enough
    that resampling matters, under root/<class>/."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i, (w, h) in enumerate(shapes):
            ramp = np.linspace(0, 1, w)[None, :, None] * np.linspace(0.2, 1, h)[:, None, None] * rng.uniform(80, 255, 3)
            arr = (ramp + rng.normal(0, 20, (h, w, 3))).clip(0, 255).astype(np.uint8)
            Image.fromarray(arr).save(root / c / f"{i}.{'png' if i == 3 else 'jpg'}", quality=90)
    return root


def _batch(data):
    return collate_images([data[i] for i in range(len(data))])


def test_device_route_equals_the_pillow_route(tmp_path):
    """Same decode, same shorter-side resize (bilinear, antialiased) and centre crop: within one grey level
    (Pillow rounds its fixed-point filter, torch its float one) and one level only on a few pixels."""
    root = _folder(tmp_path)
    pillow = ImageFolderImages(root, load_size=64)
    ref = torch.stack([pillow[i][0] for i in range(len(pillow))])
    encoded, labels, index = _batch(ImageFolderBytes(root, load_size=64))
    assert isinstance(encoded, EncodedImages) and len(encoded) == len(pillow) == 10
    assert labels.tolist() == [0] * 5 + [1] * 5 and index.tolist() == list(range(10))
    images = as_images(encoded, "cpu")
    assert images.dtype == torch.uint8 and images.shape == ref.shape == (10, 3, 64, 64)
    diff = (images.int() - ref.int()).abs()
    assert int(diff.max()) <= 1 and float(diff.float().mean()) < 0.3


def test_the_backend_gets_the_jpegs_and_pillow_the_rest_or_everything_when_it_refuses(tmp_path):
    root = _folder(tmp_path)
    encoded, _, _ = _batch(ImageFolderBytes(root, load_size=48))
    host = DeviceDecoder()(encoded, "cpu")
    seen = []

    def backend(files, device):  # nvJPEG's contract: a list of CPU byte tensors -> a list of (3, h, w) on device
        seen.append(len(files))
        return [pil_decode(f).to(device) for f in files]

    assert torch.equal(DeviceDecoder(backend)(encoded, "cpu"), host)
    assert seen == [8]  # the two PNGs were left to Pillow

    def refuses(files, device):
        raise RuntimeError("nvjpeg: unsupported JPEG")

    assert torch.equal(DeviceDecoder(refuses)(encoded, "cpu"), host)


def test_lightning_leaves_encoded_files_on_the_host_and_counts_the_batch():
    from lightning.fabric.utilities.apply_func import move_data_to_device
    from lightning.pytorch.utilities.data import extract_batch_size

    files = [torch.arange(7, dtype=torch.uint8), torch.arange(1000, dtype=torch.uint8)]
    batch = collate_images([(EncodedImages([f], 16), i, i) for i, f in enumerate(files)])
    moved = move_data_to_device(batch, torch.device("meta"))
    assert moved[0] is batch[0] and moved[1].device.type == "meta"
    assert extract_batch_size(batch) == 2  # the labels, not a file's 1,000 bytes


def test_decode_option_resolves_and_is_checked(tmp_path):
    assert resolve_decode("workers") == "workers" and resolve_decode("device", "cpu") == "device"
    assert resolve_decode("auto", "cpu") == "workers"
    if not torch.cuda.is_available():
        assert resolve_decode("auto") == "workers"
    with pytest.raises(ValueError, match="unknown decode 'gpu'; valid choices: auto, workers, device"):
        resolve_decode("gpu")
    write_imagefolder(tmp_path, ["a", "b"], per_class=2, size=20)
    assert type(load_imagefolder("train", tmp_path, load_size=16, decode="device")) is ImageFolderBytes
    assert type(load_imagefolder("train", tmp_path, load_size=16)) is ImageFolderImages
    with pytest.raises(DataError, match="unknown decode 'auto' for an image folder"):
        load_imagefolder("train", tmp_path, decode="auto")


def test_training_with_decode_device_equals_decode_workers_on_its_data(tmp_path, monkeypatch):
    """The whole run -- training loader, probe set, kNN monitor -- on files decoded in the step; with images
    that decode identically by both routes (lossless, already the 256 px load size: no resampling) the two
    runs are the same run."""
    from PIL import Image

    from sslab.config import resolve
    from sslab.engine import train

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in ("a", "b", "c"):
            (tmp_path / "data" / split / c).mkdir(parents=True)
            for i in range(4):
                pixels = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(tmp_path / "data" / split / c / f"{i}.png")
    common = [f"data_root={tmp_path / 'data'}", "dataset=imagefolder", "image_size=24", "epochs=2", "batch_size=4",
              "eval.linear=false", "eval.baselines=false", "eval.knn_every=1", "diagnostics.every=2",
              "diagnostics.probe_size=8", "num_workers=0", "progress=false", "accelerator=cpu", "backbone=convnet",
              "precision=32-true"]
    import sslab.data.decode as decode_module

    decoded = []
    real = decode_module.decode_on
    monkeypatch.setattr(decode_module, "decode_on", lambda batch, device: decoded.append(len(batch)) or real(batch, device))
    runs = {}
    for decode in ("workers", "device"):
        cfg = resolve("byol_mnist5k", common + [f"decode={decode}"])
        runs[decode] = train(cfg, tmp_path / decode)
    # device run: 3 training steps x 2 epochs of 4 files, probe set 8 + kNN train 12 + test 12 per epoch
    assert decoded.count(4) == 6 and decoded.count(12) >= 4 and sum(decoded) >= 6 * 4 + 2 * 24
    assert runs["device"]["final_loss"] == runs["workers"]["final_loss"]
    assert runs["device"]["knn_top1"] == runs["workers"]["knn_top1"]


@pytest.mark.gpu
def test_nvjpeg_decodes_within_a_few_levels_of_pillow(tmp_path):
    pytest.importorskip("torchvision")
    assert resolve_decode("auto") == "device"
    root = _folder(tmp_path)
    pillow = ImageFolderImages(root, load_size=64)
    ref = torch.stack([pillow[i][0] for i in range(len(pillow))])
    images = as_images(_batch(ImageFolderBytes(root, load_size=64))[0], "cuda")
    assert images.device.type == "cuda"
    diff = (images.cpu().int() - ref.int()).abs().float()
    assert float(diff.mean()) < 1.5  # nvJPEG's IDCT and chroma upsampling differ from libjpeg-turbo's by a level or two
