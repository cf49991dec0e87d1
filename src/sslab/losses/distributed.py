"""Cross-rank gathering for losses that use batch statistics (the one helper they all share).

``gather`` concatenates a tensor from every rank along dim 0 and keeps the gradient of the local
slice (``torch.distributed.nn.functional.all_gather`` back-propagates to every rank's input), so a
loss computed on the gathered batch has the same value and gradients as on one big batch.
Without an initialised process group it is the identity.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def gather(x: torch.Tensor) -> torch.Tensor:
    """All ranks' ``x`` concatenated along dim 0 (rank order), differentiable."""
    if world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), 0)
