"""Frozen features of a backbone over a dataset split (evaluation view, eval-mode BatchNorm)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data.datasets import TensorImages
from ..data.views import eval_view


@torch.no_grad()
def extract_features(
    backbone: nn.Module,
    data,
    size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    device: torch.device | str = "cpu",
    batch_size: int = 512,
    num_workers: int = 0,
    channels_last: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features (N, F), labels (N,))`` for a :class:`TensorImages` or an image ``Dataset``."""
    was_training = backbone.training
    backbone.eval()
    if isinstance(data, TensorImages):
        batches = ((data.images[i : i + batch_size], data.labels[i : i + batch_size]) for i in range(0, len(data), batch_size))
    else:
        batches = ((x, y) for x, y, _ in DataLoader(data, batch_size=batch_size, num_workers=num_workers))
    feats, labels = [], []
    for x, y in batches:
        v = eval_view(x.to(device), size, mean, std)
        if channels_last:
            v = v.contiguous(memory_format=torch.channels_last)
        feats.append(backbone(v).float())
        labels.append(y.to(device))
    backbone.train(was_training)
    return torch.cat(feats), torch.cat(labels)
