"""Config -> data, views, backbone and method, without Lightning.

The one place a :class:`~sslab.config.Config` becomes objects: ``build(cfg)`` loads the splits,
makes the view pipeline (the method's own, from its spec, unless ``views`` names one) and the
method on a freshly initialised backbone, and returns them as a :class:`Built`. The engine
trains what it returns; ``sslab eval`` and ``sslab analyze`` rebuild a run's backbone, view
pipeline and probe set with the same functions, so the three never disagree.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace

import torch
from torch import nn

from .config import Config, ConfigError
from .data import DatasetInfo, TensorImages, ViewPipeline, ViewSpec, dataset_info, load_split, view_pipeline
from .data.decode import as_images, collate_images, resolve_decode
from .methods import method_spec
from .methods.spec import method_of
from .nets import VIT_SIZES, create_backbone


@dataclass(frozen=True)
class Built:
    """What :func:`build` makes of a config (the method is a module, so "frozen" means the fields, not their state)."""

    info: DatasetInfo  # the dataset's resolution, channels, normalisation and split names
    pretrain: object  # the split pre-training reads (TensorImages, or a Dataset for image folders)
    train: object  # the labelled split the kNN / linear probes fit on (``pretrain`` itself when the same)
    test: object  # the split they are scored on
    pipeline: ViewPipeline  # the training views
    method: nn.Module  # the method on a freshly initialised backbone
    num_classes: int  # 1 + the largest label of train and test
    backbone_name: str  # ``cfg.backbone`` with ``auto`` resolved
    image_size: int  # the crop size the backbone sees


def resolve_backbone(cfg: Config, channels: int, size: int) -> tuple[str, str]:
    """(backbone name, stem) with ``auto`` resolved: a small convnet for small one-channel images, else
    ResNet-18; the CIFAR stem below 64 px, the ImageNet stem above."""
    name = cfg.backbone
    if name == "auto":
        name = "convnet" if size <= 32 and channels == 1 else "resnet18"
    stem = cfg.stem if cfg.stem != "auto" else ("cifar" if size < 64 else "imagenet")
    return name, stem


def backbone_from_config(cfg: Config, channels: int, size: int) -> nn.Module:
    """A freshly initialised backbone of the shape ``cfg`` asks for, on ``channels`` x ``size`` x ``size`` images."""
    name, stem = resolve_backbone(cfg, channels, size)
    if name in VIT_SIZES:
        return create_backbone(name, in_channels=channels, **{"img_size": size, **cfg.backbone_args})
    try:
        return create_backbone(name, in_channels=channels, stem=stem, width=cfg.width, **cfg.backbone_args)
    except TypeError as e:  # an option the backbone's constructor does not take
        raise ConfigError(f"bad backbone_args {dict(cfg.backbone_args)} for {name}: {e}") from None


def global_specs_with(specs: tuple, **changes) -> tuple:
    """``specs`` with ``changes`` applied to those producing the two global views (not multi-crop's locals)."""
    out, seen = [], 0
    for spec in specs:
        out.append(replace(spec, **changes) if seen < 2 else spec)
        seen += spec.n
    return tuple(out)


def normalization(cfg: Config) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) the backbone's inputs are normalised with: the dataset's, unless ``view_args`` sets them
    (luckmatters feeds STL-10 unnormalised); evaluation uses the same."""
    info = dataset_info(cfg.dataset)
    mean, std = cfg.view_args.get("mean", info.mean), cfg.view_args.get("std", info.std)
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def pipeline_from_config(cfg: Config) -> ViewPipeline:
    """The view pipeline ``cfg`` trains with: its method's own (``method_spec(cfg.method).views``) unless
    ``views`` names one; ``crop_scale`` replaces the global views' crop scale."""
    info = dataset_info(cfg.dataset)
    views_name = cfg.views if cfg.views != "auto" else method_spec(cfg.method).views
    pipe = view_pipeline(views_name, info.resolution, size=cfg.image_size or info.image_size, mean=info.mean,
                         std=info.std, local_crops=cfg.local_crops)
    if cfg.crop_scale is not None:
        scale = tuple(float(s) for s in cfg.crop_scale)
        pipe = replace(pipe, specs=global_specs_with(pipe.specs, scale=scale))
    if cfg.view_args:
        fields = sorted(f.name for f in dataclasses.fields(ViewSpec) if f.name not in ("size", "n"))
        bad = [k for k in cfg.view_args if k not in fields]
        if bad:
            raise ValueError(f"unknown view_args key '{bad[0]}'; valid choices: {', '.join(fields)}")
        changes = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.view_args.items()}
        pipe = replace(pipe, specs=tuple(replace(s, **changes) for s in pipe.specs))
    return pipe


