"""What the benchmark times beside the training step: the image-folder loader and the diagnostics.

* :func:`loader_rate` -- images/s of the ImageFolder path alone (JPEG decode in DataLoader workers,
  as training reads ImageNet-100), per worker count, on a folder of synthetic JPEGs at ImageNet's
  typical 500 x 375, of the same folder pre-decoded (``predecode=true``: a uint8 memory map), and on a
  CUDA device with torchvision, of the files decoded there (``decode=device``: nvJPEG, workers only read);
* :func:`diagnostics_ms` -- one call of the diagnostics monitor's statistics (:func:`embedding_stats`
  and the trace's covariance spectrum) on ``(N, D)`` embeddings.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch

from ..config import DiagnosticsConfig
from ..diagnostics import probe as monitor  # the module: its functions, looked up at call time

JPEG_SIZE = (500, 375)  # the median ImageNet photo


def write_jpeg_folder(root: Path, images: int, classes: int = 4, seed: int = 0) -> Path:
    """``classes`` folders of ``images`` JPEGs in total: smooth colour fields with noise (decode cost like
    photographs', unlike flat or pure-noise images)."""
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    w, h = JPEG_SIZE
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    for i in range(images):
        a = torch.rand(3, 3, generator=g)
        field = a[:, 0, None, None] * xx + a[:, 1, None, None] * yy + a[:, 2, None, None] * xx * yy
        pixels = (field / field.amax((1, 2), keepdim=True).clamp(min=1e-6) * 200 + 40 * torch.rand(3, h, w, generator=g))
        folder = root / f"class{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels.clamp(0, 255).byte().permute(1, 2, 0).numpy()).save(folder / f"{i}.jpg", quality=90)
    return root


def loader_rate(workers: list[int], images: int = 256, batch: int = 32, load_size: int = 256,
                device: torch.device | str = "cpu") -> list[dict]:
    """Images/s of the ImageFolder DataLoader (decode, resize to ``load_size``, centre crop, in workers)
    for each worker count; pre-decoded; and decoded on ``device`` where that is a GPU torchvision decodes on."""
    from torch.utils.data import DataLoader

    from ..data.decode import as_images, collate_images, gpu_decoder_available
    from ..data.imagefolder import ImageFolderBytes, ImageFolderImages
    from ..data.predecode import predecoded

    device = torch.device(device)

    def rate(data, n: int) -> float | None:
        loader = DataLoader(data, batch_size=batch, shuffle=True, num_workers=n, drop_last=True, collate_fn=collate_images)
        it = iter(loader)
        as_images(next(it)[0], device)  # workers started, first batch out: what follows is the steady rate
        t0, seen = time.perf_counter(), 0
        for images_, *_ in it:
            seen += len(as_images(images_, device))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return round(seen / (time.perf_counter() - t0), 1) if seen else None

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = write_jpeg_folder(Path(tmp) / "train", images)
        data = ImageFolderImages(root, load_size=load_size)
        memmap = predecoded(data, Path(tmp) / "cache", "train")
        files = ImageFolderBytes(root, load_size=load_size) if device.type == "cuda" and gpu_decoder_available() else None
        for n in workers:
            jpeg = rate(data, n)
            rows.append({"workers": n, "images_per_s": jpeg, "per_worker": round(jpeg / max(n, 1), 1) if jpeg else None,
                         "predecoded_images_per_s": rate(memmap, n),
                         "device_decode_images_per_s": rate(files, n) if files is not None else None})
    return rows


def monitor_call(z1: torch.Tensor, z2: torch.Tensor) -> tuple[dict, torch.Tensor]:
    """What the diagnostics monitor computes on the probe set's embeddings at each trace step: the statistics
    and the covariance spectrum."""
    d = DiagnosticsConfig()  # the thresholds' one home: the declared defaults
    stats = monitor.embedding_stats(z1, z2, center_threshold=d.center_threshold, dimensional_fraction=d.dimensional_fraction)
    return stats, monitor.spectrum(z1)


def diagnostics_ms(n: int, d: int, device: torch.device, repeats: int = 3) -> float:
    """Median ms of the monitor's statistics and spectrum on random ``(n, d)`` embeddings."""
    g = torch.Generator(device=device).manual_seed(0)
    z1 = torch.randn(n, d, generator=g, device=device)
    z2 = z1 + 0.1 * torch.randn(n, d, generator=g, device=device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        monitor_call(z1, z2)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)
