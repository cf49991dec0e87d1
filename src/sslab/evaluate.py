"""``sslab eval``: rebuild a run's backbone from its checkpoint and measure kNN / linear accuracy."""

from __future__ import annotations

from pathlib import Path

import torch

from .build import method_from_config, normalization
from .config import Config, resolve
from .data import dataset_info, load_split
from .evaluation import extract_features, knn_accuracy, linear_probe
from .io import CheckpointError, check_fits, safe_load


def load_run_config(checkpoint: Path) -> Config:
    """The ``config.yaml`` saved two levels up from ``<run>/checkpoints/last.ckpt``."""
    for folder in (checkpoint.parent.parent, checkpoint.parent):
        if (folder / "config.yaml").is_file():
            return resolve(str(folder / "config.yaml"))
    raise CheckpointError(f"no config.yaml found next to {checkpoint} or its run folder")


def load_method(checkpoint: str | Path) -> tuple[torch.nn.Module, Config, int]:
    """The trained method of a run (backbone, heads, buffers such as F̂; eval mode), its config and
    the number of optimiser steps it was trained for."""
    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():
        checkpoint = checkpoint / "checkpoints" / "last.ckpt"
    ckpt = safe_load(checkpoint)
    cfg = load_run_config(checkpoint)
    method = method_from_config(cfg)
    prefix = "method."
    state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    check_fits(method.state_dict(), state, checkpoint, f"method '{cfg.method}' as its config.yaml builds it")
    method.load_state_dict(state, strict=False)
    return method.eval(), cfg, int(ckpt.get("global_step", 0))


def load_backbone(checkpoint: str | Path) -> tuple[torch.nn.Module, Config]:
    """The trained backbone of a run (eval mode) and its config."""
    method, cfg, _ = load_method(checkpoint)
    return method.backbone, cfg


def evaluate_checkpoint(checkpoint: str | Path, dataset: str | None = None, data_root: str | None = None,
                        knn: bool = True, linear: bool = False) -> dict:
    """kNN / linear top-1 of a run's backbone on ``dataset`` (default: the one it was trained on).

    Another dataset must have the same number of channels; its images are resized to the
    training crop size and normalised with the training dataset's statistics.
    """
    backbone, cfg = load_backbone(checkpoint)
    name = dataset or cfg.dataset
    info, trained_on = dataset_info(name), dataset_info(cfg.dataset)
    if info.channels != trained_on.channels:
        raise ValueError(f"dataset '{name}' has {info.channels} channel(s); the backbone was trained on {trained_on.channels}")
    root = data_root or (cfg.data_root if name == cfg.dataset else None)
    train, test = load_split(name, info.train_split, root), load_split(name, info.test_split, root)
    # the backbone sees images as in training: its crop size and its dataset's normalisation
    size = cfg.image_size or trained_on.image_size
    mean, std = normalization(cfg)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    backbone = backbone.to(device)
    ftr, ytr = extract_features(backbone, train, size, mean, std, device)
    fte, yte = extract_features(backbone, test, size, mean, std, device)
    keep = ytr >= 0
    result: dict = {"checkpoint": str(checkpoint), "method": cfg.method, "dataset": name}
    if knn:
        result["knn_top1"] = round(knn_accuracy(ftr[keep], ytr[keep], fte, yte, cfg.eval.knn_k, cfg.eval.knn_temperature), 4)
    if linear:
        result["linear_top1"] = round(linear_probe(ftr[keep], ytr[keep], fte, yte, cfg.eval.linear_epochs,
                                                   cfg.eval.linear_lr, cfg.eval.linear_weight_decay), 4)
    return result


__all__ = ["evaluate_checkpoint", "load_backbone", "load_method"]
