"""Batched, on-device augmentation: every transform draws its random parameters per sample.

Images enter as a uint8 batch ``(B, C, H, W)`` already on the training device and leave as
float views. Nothing loops over samples in Python: a random resized crop and a horizontal flip
are one ``affine_grid``/``grid_sample`` call, colour jitter applies its four ops in a per-sample
random order (as torchvision's ``ColorJitter`` orders them per call), and the Gaussian blur is a
grouped convolution with one kernel per sample.

Transforms applied with a probability take one of two routes that give the same views: on an
accelerator they run on the whole batch and a mask keeps them where a sample's coin says so, so
no index ever reaches the host (which would stall the CPU until the GPU catches up); on the CPU,
where reading an index is free, they run only on the samples that get them (about 2x less work
for colour pipelines). ``ViewPipeline(masked=...)`` forces one.

Randomness comes only from the ``torch.Generator`` passed in, so a fixed seed reproduces the
views exactly; the engine seeds one generator per training step from ``(seed, step)``, which
makes a resumed run draw the same views as an uninterrupted one.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma, as torchvision's rgb_to_grayscale


@dataclass(frozen=True)
class ViewSpec:
    """One augmentation pipeline producing ``n`` views of side ``size``.

    The order of operations is the SimCLR/BYOL one: random resized crop, horizontal flip,
    colour jitter (with probability ``jitter_p``), grayscale, Gaussian blur, solarisation,
    normalisation. A probability of 0 switches a transform off.
    """

    size: int
    n: int = 1
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: float = 0.0
    solarize_threshold: float = 0.5
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)

    @property
    def blur_kernel(self) -> int:
        """Kernel side: 10% of the crop size made odd (SimCLR's rule; 23 at 224 px), at least 3."""
        k = max(3, int(0.1 * self.size))
        return k if k % 2 == 1 else k + 1


def crop_boxes(
    batch: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator,
    device: torch.device,
    attempts: int = 10,
) -> torch.Tensor:
    """Random-resized-crop boxes ``(B, 4)`` as ``(top, left, h, w)`` in pixels (floats).

    Same sampling as torchvision's ``RandomResizedCrop.get_params``: area fraction uniform in
    ``scale``, log aspect ratio uniform in ``log(ratio)``, up to ``attempts`` tries per sample;
    a sample with no valid try falls back to the largest central crop with a ratio in range.
    """
    area = height * width
    u = torch.rand(batch, attempts, 4, generator=generator, device=device)
    target_area = area * (scale[0] + (scale[1] - scale[0]) * u[..., 0])
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[..., 1]
    aspect = torch.exp(log_r)
    w = torch.sqrt(target_area * aspect).round()
    h = torch.sqrt(target_area / aspect).round()
    ok = (w > 0) & (h > 0) & (w <= width) & (h <= height)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.full_like(ok[:, 0], -1, dtype=torch.long))
    idx = first.clamp(min=0)[:, None]
    h, w = h.gather(1, idx)[:, 0], w.gather(1, idx)[:, 0]
    top = torch.floor(u[..., 2].gather(1, idx)[:, 0] * (height - h + 1)).clamp(max=height - h)
    left = torch.floor(u[..., 3].gather(1, idx)[:, 0] * (width - w + 1)).clamp(max=width - w)
    # torchvision's fallback: central crop, aspect ratio clamped into range
    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        fh, fw = height, round(height * max(ratio))
    else:
        fw, fh = width, height
    bad = first < 0
    h = torch.where(bad, torch.full_like(h, fh), h)
    w = torch.where(bad, torch.full_like(w, fw), w)
    top = torch.where(bad, torch.full_like(top, (height - fh) // 2), top)
    left = torch.where(bad, torch.full_like(left, (width - fw) // 2), left)
    return torch.stack([top, left, h, w], 1)


def resized_crop(
    images: torch.Tensor, boxes: torch.Tensor, size: int, flip: torch.Tensor | None = None
) -> torch.Tensor:
    """Crop each image to its box, resize to ``size`` (bilinear) and optionally mirror it.

    ``images``: float ``(B, C, H, W)``; ``boxes``: ``(B, 4)`` from :func:`crop_boxes`;
    ``flip``: bool ``(B,)``. One ``grid_sample`` does crop, resize and flip together.
    """
    b, _, height, width = images.shape
    top, left, h, w = boxes.unbind(1)
    # affine_grid maps output [-1, 1] to input coordinates (align_corners=False convention)
    sx = w / width
    sy = h / height
    cx = (2 * left + w) / width - 1
    cy = (2 * top + h) / height - 1
    if flip is not None:
        sx = torch.where(flip, -sx, sx)
    theta = torch.zeros(b, 2, 3, device=images.device, dtype=images.dtype)
    theta[:, 0, 0], theta[:, 0, 2] = sx, cx
    theta[:, 1, 1], theta[:, 1, 2] = sy, cy
    grid = F.affine_grid(theta, [b, images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """Luma of an RGB batch, kept with 3 channels; a 1-channel batch is returned unchanged."""
    if x.shape[1] == 1:
        return x
    w = _constant(GRAY_WEIGHTS, x).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True).expand_as(x)


def _blend(a: torch.Tensor, b: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (factor.view(-1, 1, 1, 1) * a + (1 - factor.view(-1, 1, 1, 1)) * b).clamp(0, 1)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, torch.zeros_like(x), factor)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    mean = grayscale(x)[:, :1].mean(dim=(1, 2, 3), keepdim=True)
    return _blend(x, mean.expand_as(x), factor)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    return _blend(x, grayscale(x), factor)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue by ``shift`` (fraction of a turn, in [-0.5, 0.5]) through HSV, as torchvision.

    RGB -> HSV as ``colorsys``/torchvision; HSV -> RGB by the branch-free form
    ``c_n = v - v s clamp(min(k, 4 - k), 0, 1)``, ``k = (n + 6h) mod 6``, n = 5, 3, 1 for R, G, B.
    """
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(1)
    maxc = torch.maximum(torch.maximum(r, g), b)
    minc = torch.minimum(torch.minimum(r, g), b)
    delta = maxc - minc
    s = torch.where(maxc > 0, delta / maxc.clamp_min(1e-12), torch.zeros_like(maxc))
    dc = delta.clamp_min(1e-12)
    h = torch.where(maxc == r, (g - b) / dc, torch.where(maxc == g, 2.0 + (b - r) / dc, 4.0 + (r - g) / dc))
    h = torch.where(delta > 0, h, torch.zeros_like(h))
    h6 = torch.remainder(h + 6.0 * shift.view(-1, 1, 1), 6.0)  # hue in [0, 6) after the shift
    vs = maxc * s
    out = [maxc - vs * torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0) for k in
           (torch.remainder(n + h6, 6.0) for n in (5.0, 3.0, 1.0))]
    return torch.stack(out, 1)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel: int) -> torch.Tensor:
    """Separable Gaussian blur with one ``sigma`` per sample (reflect padding, as torchvision)."""
    b, c, h, w = x.shape
    half = (kernel - 1) / 2
    t = torch.linspace(-half, half, kernel, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t[None] / sigma[:, None]) ** 2)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (B*C, K)
    pad = kernel // 2
    y = x.reshape(1, b * c, h, w)
    y = F.conv2d(F.pad(y, (pad, pad, 0, 0), mode="reflect"), k[:, None, None, :], groups=b * c)
    y = F.conv2d(F.pad(y, (0, 0, pad, pad), mode="reflect"), k[:, None, :, None], groups=b * c)
    return y.reshape(b, c, h, w)


def _uniform(n: int, low: float, high: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=g, device=device)


def _coin(n: int, p: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) < p


BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)
ADJUST = {BRIGHTNESS: adjust_brightness, CONTRAST: adjust_contrast, SATURATION: adjust_saturation, HUE: adjust_hue}


def color_jitter(x: torch.Tensor, spec: ViewSpec, g: torch.Generator, apply: torch.Tensor | None = None,
                 masked: bool = True) -> torch.Tensor:
    """torchvision ``ColorJitter`` semantics with per-sample factors and a per-sample op order, on the samples
    where ``apply`` (bool ``(B,)``, default all) is true.

    Factors and orders are drawn for every sample, so both routes below give the same views:

    * ``masked`` (for accelerators): nothing leaves the device. Brightness, contrast and saturation are
      one blend ``f·x + (1 − f)·t`` towards a target ``t`` (black, the mean grey level, the grey image),
      so each stage of the random order is one blend whose target and factor are chosen per sample,
      plus the hue rotation where a sample's stage is hue; every stage runs on the whole batch and
      ``apply`` selects with ``torch.where``. A gather by index would make every step wait for the GPU;
    * gathered (for the CPU, where reading an index costs nothing): each op runs only on the samples
      that get it at that stage, about 4x less work at 3 channels.
    """
    b, dev = x.shape[0], x.device
    colour = x.shape[1] == 3
    ops, factors = [], []
    for op, strength, on in ((BRIGHTNESS, spec.brightness, True), (CONTRAST, spec.contrast, True),
                             (SATURATION, spec.saturation, colour)):
        if strength > 0 and on:
            ops.append(op)
            factors.append(_uniform(b, max(0.0, 1 - strength), 1 + strength, g, dev))
    if spec.hue > 0 and colour:
        ops.append(HUE)
        factors.append(_uniform(b, -spec.hue, spec.hue, g, dev))
    if not ops:
        return x
    factors = torch.stack(factors, 1)
    order = torch.rand(b, len(ops), generator=g, device=dev).argsort(1)  # a random permutation per sample
    return _on_samples(x, apply, masked, lambda y, idx: _jitter_masked(y, ops, factors, order) if idx is None
                       else _jitter_gathered(y, ops, factors[idx], order[idx]))


def _on_samples(x: torch.Tensor, apply: torch.Tensor | None, masked: bool, transform) -> torch.Tensor:
    """``x`` with ``transform(part, idx)`` applied where ``apply`` (bool ``(B,)``; None: everywhere) is true:
    ``masked``, on the whole batch (``idx`` None) and kept by ``torch.where``; else on the gathered samples
    only (``idx`` their indices, which the host reads)."""
    if masked:
        y = transform(x, None)
        return y if apply is None else _where(apply, y, x)
    idx = torch.arange(x.shape[0], device=x.device) if apply is None else apply.nonzero()[:, 0]
    if not idx.numel():
        return x
    out = x.clone()
    out[idx] = transform(x[idx], idx)
    return out


def _jitter_masked(x: torch.Tensor, ops: list[int], factors: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    column_of = {op: k for k, op in enumerate(ops)}
    for stage in range(len(ops)):
        column = order[:, stage]  # which op each sample gets at this stage
        f = factors.gather(1, column[:, None])[:, 0]
        gray = grayscale(x)
        target = gray  # saturation's
        if CONTRAST in column_of:
            target = torch.where(_per_sample(column == column_of[CONTRAST]), gray[:, :1].mean((1, 2, 3), keepdim=True),
                                 target)
        if BRIGHTNESS in column_of:
            target = torch.where(_per_sample(column == column_of[BRIGHTNESS]), 0.0, target)
        if HUE in column_of:
            hue = column == column_of[HUE]
            x = torch.where(_per_sample(hue), adjust_hue(x, f), _blend(x, target, torch.where(hue, 1.0, f)))
        else:
            x = _blend(x, target, f)
    return x


def _jitter_gathered(x: torch.Tensor, ops: list[int], factors: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    for stage in range(len(ops)):
        out = x.clone()
        for k, op in enumerate(ops):
            idx = (order[:, stage] == k).nonzero()[:, 0]
            if idx.numel():
                out[idx] = ADJUST[op](x[idx], factors[idx, k])
        x = out
    return x


def _per_sample(mask: torch.Tensor) -> torch.Tensor:
    return mask.view(-1, 1, 1, 1)


def _where(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(_per_sample(mask), a, b)


def augment(images: torch.Tensor, spec: ViewSpec, generator: torch.Generator, masked: bool | None = None) -> torch.Tensor:
    """One view of every image: ``images`` uint8 or float in [0, 1], ``(B, C, H, W)`` -> float view.

    A transform applied with probability p runs, with ``masked``, on the whole batch and is kept where the
    sample's coin says so (no host read: the accelerator route); without, only on the samples that get it
    (the CPU route, less work). Both draw the same random numbers and give the same views (tested);
    ``None`` picks masked everywhere but on the CPU.
    """
    masked = images.device.type != "cpu" if masked is None else masked
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images
    b, c, h, w = x.shape
    dev = x.device
    boxes = crop_boxes(b, h, w, spec.scale, spec.ratio, generator, dev)
    flip = _coin(b, spec.flip_p, generator, dev)
    x = resized_crop(x, boxes, spec.size, flip).clamp(0, 1)
    if spec.jitter_p > 0:
        x = color_jitter(x, spec, generator, _coin(b, spec.jitter_p, generator, dev), masked)
    if spec.grayscale_p > 0 and c == 3:
        x = _where(_coin(b, spec.grayscale_p, generator, dev), grayscale(x), x)
    if spec.blur_p > 0:
        apply = _coin(b, spec.blur_p, generator, dev)
        sigma = _uniform(b, *spec.blur_sigma, generator, dev)
        x = _on_samples(x, apply, masked,
                        lambda y, idx: gaussian_blur(y, sigma if idx is None else sigma[idx], spec.blur_kernel))
    if spec.solarize_p > 0:
        sol = torch.where(x >= spec.solarize_threshold, 1 - x, x)
        x = _where(_coin(b, spec.solarize_p, generator, dev), sol, x)
    return normalize(x, spec.mean, spec.std)


def normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """Per-channel ``(x - mean) / std``; a single value applies to every channel."""
    c = x.shape[1]
    m = _constant(tuple(mean) if len(mean) == c else tuple(mean[:1]) * c, x).view(1, c, 1, 1)
    s = _constant(tuple(std) if len(std) == c else tuple(std[:1]) * c, x).view(1, c, 1, 1)
    return (x - m) / s


def _constant(values: tuple[float, ...], like: torch.Tensor) -> torch.Tensor:
    """``values`` as a tensor on ``like``'s device and dtype, copied there once (a copy per call would
    be a host-to-device transfer every step)."""
    return _constant_on(values, like.device, like.dtype)


@functools.lru_cache(maxsize=64)
def _constant_on(values: tuple[float, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    with torch.inference_mode(False):  # a normal tensor even when first asked for inside inference mode
        return torch.tensor(values, device=device, dtype=dtype)


@dataclass(frozen=True)
class ViewPipeline:
    """An ordered list of :class:`ViewSpec`; global crops first, then local (multi-crop) ones."""

    specs: tuple[ViewSpec, ...]
    name: str = "custom"
    masked: bool | None = None  # the route of :func:`augment`: None = masked everywhere but on the CPU

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        return [augment(images, spec, generator, self.masked) for spec in self.specs for _ in range(spec.n)]

    @property
    def num_views(self) -> int:
        return sum(s.n for s in self.specs)

    def with_local_crops(
        self, n: int, size: int | None = None, scale: tuple[float, float] = (0.05, 0.4), blur_p: float = 0.5
    ) -> ViewPipeline:
        """Add ``n`` multi-crop local views (DINO: 96 px at 224, scale (0.05, 0.4), blur p=0.5, no solarisation)."""
        if n <= 0:
            return self
        base = self.specs[0]
        size = size or max(8, round(base.size * 96 / 224))
        local = replace(base, size=size, n=n, scale=tuple(scale), blur_p=blur_p, solarize_p=0.0)
        return replace(self, specs=self.specs + (local,))


def eval_view(images: torch.Tensor, size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """Deterministic evaluation view: the standard resize-to-``size/0.875`` + centre crop, then normalise.

    Images already ``size`` pixels wide (MNIST, CIFAR, STL at native size) are only normalised.
    """
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images
    h, w = x.shape[-2:]
    if (h, w) != (size, size):
        short = round(size / 0.875) if min(h, w) > size else size
        if min(h, w) != short:
            s = short / min(h, w)
            x = F.interpolate(x, size=(max(short, round(h * s)), max(short, round(w * s))), mode="bilinear",
                              align_corners=False, antialias=True)
        h, w = x.shape[-2:]
        top, left = (h - size) // 2, (w - size) // 2
        x = x[..., top : top + size, left : left + size]
    return normalize(x, mean, std)
