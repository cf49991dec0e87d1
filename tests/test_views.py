"""Statistics of each batched transform, and reproducibility of the views."""

import math
import random

import pytest
import torch

from sslab.data.pipelines import PIPELINES, RESOLUTIONS, view_pipeline
from sslab.data.views import (
    ViewSpec,
    adjust_hue,
    augment,
    crop_boxes,
    eval_view,
    gaussian_blur,
    grayscale,
    resized_crop,
)

NO_COLOR = dict(jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, solarize_p=0.0, mean=(0.0,), std=(1.0,))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_flip_flips_about_half_and_really_mirrors():
    x = torch.rand(4000, 1, 8, 8)
    spec = ViewSpec(size=8, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.5, **NO_COLOR)
    out = augment(x, spec, gen())
    same = torch.isclose(out, x, atol=1e-5).flatten(1).all(1)
    mirrored = torch.isclose(out, x.flip(-1), atol=1e-5).flatten(1).all(1)
    assert bool((same | mirrored).all())
    frac = mirrored.float().mean().item()
    assert abs(frac - 0.5) < 4 * math.sqrt(0.25 / 4000)


def test_full_crop_is_identity():
    x = torch.rand(3, 3, 16, 16)
    boxes = torch.tensor([[0.0, 0.0, 16.0, 16.0]] * 3)
    assert torch.allclose(resized_crop(x, boxes, 16), x, atol=1e-5)


def test_crop_of_a_known_box_matches_slicing():
    x = torch.rand(2, 3, 16, 16)
    boxes = torch.tensor([[4.0, 2.0, 8.0, 8.0], [0.0, 8.0, 8.0, 8.0]])
    out = resized_crop(x, boxes, 8)  # no rescaling: exact pixel copy
    assert torch.allclose(out[0], x[0, :, 4:12, 2:10], atol=1e-5)
    assert torch.allclose(out[1], x[1, :, 0:8, 8:16], atol=1e-5)


def test_crop_boxes_stay_in_range():
    b = crop_boxes(5000, 32, 48, (0.08, 1.0), (3 / 4, 4 / 3), gen(), torch.device("cpu"))
    top, left, h, w = b.unbind(1)
    assert bool((top >= 0).all() and (left >= 0).all() and (h >= 1).all() and (w >= 1).all())
    assert bool((top + h <= 32).all() and (left + w <= 48).all())
    area = h * w / (32 * 48)
    assert area.min() >= 0.08 - 0.02 and area.max() <= 1.0
    ratio = (w / h)[(area < 0.99)]
    assert ratio.min() >= 3 / 4 - 0.1 and ratio.max() <= 4 / 3 + 0.15
    # same distribution as a scalar transcription of torchvision's RandomResizedCrop.get_params
    ref = torch.tensor([reference_area(32, 48, random.Random(i)) for i in range(5000)])
    assert abs(area.mean().item() - ref.mean().item()) < 0.02
    assert abs(area.std().item() - ref.std().item()) < 0.02


def reference_area(height, width, rng, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    area = height * width
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return w * h / area
    w, h = (width, round(width / ratio[0])) if width / height < ratio[0] else (round(height * ratio[1]), height)
    w, h = (width, height) if ratio[0] <= width / height <= ratio[1] else (w, h)
    return w * h / area


def test_fixed_seed_reproduces_views_and_other_seed_differs():
    x = (torch.rand(16, 3, 32, 32) * 255).to(torch.uint8)
    pipe = view_pipeline("byol", "cifar")
    a, b, c = pipe(x, gen(1)), pipe(x, gen(1)), pipe(x, gen(2))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[0], c[0])


def test_grayscale_probability_and_equal_channels():
    x = torch.rand(2000, 3, 4, 4)
    spec = ViewSpec(size=4, scale=(1, 1), ratio=(1, 1), flip_p=0, jitter_p=0, grayscale_p=0.2, mean=(0,), std=(1,))
    out = augment(x, spec, gen())
    gray = (out[:, 0] - out[:, 1]).abs().flatten(1).max(1).values < 1e-6
    assert abs(gray.float().mean().item() - 0.2) < 0.04
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    assert torch.allclose(grayscale(x)[:, 0], (x * w).sum(1), atol=1e-6)


def test_hue_shift_full_turn_is_identity_and_half_turn_swaps_primaries():
    x = torch.rand(8, 3, 5, 5)
    assert torch.allclose(adjust_hue(x, torch.zeros(8)), x, atol=1e-5)
    red = torch.zeros(1, 3, 1, 1)
    red[0, 0] = 1.0
    cyan = adjust_hue(red, torch.tensor([0.5]))
    assert torch.allclose(cyan.flatten(), torch.tensor([0.0, 1.0, 1.0]), atol=1e-5)


