"""Dimension-contrastive losses: decorrelate the embedding dimensions (Barlow Twins, VICReg)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .distributed import gather, rank

CTR_CENTERINGS = ("dimension", "embedding")  # VICReg-ctr: Table 1's reading, or Eqn 13 literally


def off_diagonal(m: torch.Tensor) -> torch.Tensor:
    """The off-diagonal entries of a square matrix, flattened (the official Barlow Twins helper)."""
    n = m.shape[0]
    return m.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def barlow_twins(z1: torch.Tensor, z2: torch.Tensor, lambd: float = 5e-3, eps: float = 1e-5,
                 gather_distributed: bool = True, scale: float = 1.0) -> torch.Tensor:
    r"""Barlow Twins (Zbontar et al. 2021, Eqn 1-2), official ``facebookresearch/barlowtwins`` normalisation.

    Each dimension is standardised over the batch as by ``BatchNorm1d(affine=False)`` in train mode
    (biased variance, ``eps`` inside the square root), the cross-correlation is
    :math:`C = \hat z_1^\top \hat z_2 / N` and

    .. math:: \mathcal{L} = \sum_i (1 - C_{ii})^2 + \lambda \sum_{i \ne j} C_{ij}^2 .

    Under DDP the batch is gathered first, which equals the official SyncBN + ``all_reduce(c)``
    with ``c`` divided by the global batch size. The official default is ``lambd=0.0051``;
    ``scale`` multiplies the whole loss (the first official release's ``--scale-loss`` 0.024,
    solo-learn's ``scale_loss`` 0.1).
    """
    if gather_distributed:
        z1, z2 = gather(z1), gather(z2)
    n = z1.shape[0]
    z1 = (z1 - z1.mean(0)) / torch.sqrt(z1.var(0, unbiased=False) + eps)
    z2 = (z2 - z2.mean(0)) / torch.sqrt(z2.var(0, unbiased=False) + eps)
    c = z1.T @ z2 / n
    on_diag = (torch.diagonal(c) - 1).pow(2).sum()
    return scale * (on_diag + lambd * off_diagonal(c).pow(2).sum())


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


def _lse_offdiag(c: torch.Tensor, diagonal: torch.Tensor, temperature: float) -> torch.Tensor:
    """mean_i log Σ_{j≠i} exp(C_ij/τ); ``diagonal`` marks the entries j = i of each row."""
    return torch.logsumexp((c / temperature).masked_fill(diagonal, float("-inf")), dim=1).mean()


def vicreg_exp(z1: torch.Tensor, z2: torch.Tensor, sim: float = 25.0, var: float = 25.0, cov: float = 1.0,
               temperature: float = 0.1, transpose: bool = False, centering: str = "dimension", eps: float = 1e-4,
               gather_distributed: bool = True) -> torch.Tensor:
    r"""VICReg-exp and VICReg-ctr of Garrido et al. 2023 (Eqns 11-13).

    VICReg with its covariance term replaced by a LogSumExp over the off-diagonal covariances,

    .. math:: c_{\exp}(K) = \frac1d \sum_i \log \sum_{j \ne i} \exp\big(C(K)_{ij}/\tau\big),\qquad
              \mathcal L = \lambda\,\mathrm{inv} + \mu\,\tfrac12(v(K)+v(K')) + \nu\,(c_{\exp}(K)+c_{\exp}(K'))

    with C, v and the invariance exactly as :func:`vicreg` (official ``main_vicreg.py``
    conventions). ``transpose=True`` gives VICReg-ctr (Eqn 13): both the variance hinge and
    ``c_exp`` act on Kᵀ, i.e. on the samples -- each embedding is centred over its dimensions,
    its std over dimensions is held above 1 and the LSE repels the off-diagonal entries of the
    N x N Gram matrix of centred embeddings, "the same repulsive force as in DCL".

    The paper gives VICReg-ctr two descriptions that disagree, and its pseudocode (supplementary
    §I) is NOT FOUND, so ``centering`` keeps both:

    * ``"dimension"`` (default) -- Table 1's row "dimension centring ✓, embedding norm 1": each
      dimension is centred over the (gathered) batch as in VICReg, the LSE repels the cosines of
      the centred embeddings (unit norm; "the same repulsive force as in DCL", which also uses
      cosines) and the transposed variance hinge acts on the centred embeddings' spread over their
      dimensions ("the variance term then regularises embedding norms", §4);
    * ``"embedding"`` -- Eqn 13 read literally, K → Kᵀ everywhere: each embedding is centred over
      its D dimensions and the LSE acts on C(Kᵀ) = K̃ᵀK̃/(D − 1).

    τ, and λ, μ, ν of each variant, are in the paper's Table S6, NOT FOUND (spec §D.2): τ = 0.1
    and the VICReg coefficients are our documented defaults. Under DDP the dimension statistics
    (VICReg-exp, and VICReg-ctr's dimension means) use the gathered batch; VICReg-ctr's rows are
    the local samples and its Gram columns every rank's samples.
    """
    if centering not in CTR_CENTERINGS:
        raise ValueError(f"unknown centering '{centering}'; valid choices: {', '.join(CTR_CENTERINGS)}")
    repr_loss = F.mse_loss(z1, z2)
    total = sim * repr_loss
    for z in (z1, z2):
        if transpose:
            if centering == "embedding":
                zc = z - z.mean(1, keepdim=True)  # centre each embedding over its D dimensions
                rows = zc / math.sqrt(z.shape[1] - 1)  # rows of C(Kᵀ) = K̃ᵀK̃/(D − 1)
            else:
                zc = z - (gather(z) if gather_distributed else z).mean(0)  # centre each dimension over the batch
                rows = F.normalize(zc, dim=1)  # embedding norm 1: the Gram holds cosines
            std = torch.sqrt(zc.var(1) + eps)
            cols = gather(rows) if gather_distributed else rows
            gram = rows @ cols.T
            offset = rank() * z.shape[0] if gather_distributed else 0
            diagonal = torch.zeros_like(gram, dtype=torch.bool)
            diagonal[:, offset:offset + z.shape[0]].fill_diagonal_(True)
            c_exp = _lse_offdiag(gram, diagonal, temperature)
        else:
            full = gather(z) if gather_distributed else z
            zc = full - full.mean(0)
            std = torch.sqrt(zc.var(0) + eps)
            c = zc.T @ zc / (zc.shape[0] - 1)
            c_exp = _lse_offdiag(c, torch.eye(c.shape[0], dtype=torch.bool, device=c.device), temperature)
        total = total + var * F.relu(1 - std).mean() / 2 + cov * c_exp
    return total
