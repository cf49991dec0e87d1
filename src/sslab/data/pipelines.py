"""Named view pipelines: the SimCLR, BYOL, VICReg, DINO and SwAV augmentations at four resolutions.

ImageNet settings follow the official code: SimCLR (colour jitter strength 1.0 =
``(0.8, 0.8, 0.8, 0.2)``, blur p=0.5), BYOL (``(0.4, 0.4, 0.2, 0.1)``, asymmetric blur 1.0/0.1 and
solarisation 0/0.2), VICReg (the BYOL pipeline; `main_vicreg.py` uses the same probabilities) and
DINO (global crops scale (0.4, 1), eight 96-px local crops at scale (0.05, 0.4)), SwAV (SimCLR's
colour distortion, global crops at (0.14, 1), six 96-px local crops at (0.05, 0.14)). CIFAR
drops the blur (32 px is too small for it; solo-learn's CIFAR recipes do the same) and STL uses
the ImageNet pipeline at 96 px. MNIST is grayscale and chiral: no flip, no hue/saturation/grayscale,
crops of at least 30% of the digit, brightness/contrast jitter, a light blur and no solarisation -- settings of
ours (no paper trains SSL on MNIST), chosen so the default run learns in minutes.
"""

from __future__ import annotations

from dataclasses import replace

from .views import ViewPipeline, ViewSpec

PIPELINES = ("simclr", "byol", "vicreg", "dino", "swav")
RESOLUTIONS = ("mnist", "cifar", "stl", "imagenet")
SIZES = {"mnist": 28, "cifar": 32, "stl": 96, "imagenet": 224}


def _base(resolution: str, size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> ViewSpec:
    spec = ViewSpec(size=size, mean=mean, std=std)
    if resolution == "mnist":
        return replace(spec, scale=(0.3, 1.0), flip_p=0.0, saturation=0.0, hue=0.0, grayscale_p=0.0)
    return spec


def view_pipeline(
    name: str,
    resolution: str,
    size: int | None = None,
    mean: tuple[float, ...] = (0.485, 0.456, 0.406),
    std: tuple[float, ...] = (0.229, 0.224, 0.225),
    local_crops: int | None = None,
) -> ViewPipeline:
    """The ``name`` pipeline (one of :data:`PIPELINES`) for a ``resolution`` family.

    ``size`` overrides the crop side (default: the family's native size); ``local_crops`` the
    number of multi-crop local views (DINO default 8 at ImageNet/STL sizes, 0 elsewhere).
    """
    if name not in PIPELINES:
        raise ValueError(f"unknown view pipeline '{name}'; valid choices: {', '.join(PIPELINES)}")
    if resolution not in RESOLUTIONS:
        raise ValueError(f"unknown resolution '{resolution}'; valid choices: {', '.join(RESOLUTIONS)}")
    size = size or SIZES[resolution]
    base = _base(resolution, size, mean, std)
    blur = resolution not in ("cifar",)
    if resolution == "mnist":
        # one light blur for every pipeline, and no solarisation: on a white-on-black digit it
        # turns the strokes black and leaves an outline, destroying what is to be learned
        base = replace(base, blur_p=0.5, blur_sigma=(0.1, 1.0))
        blur = False
    # local crops keep the family's ratio to the global size (96/224 ImageNet, 48/96 STL, 16/32, 14/28)
    local_size = max(4, round(size * {"imagenet": 96 / 224, "stl": 0.5, "cifar": 0.5, "mnist": 0.5}[resolution]))
    default_locals = 0 if resolution in ("mnist", "cifar") else (6 if name == "swav" else 8)
    n_local = local_crops if local_crops is not None else default_locals
    if name in ("simclr", "swav"):
        spec = replace(base, brightness=0.8, contrast=0.8, saturation=0.8 * (base.saturation > 0), hue=0.2 * (base.hue > 0))
        spec = replace(spec, blur_p=0.5) if blur else spec
        if name == "simclr":
            return ViewPipeline((replace(spec, n=2),), name=name)
        # SwAV multi-crop: 2 global crops at scale (0.14, 1), local ones at (0.05, 0.14) (main_swav.py)
        g = replace(spec, n=2, scale=(0.14, 1.0) if resolution != "mnist" else base.scale)
        local_scale = (0.05, 0.14) if resolution != "mnist" else (0.2, 0.5)
        return ViewPipeline((g,), name=name).with_local_crops(n_local, size=local_size, scale=local_scale, blur_p=spec.blur_p)
    if name in ("byol", "vicreg"):
        v1 = replace(base, blur_p=1.0) if blur else base
        v2 = replace(base, blur_p=0.1, solarize_p=0.2) if blur else replace(base, solarize_p=0.2 * (resolution != "mnist"))
        return ViewPipeline((v1, v2), name=name)
    # dino
    g_scale = (0.4, 1.0) if resolution != "mnist" else base.scale
    v1 = replace(base, scale=g_scale, blur_p=1.0 if blur else base.blur_p)
    v2 = replace(base, scale=g_scale, blur_p=0.1 if blur else base.blur_p, solarize_p=0.2 * (resolution != "mnist"))
    pipe = ViewPipeline((v1, v2), name=name)
    local_scale = (0.05, 0.4) if resolution != "mnist" else (0.2, 0.5)
    return pipe.with_local_crops(n_local, size=local_size, scale=local_scale, blur_p=0.5 if blur else base.blur_p)