def method_from_config(cfg: Config) -> nn.Module:
    """Method ``cfg.method`` (with ``cfg.method_args``) on a freshly initialised backbone for ``cfg.dataset``'s
    images at the training crop size; no data is loaded (what ``sslab eval`` fills from a checkpoint)."""
    info = dataset_info(cfg.dataset)
    size = cfg.image_size or info.image_size
    # the options' effect was checked where they were typed (config.resolve); a recipe's shared settings are not
    return method_of(cfg.method, backbone_from_config(cfg, info.channels, size), cfg.method_args, typed=set())


def probe_images(data, n: int) -> torch.Tensor:
    """The first ``n`` images of a split as one uint8 tensor ``(n, C, H, W)`` (the diagnostics' fixed probe set)."""
    if isinstance(data, TensorImages):
        return data.images[:n]
    items = [data[i][0] for i in range(min(n, len(data)))]
    return as_images(collate_images([(x, 0, 0) for x in items])[0], "cpu")


#: the draw of the held-out images (``holdout``): fixed, so every seed and every tuned value sees the same split
HOLDOUT_SEED = 20261207


def split_holdout(train: TensorImages, n: int) -> tuple[TensorImages, TensorImages]:
    """``train`` split into (the rest, ``n`` held-out images): a fixed random draw (:data:`HOLDOUT_SEED`),
    each part in the original order."""
    if not isinstance(train, TensorImages):
        raise ConfigError("holdout needs an in-memory dataset (image folders have a val/ split of their own); "
                          "valid: holdout=0")
    if not 0 < n < len(train):
        raise ConfigError(f"holdout={n} leaves no training images; valid range: 1 to {len(train) - 1}")
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(HOLDOUT_SEED))
    held, rest = perm[:n].sort().values, perm[n:].sort().values
    part = lambda idx: TensorImages(train.images[idx], train.labels[idx], train.classes)  # noqa: E731
    return part(rest), part(held)


def build(cfg: Config) -> Built:
    """Data, view pipeline and method for ``cfg`` (no Lightning objects); fails on bad names or data
    before anything is written."""
    info = dataset_info(cfg.dataset)
    # the loader's own options, as the dataset declares them (verify_md5, strict_counts, classes_file)
    kw = {k: getattr(cfg, k) for k in info.options if getattr(cfg, k) is not None}
    if "decode" in kw:
        kw["decode"] = resolve_decode(kw["decode"], cfg.accelerator)
    pretrain = load_split(cfg.dataset, info.pretrain_split, cfg.data_root, **kw)
    same = info.train_split == info.pretrain_split
    train = pretrain if same else load_split(cfg.dataset, info.train_split, cfg.data_root, **kw)
    if cfg.holdout:  # tuning: train on the rest of the training split, score the held-out images, never the test split
        if not same:
            raise ConfigError(f"holdout needs a dataset whose pretrain split is its train split ({cfg.dataset} "
                              f"pre-trains on '{info.pretrain_split}'); valid: holdout=0")
        train, test = split_holdout(train, cfg.holdout)
        pretrain = train
    else:
        test = load_split(cfg.dataset, info.test_split, cfg.data_root, **kw)
    size = cfg.image_size or info.image_size
    pipe = pipeline_from_config(cfg)
    name, _ = resolve_backbone(cfg, info.channels, size)
    method = method_from_config(cfg)
    classes = int(max(int(train.labels.max()), int(test.labels.max())) + 1)
    return Built(info=info, pretrain=pretrain, train=train, test=test, pipeline=pipe, method=method,
                 num_classes=classes, backbone_name=name, image_size=size)


__all__ = ["Built", "backbone_from_config", "build", "global_specs_with", "method_from_config", "normalization",
           "pipeline_from_config",
           "probe_images", "resolve_backbone"]
