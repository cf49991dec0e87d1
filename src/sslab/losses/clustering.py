"""SwAV (Caron et al. 2020): swapped prediction of online cluster assignments, equipartitioned by Sinkhorn-Knopp."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .distributed import world_size


@torch.no_grad()
def sinkhorn_knopp(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    r"""Soft assignments Q of B samples to K prototypes with equal cluster sizes (SwAV Eqn 3-4).

    ``scores (B, K)`` are the prototype scores. As the official ``distributed_sinkhorn``:
    :math:`Q = \exp(S^\top/\epsilon)` normalised to sum 1, then ``iterations`` rounds of
    rows ← rows / (K · row sums) (sums over every rank) and columns ← columns / (B · column sums),
    finally scaled so every column (sample) sums to 1. Returns ``(B, K)``.
    """
    s = scores.to(torch.promote_types(scores.dtype, torch.float32))  # at least float32 under mixed precision
    if world_size() > 1:  # the same shift on every rank (it cancels in the normalisation)
        top = s.max()
        dist.all_reduce(top, op=dist.ReduceOp.MAX)
    else:
        top = s.max()
    q = torch.exp((s - top) / epsilon).T  # shifted: exp(s/ε) overflows at ε = 0.05 otherwise
    b = q.shape[1] * world_size()
    k = q.shape[0]
    total = q.sum()
    if world_size() > 1:
        dist.all_reduce(total)
    q /= total
    for _ in range(iterations):
        rows = q.sum(1, keepdim=True)
        if world_size() > 1:
            dist.all_reduce(rows)
        q /= rows * k
        q /= q.sum(0, keepdim=True) * b
    return (q * b).T


def swav(
    scores: Sequence[torch.Tensor],
    temperature: float = 0.1,
    epsilon: float = 0.05,
    sinkhorn_iterations: int = 3,
    crops_for_assign: Sequence[int] = (0, 1),
    queue_scores: Sequence[torch.Tensor | None] | None = None,
) -> torch.Tensor:
    r"""SwAV's swapped-prediction loss (Caron et al. 2020, Eqn 1-2), official ``main_swav.py``.

    ``scores[v]`` is ``(B, K)``: crop *v*'s normalised embeddings times the normalised prototypes.
    For each crop *a* in ``crops_for_assign`` the codes :math:`q_a` = Sinkhorn-Knopp of its scores
    (with ``queue_scores[a]``, scores of stored past embeddings, prepended: they enlarge the
    batch the equipartition acts on, and only the current rows are kept). Every other crop *v*
    predicts them:

    .. math:: \mathcal L = \frac{1}{|A|}\sum_{a \in A} \frac{1}{V-1}\sum_{v \ne a}
              -\frac1B \sum_i \sum_k q_{a,ik} \log \mathrm{softmax}(s_{v,i}/\tau)_k
    """
    total = scores[0].new_zeros(())
    for i, a in enumerate(crops_for_assign):
        with torch.no_grad():
            s = scores[a].detach()
            extra = queue_scores[i] if queue_scores is not None else None
            if extra is not None and extra.shape[0]:
                s = torch.cat([extra.to(s.dtype), s])
            q = sinkhorn_knopp(s, epsilon, sinkhorn_iterations)[-scores[a].shape[0]:]
        sub = scores[0].new_zeros(())
        others = [v for v in range(len(scores)) if v != a]
        for v in others:
            sub = sub - (q * F.log_softmax(scores[v] / temperature, dim=1)).sum(1).mean()
        total = total + sub / len(others)
    return total / len(crops_for_assign)
