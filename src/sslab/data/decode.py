"""JPEG decoding on the training device: file bytes from the loader, nvJPEG on the GPU, the views after.

With ``decode=device`` an image folder's items are the image files' bytes (:class:`EncodedImages`),
which DataLoader workers only read from disk; the training step (and the kNN monitor) decode each
batch on its device with torchvision's batched ``decode_jpeg(device="cuda")`` (nvJPEG, the library
NVIDIA DALI's GPU decoder is built on), then resize the shorter side to ``load_size`` and cut the
centre square exactly as the Pillow route of :class:`~sslab.data.imagefolder.ImageFolderImages` does
(bilinear with antialiasing, which is how Pillow downsamples). Files that are not JPEG (PNG, ...) and
JPEGs nvJPEG refuses (CMYK) are decoded by Pillow on the host; so is everything where torchvision or
CUDA is missing, which keeps the route usable (and testable) on any machine. ``decode=auto`` picks
this route on a CUDA device where torchvision can decode on it, and Pillow in workers elsewhere.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import default_collate

from .datasets import DataError

DECODE_CHOICES = ("auto", "workers", "device")
JPEG_MAGIC = b"\xff\xd8\xff"


class EncodedImages:
    """Encoded image files (uint8 1-D tensors of their bytes) to be decoded to ``load_size`` squares.

    One item of a :class:`~sslab.data.imagefolder.ImageFolderBytes`, or a batch of them (:func:`collate_images`).
    Deliberately neither a tensor nor iterable: Lightning leaves it on the host when it moves a batch to
    the device, and does not mistake a file's length for the batch size."""

    __slots__ = ("files", "load_size", "names")

    def __init__(self, files: list[torch.Tensor], load_size: int, names: list[str] | None = None) -> None:
        self.files, self.load_size = files, load_size
        self.names = names if names is not None else [f"file {i}" for i in range(len(files))]  # for error messages

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return f"EncodedImages({len(self.files)} files, load_size={self.load_size})"


def collate_images(items: list[tuple]) -> tuple:
    """DataLoader ``collate_fn`` for image-folder items: :class:`EncodedImages` are joined into one batch
    (files differ in length, so they cannot be stacked); decoded images go to torch's default collate."""
    first = items[0][0]
    if not isinstance(first, EncodedImages):
        return default_collate(items)
    files = [f for it in items for f in it[0].files]
    names = [n for it in items for n in it[0].names]
    rest = [torch.tensor([it[k] for it in items]) for k in range(1, len(items[0]))]  # labels, indices
    return (EncodedImages(files, first.load_size, names), *rest)


def gpu_decoder_available() -> bool:
    """Whether torchvision can decode JPEGs on a CUDA device here."""
    if not torch.cuda.is_available():
        return False
    try:
        from torchvision.io import decode_jpeg  # noqa: F401
    except Exception:  # torchvision missing, or built without image support
        return False
    return True


def resolve_decode(decode: str, accelerator: str = "auto") -> str:
    """``auto`` -> ``device`` when training on a CUDA device that torchvision can decode on, else ``workers``."""
    if decode not in DECODE_CHOICES:
        raise ValueError(f"unknown decode '{decode}'; valid choices: {', '.join(DECODE_CHOICES)}")
    if decode != "auto":
        return decode
    return "device" if accelerator in ("auto", "gpu", "cuda") and gpu_decoder_available() else "workers"


def square_geometry(w: int, h: int, size: int) -> tuple[int, int, int, int]:
    """``(new_w, new_h, left, top)``: the shorter side resized to ``size``, then the centre ``size`` square --
    the one geometry of both decoding routes (Pillow in :class:`~sslab.data.imagefolder.ImageFolderImages`,
    torch in :func:`square`)."""
    s = size / min(w, h)
    nw, nh = max(size, round(w * s)), max(size, round(h * s))
    return nw, nh, (nw - size) // 2, (nh - size) // 2


def square(image: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 ``(3, h, w)`` -> uint8 ``(3, size, size)``: shorter side to ``size`` (bilinear, antialiased),
    centre crop (:func:`square_geometry`)."""
    h, w = image.shape[-2:]
    nw, nh, left, top = square_geometry(w, h, size)
    if (nh, nw) != (h, w):
        x = F.interpolate(image[None].float(), size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
        image = x[0].round_().clamp_(0, 255).to(torch.uint8)
    return image[:, top : top + size, left : left + size]


def pil_decode(data: torch.Tensor, name: str = "an image") -> torch.Tensor:
    """uint8 ``(3, h, w)`` of one encoded file, by Pillow on the host; :class:`DataError` naming ``name``."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data.numpy().tobytes())) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot decode image {name}: {e}") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def _nvjpeg(files: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    from torchvision.io import ImageReadMode, decode_jpeg

    try:  # one batched nvJPEG call (torchvision >= 0.19)
        return decode_jpeg(files, mode=ImageReadMode.RGB, device=device)
    except TypeError:  # older torchvision: one file per call
        return [decode_jpeg(f, mode=ImageReadMode.RGB, device=device) for f in files]


class DeviceDecoder:
    """Decodes :class:`EncodedImages` on ``device``; ``backend(files, device) -> [uint8 (3, h, w)]`` is
    nvJPEG on CUDA when torchvision has it (the default), Pillow on the host otherwise."""

    def __init__(self, backend=None) -> None:
        self.backend = backend
        self._warned = False

    def _backend_for(self, device: torch.device):
        if self.backend is not None:
            return self.backend
        return _nvjpeg if device.type == "cuda" and gpu_decoder_available() else None

    def __call__(self, batch: EncodedImages, device: torch.device | str) -> torch.Tensor:
        device = torch.device(device)
        backend = self._backend_for(device)
        if backend is None and device.type == "cuda" and not self._warned:
            self._warned = True
            warnings.warn("decode=device: torchvision cannot decode on this GPU; decoding with Pillow in the "
                          "training process (slow: use decode=workers)", stacklevel=2)
        jpeg = [i for i, f in enumerate(batch.files) if backend is not None and _is_jpeg(f)]
        decoded: dict[int, torch.Tensor] = {}
        if jpeg:
            try:
                decoded = dict(zip(jpeg, backend([batch.files[i] for i in jpeg], device)))
            except RuntimeError:  # e.g. a CMYK or progressive JPEG nvJPEG refuses: Pillow decodes the batch
                decoded = {}
        out = []
        for i, f in enumerate(batch.files):
            image = decoded[i] if i in decoded else pil_decode(f, batch.names[i]).to(device, non_blocking=True)
            out.append(square(image, batch.load_size))
        return torch.stack(out)


def _is_jpeg(data: torch.Tensor) -> bool:
    return data.numel() > 3 and data[:3].numpy().tobytes() == JPEG_MAGIC


decode_on = DeviceDecoder()


def as_images(images, device: torch.device | str) -> torch.Tensor:
    """A batch's images as uint8 ``(B, C, S, S)`` on ``device``: :class:`EncodedImages` decoded there,
    tensors moved there."""
    if isinstance(images, EncodedImages):
        return decode_on(images, device)
    return images.to(device, non_blocking=True)
