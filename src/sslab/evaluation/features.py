"""Frozen features of a backbone over a dataset split (evaluation view, eval-mode BatchNorm).

Under DDP each rank extracts every ``world``-th image (``shard``) and :func:`gather_shards` puts the
rows back in order on every rank, so the work is split rather than repeated; on a GPU the backbone
runs under bf16 autocast (features returned in float32).
"""

from __future__ import annotations

import contextlib

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Subset

from ..data.datasets import TensorImages
from ..data.decode import as_images, collate_images
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
    shard: tuple[int, int] = (0, 1),
    limit: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features (N, F), labels (N,))`` for a :class:`TensorImages` or an image ``Dataset``: of its first
    ``limit`` images (all by default), and of those only every ``world``-th from ``rank`` with
    ``shard=(rank, world)``."""
    rank, world = shard
    n = len(data) if limit is None else min(limit, len(data))
    was_training = backbone.training
    backbone.eval()
    if isinstance(data, TensorImages):
        images, labels_ = data.images[rank:n:world], data.labels[rank:n:world]
        batches = ((images[i : i + batch_size], labels_[i : i + batch_size]) for i in range(0, len(labels_), batch_size))
    else:
        part = Subset(data, range(rank, n, world)) if (world, n) != (1, len(data)) else data
        loader = DataLoader(part, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_images)
        batches = ((x, y) for x, y, _ in loader)
    device = torch.device(device)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    feats, labels = [], []
    for x, y in batches:
        v = eval_view(as_images(x, device), size, mean, std)
        if channels_last:
            v = v.contiguous(memory_format=torch.channels_last)
        with amp:
            feats.append(backbone(v).float())
        labels.append(y.to(device))
    backbone.train(was_training)
    if not feats:  # a rank whose shard is empty
        return torch.zeros(0, 0, device=device), torch.zeros(0, dtype=torch.long, device=device)
    return torch.cat(feats), torch.cat(labels)


def gather_shards(x: torch.Tensor, n: int, world: int) -> torch.Tensor:
    """On every rank, the ``n`` rows whose rank ``r`` holds rows ``r, r + world, ...`` (its ``x``), in order."""
    if world == 1:
        return x
    per = -(-n // world)
    x = torch.cat([x, x.new_zeros(per - x.shape[0], *x.shape[1:])]) if x.shape[0] < per else x
    parts = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(parts, x.contiguous())
    return torch.stack(parts, 1).reshape(per * world, *x.shape[1:])[:n]


def sharded_features(backbone: nn.Module, data, size: int, mean, std, device, limit: int | None = None,
                     **kw) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`extract_features` split over the DDP ranks (each its share) and gathered on every rank."""
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    rank = dist.get_rank() if world > 1 else 0
    n = len(data) if limit is None else min(limit, len(data))
    f, y = extract_features(backbone, data, size, mean, std, device, shard=(rank, world), limit=limit, **kw)
    if world > 1:  # a rank with no images (n < world) still joins the all-gather, with the features' width
        width = torch.tensor([f.shape[1]], device=f.device)
        dist.all_reduce(width, op=dist.ReduceOp.MAX)
        f = f if f.shape[1] == int(width) else f.new_zeros(0, int(width))
    return gather_shards(f, n, world), gather_shards(y, n, world)
