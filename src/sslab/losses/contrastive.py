"""Sample-contrastive losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .distributed import gather, rank


def info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5, gather_distributed: bool = True) -> torch.Tensor:
    r"""NT-Xent / InfoNCE of SimCLR (Chen et al. 2020, Eqn 1), averaged over the 2N anchors.

    With :math:`u = z/\|z\|` for the 2N embeddings of both views, each anchor *i* with positive
    *p(i)* contributes

    .. math:: \ell_i = -\log \frac{\exp(u_i^\top u_{p(i)}/\tau)}{\sum_{k \ne i} \exp(u_i^\top u_k/\tau)}

    and the loss is :math:`\frac{1}{2N}\sum_i \ell_i` -- the official SimCLR normalisation
    (``tf.losses.softmax_cross_entropy`` over both directions, each averaged over its N anchors,
    summed and halved here, i.e. a mean over 2N anchors). Under DDP the candidates
    :math:`k` come from every rank (``gather_distributed``), the anchors from this rank only,
    with the positives found at this rank's offset (solo-learn issue #206).

    ``z1``, ``z2``: ``(N, D)`` embeddings of the two views (row i of each is the same image).
    """
    u1, u2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    n = u1.shape[0]
    a1, a2 = (gather(u1), gather(u2)) if gather_distributed else (u1, u2)
    offset = rank() * n if gather_distributed else 0
    candidates = torch.cat([a1, a2], 0)  # (2M, D), M = global batch
    m = a1.shape[0]
    anchors = torch.cat([u1, u2], 0)  # (2N, D)
    logits = anchors @ candidates.T / temperature
    local = torch.arange(n, device=z1.device) + offset
    self_idx = torch.cat([local, local + m])
    pos_idx = torch.cat([local + m, local])
    logits[torch.arange(2 * n, device=z1.device), self_idx] = float("-inf")  # exclude k == i
    return F.cross_entropy(logits, pos_idx)
