"""Sample-contrastive losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .distributed import gather, rank

NEGATIVE_TRANSFORMS = ("none", "abs", "sq")


def info_nce(
    z1: torch.Tensor,
    z2: torch.Tensor,
    temperature: float = 0.5,
    gather_distributed: bool = True,
    negatives: str = "none",
    decoupled: bool = False,
    normalize: bool = True,
) -> torch.Tensor:
    r"""NT-Xent / InfoNCE of SimCLR (Chen et al. 2020, Eqn 1), averaged over the 2N anchors.

    With :math:`u = z/\|z\|` for the 2N embeddings of both views, each anchor *i* with positive
    *p(i)* contributes

    .. math:: \ell_i = -\log \frac{\exp(u_i^\top u_{p(i)}/\tau)}{\sum_{k \ne i} \exp(u_i^\top u_k/\tau)}

    and the loss is :math:`\frac{1}{2N}\sum_i \ell_i`, the NT-Xent normalisation of solo-learn and
    LightlySSL (the official SimCLR code sums the two directions, each a mean over N anchors: twice
    this value). Under DDP the candidates *k* come from every rank (``gather_distributed``), the
    anchors from this rank only, with the positives at this rank's offset (solo-learn issue #206).

    Variants of Garrido et al. 2023 (Prop. 3.2): ``negatives="abs"`` / ``"sq"`` replace the negative
    cosines by their absolute value / square (SimCLR-abs / -sq; applied to negatives only, the
    spec's recommendation since the supplementary is NOT FOUND). ``decoupled=True`` drops the
    positive from the denominator: DCL (Yeh et al. 2022).

    ``normalize=False`` uses the embeddings as given (SimCLR B of Garrido et al., whose
    dimensions are standardised instead, :func:`sslab.losses.standardize_dimensions`).

    ``z1``, ``z2``: ``(N, D)`` embeddings of the two views (row i of each is the same image).
    """
    if negatives not in NEGATIVE_TRANSFORMS:
        raise ValueError(f"unknown negatives transform '{negatives}'; valid choices: {', '.join(NEGATIVE_TRANSFORMS)}")
    u1, u2 = (F.normalize(z1, dim=1), F.normalize(z2, dim=1)) if normalize else (z1, z2)
    n = u1.shape[0]
    a1, a2 = (gather(u1), gather(u2)) if gather_distributed else (u1, u2)
    offset = rank() * n if gather_distributed else 0
    candidates = torch.cat([a1, a2], 0)  # (2M, D), M = global batch
    m = a1.shape[0]
    anchors = torch.cat([u1, u2], 0)  # (2N, D)
    sim = anchors @ candidates.T
    rows = torch.arange(2 * n, device=z1.device)
    local = torch.arange(n, device=z1.device) + offset
    self_idx = torch.cat([local, local + m])
    pos_idx = torch.cat([local + m, local])
    positive = sim[rows, pos_idx]
    if negatives == "abs":
        sim = sim.abs()
    elif negatives == "sq":
        sim = sim.pow(2)
    logits = sim / temperature
    minus_inf = logits.new_full((), float("-inf"))  # filled on the device (``= float(...)`` copies from the host)
    logits.index_put_((rows, self_idx), minus_inf)  # k != i
    if decoupled:
        logits.index_put_((rows, pos_idx), minus_inf)  # DCL: negatives only in the denominator
        return (torch.logsumexp(logits, 1) - positive / temperature).mean()
    logits[rows, pos_idx] = positive / temperature  # the positive keeps its raw cosine
    return F.cross_entropy(logits, pos_idx)


def spectral_contrastive(z1: torch.Tensor, z2: torch.Tensor, gather_distributed: bool = True,
                         mu: float | None = None) -> torch.Tensor:
    r"""Spectral contrastive loss (HaoChen et al. 2021): :math:`-2\,E[z^\top z^+] + E[(z^\top z^-)^2]`.

    Positives are the N pairs (z1_i, z2_i); negatives every cross-view pair (z1_i, z2_j), j ≠ i, of
    the (gathered) batch. With ``mu`` (μ; official: 1 on CIFAR, 10 on ImageNet) each embedding
    outside the ball of radius √μ is first projected onto it and the loss is divided by μ, as the
    official ``D(z1, z2, mu)`` (``jhaochenz96/spectral_contrastive_learning``, ``models/spectral.py``
    l. 8-17); ``mu=None`` uses the embeddings as given.
    """
    if mu is not None:
        if mu <= 0:
            raise ValueError(f"spectral contrastive mu must be > 0 (the squared ball radius), got {mu}")
        z1, z2 = (torch.where(z.norm(dim=1, keepdim=True) < mu**0.5, z, F.normalize(z, dim=1) * mu**0.5)
                  for z in (z1, z2))
    n = z1.shape[0]
    b2 = gather(z2) if gather_distributed else z2
    offset = rank() * n if gather_distributed else 0
    cross = z1 @ b2.T  # (N, M)
    idx = torch.arange(n, device=z1.device)
    positive = cross[idx, idx + offset]
    pairs = torch.arange(cross.shape[1], device=z1.device)[None] == (idx + offset)[:, None]  # z_i with its own z_i^+
    # the mean over the negatives, masked rather than gathered (a boolean gather's size is read on the host)
    negative = cross.pow(2).masked_fill(pairs, 0.0).sum() / (n * (cross.shape[1] - 1))
    loss = -2 * positive.mean() + negative
    return loss / mu if mu is not None else loss


def momentum_contrast(
    q: torch.Tensor,
    k: torch.Tensor,
    temperature: float = 0.2,
    queue: torch.Tensor | None = None,
    batch_negatives: bool = True,
    gather_distributed: bool = True,
) -> torch.Tensor:
    r"""InfoNCE of queries against keys (MoCo, He et al. 2020; Chen et al. 2021; NNCLR, Dwibedi et al. 2021).

    With :math:`\hat q = q/\|q\|`, :math:`\hat k = k/\|k\|`, query *i*'s positive is key *i* and

    .. math:: \ell_i = -\log \frac{\exp(\hat q_i^\top \hat k_i/\tau)}{\exp(\hat q_i^\top \hat k_i/\tau)
              + \sum_{k^- \in \mathcal N} \exp(\hat q_i^\top k^-/\tau)}, \quad \mathcal L = \tfrac1N \textstyle\sum_i \ell_i .

    ``batch_negatives=True``, no queue: the negatives are the other keys of the batch, gathered from
    every rank (differentiably), the positive at this rank's offset -- MoCo v3
    (``moco-v3/moco/builder.py`` ``ctr_loss``; it then multiplies by 2τ, see ``temperature_scale``
    of the method) and NNCLR (``solo/losses/nnclr.py``: queries = nearest neighbours, keys = the
    other view's predictions). ``batch_negatives=False`` with a ``queue`` of ``(K, D)`` normalised
    past keys: the negatives are the queue only -- MoCo v2 (``moco/builder.py``: logits
    ``[l_pos, l_neg]``, label 0). Keys are used as given: MoCo passes its momentum encoder's keys
    detached, NNCLR its predictions with their gradient.
    """
    q = F.normalize(q, dim=1)
    k = F.normalize(k, dim=1)
    n = q.shape[0]
    parts, labels = [], torch.arange(n, device=q.device)
    if batch_negatives:
        keys = gather(k) if gather_distributed else k
        parts.append(q @ keys.T)
        labels = labels + (rank() * n if gather_distributed else 0)
    else:
        parts.append((q * k).sum(1, keepdim=True))
        labels = torch.zeros(n, dtype=torch.long, device=q.device)
    if queue is not None and queue.shape[0]:
        parts.append(q @ queue.detach().T.to(q.dtype))
    return F.cross_entropy(torch.cat(parts, 1) / temperature, labels)