def test_hue_matches_colorsys_per_pixel():
    import colorsys

    x = torch.rand(3, 3, 4, 4, dtype=torch.float64)
    shift = torch.tensor([0.1, -0.3, 0.45], dtype=torch.float64)
    out = adjust_hue(x, shift)
    for i in range(3):
        for p in range(16):
            rgb = x[i, :, p // 4, p % 4].tolist()
            h, s_, v = colorsys.rgb_to_hsv(*rgb)
            ref = colorsys.hsv_to_rgb((h + shift[i].item()) % 1.0, s_, v)
            assert torch.allclose(out[i, :, p // 4, p % 4], torch.tensor(ref, dtype=torch.float64), atol=1e-9)


def test_blur_preserves_constants_and_mean_and_smooths():
    const = torch.full((2, 3, 16, 16), 0.3)
    assert torch.allclose(gaussian_blur(const, torch.tensor([1.0, 2.0]), 9), const, atol=1e-6)
    noise = torch.rand(2, 1, 32, 32)
    out = gaussian_blur(noise, torch.tensor([2.0, 2.0]), 9)
    assert out.var() < 0.3 * noise.var()
    assert abs(out.mean().item() - noise.mean().item()) < 0.01


def test_solarize_inverts_bright_pixels():
    x = torch.tensor([0.2, 0.6, 1.0]).view(1, 1, 1, 3).expand(1, 1, 3, 3).contiguous()
    spec = ViewSpec(size=3, scale=(1, 1), ratio=(1, 1), flip_p=0, jitter_p=0, grayscale_p=0, solarize_p=1.0,
                    mean=(0,), std=(1,))
    out = augment(x, spec, gen())
    assert torch.allclose(out[0, 0, 0], torch.tensor([0.2, 0.4, 0.0]), atol=1e-5)


def test_jitter_brightness_factor_range():
    x = torch.full((3000, 1, 2, 2), 0.5)
    spec = ViewSpec(size=2, scale=(1, 1), ratio=(1, 1), flip_p=0, jitter_p=1.0, brightness=0.4, contrast=0.0,
                    saturation=0, hue=0, grayscale_p=0, mean=(0,), std=(1,))
    out = augment(x, spec, gen())[:, 0, 0, 0] / 0.5  # the brightness factor of each sample
    assert out.min() >= 0.6 - 1e-5 and out.max() <= 1.4 + 1e-5
    assert abs(out.mean().item() - 1.0) < 0.02


def test_all_pipelines_all_resolutions_shapes():
    for res in RESOLUTIONS:
        size = {"mnist": 28, "cifar": 32, "stl": 96, "imagenet": 224}[res]
        ch = 1 if res == "mnist" else 3
        x = (torch.rand(2, ch, size, size) * 255).to(torch.uint8)
        for name in PIPELINES:
            pipe = view_pipeline(name, res, mean=(0.5,) * ch, std=(0.25,) * ch)
            views = pipe(x, gen())
            assert len(views) == pipe.num_views
            assert views[0].shape == (2, ch, size, size)
            assert all(torch.isfinite(v).all() for v in views)
    dino = view_pipeline("dino", "imagenet")
    assert dino.num_views == 10 and dino.specs[-1].size == 96
    byol = view_pipeline("byol", "imagenet")
    assert (byol.specs[0].blur_p, byol.specs[1].blur_p, byol.specs[1].solarize_p) == (1.0, 0.1, 0.2)


def test_eval_view_center_crop_and_identity():
    x = torch.rand(1, 3, 256, 256)
    out = eval_view(x, 224, (0.0,), (1.0,))
    assert torch.allclose(out, x[..., 16:240, 16:240])
    y = torch.rand(2, 1, 28, 28)
    assert torch.allclose(eval_view(y, 28, (0.0,), (1.0,)), y)


def test_view_args_set_every_view_and_evaluation_normalises_alike():
    from sslab.build import normalization, pipeline_from_config
    from sslab.config import resolve

    cfg = resolve(None, ["dataset=mnist5k", "view_args={blur_p: 1.0, mean: [0.0], std: [1.0]}"])
    pipe = pipeline_from_config(cfg)
    assert all(s.blur_p == 1.0 and s.mean == (0.0,) and s.std == (1.0,) for s in pipe.specs)
    assert normalization(cfg) == ((0.0,), (1.0,))
    assert normalization(resolve(None, ["dataset=mnist5k"])) == ((0.1307,), (0.3081,))
    bad = resolve(None, ["view_args={blurp: 1.0}"])
    with pytest.raises(ValueError, match="unknown view_args key 'blurp'; valid choices: .*blur_p"):
        pipeline_from_config(bad)
