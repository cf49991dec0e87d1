"""Dimension-contrastive losses: decorrelate the embedding dimensions (Barlow Twins, VICReg)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .distributed import gather


def off_diagonal(m: torch.Tensor) -> torch.Tensor:
    """The off-diagonal entries of a square matrix, flattened (the official Barlow Twins helper)."""
    n = m.shape[0]
    return m.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def barlow_twins(z1: torch.Tensor, z2: torch.Tensor, lambd: float = 5e-3, eps: float = 1e-5,
                 gather_distributed: bool = True) -> torch.Tensor:
    r"""Barlow Twins (Zbontar et al. 2021, Eqn 1-2), official ``facebookresearch/barlowtwins`` normalisation.

    Each dimension is standardised over the batch as by ``BatchNorm1d(affine=False)`` in train mode
    (biased variance, ``eps`` inside the square root), the cross-correlation is
    :math:`C = \hat z_1^\top \hat z_2 / N` and

    .. math:: \mathcal{L} = \sum_i (1 - C_{ii})^2 + \lambda \sum_{i \ne j} C_{ij}^2 .

    Under DDP the batch is gathered first, which equals the official SyncBN + ``all_reduce(c)``
    with ``c`` divided by the global batch size. The official default is ``lambd=0.0051``.
    """
    if gather_distributed:
        z1, z2 = gather(z1), gather(z2)
    n = z1.shape[0]
    z1 = (z1 - z1.mean(0)) / torch.sqrt(z1.var(0, unbiased=False) + eps)
    z2 = (z2 - z2.mean(0)) / torch.sqrt(z2.var(0, unbiased=False) + eps)
    c = z1.T @ z2 / n
    on_diag = (torch.diagonal(c) - 1).pow(2).sum()
    return on_diag + lambd * off_diagonal(c).pow(2).sum()


def vicreg(z1: torch.Tensor, z2: torch.Tensor, sim: float = 25.0, var: float = 25.0, cov: float = 1.0,
           eps: float = 1e-4, gather_distributed: bool = True) -> torch.Tensor:
    r"""VICReg (Bardes et al. 2022, Eqns 1-6) exactly as the official ``main_vicreg.py``.

    invariance ``mse(z1, z2)`` (mean over N·D, on the local batch); then, on the gathered batch,
    each dimension centred, ``std = sqrt(var + 1e-4)`` (unbiased variance),
    ``v = mean(relu(1 - std))`` per branch, covariance ``C = zᵀz/(N-1)`` and
    ``c = Σ_{i≠j} C_ij² / D`` per branch:

    .. math:: \mathcal{L} = \lambda\,\mathrm{inv} + \mu\,\tfrac12 (v_1 + v_2) + \nu\,(c_1 + c_2)

    with defaults λ = μ = 25, ν = 1 (the official ``--sim-coeff``, ``--std-coeff``, ``--cov-coeff``).
    """
    repr_loss = F.mse_loss(z1, z2)
    if gather_distributed:
        z1, z2 = gather(z1), gather(z2)
    n, d = z1.shape
    z1 = z1 - z1.mean(0)
    z2 = z2 - z2.mean(0)
    std1, std2 = torch.sqrt(z1.var(0) + eps), torch.sqrt(z2.var(0) + eps)
    std_loss = F.relu(1 - std1).mean() / 2 + F.relu(1 - std2).mean() / 2
    cov1, cov2 = z1.T @ z1 / (n - 1), z2.T @ z2 / (n - 1)
    cov_loss = off_diagonal(cov1).pow(2).sum() / d + off_diagonal(cov2).pow(2).sum() / d
    return sim * repr_loss + var * std_loss + cov * cov_loss
