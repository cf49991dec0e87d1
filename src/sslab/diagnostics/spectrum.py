"""Spectra and rank of an embedding batch ``z (N, D)``: is the representation spread over its dimensions?

* :func:`spectrum` -- eigenvalues of the covariance (or correlation) matrix, descending;
* :func:`effective_rank` -- exp of the entropy of the normalised singular values (Roy & Vetterli 2007);
* :func:`rankme` -- RankMe (Garrido, Balestriero, Najman, LeCun 2023): the same with ε added, on raw embeddings;
* :func:`alpha_req` -- α-ReQ (Agrawal et al. 2022): the power-law decay λ_k ∝ k^−α of the eigenvalues;
* :func:`embedding_std` -- mean per-dimension std of u = z/‖z‖ (SimSiam §4.1; 1/√D healthy, 0 collapsed);
* :func:`alignment`, :func:`uniformity` -- Wang & Isola 2020 on unit-norm views.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..losses.distributed import gather


def _full(z: torch.Tensor, gather_distributed: bool) -> torch.Tensor:
    z = z.detach().double()
    return gather(z) if gather_distributed else z


def spectrum(z: torch.Tensor, correlation: bool = False, gather_distributed: bool = True) -> torch.Tensor:
    """Eigenvalues (descending) of the covariance of ``z``'s dimensions, or of their correlation matrix."""
    z = _full(z, gather_distributed)
    c = torch.cov(z.T)
    if correlation:
        d = torch.sqrt(torch.diagonal(c).clamp(min=1e-30))
        c = c / torch.outer(d, d)
    return torch.linalg.eigvalsh(c).flip(0).clamp(min=0)


def _entropy_rank(values: torch.Tensor, eps: float = 0.0) -> float:
    p = values / values.sum() + eps
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def effective_rank(z: torch.Tensor, gather_distributed: bool = True) -> float:
    """exp(H(p)), p = σ/Σσ over the singular values of the centred batch: 1 for rank one, D for isotropic."""
    z = _full(z, gather_distributed)
    return _entropy_rank(torch.linalg.svdvals(z - z.mean(0)))


def rankme(z: torch.Tensor, eps: float = 1e-7, gather_distributed: bool = True) -> float:
    """RankMe: exp(−Σ p_k log p_k), p_k = σ_k/‖σ‖₁ + ε, on the (uncentred) embeddings (Garrido et al. 2023, Eqn 1)."""
    return _entropy_rank(torch.linalg.svdvals(_full(z, gather_distributed)), eps)


def alpha_req(z: torch.Tensor, fraction: float = 1.0, gather_distributed: bool = True) -> float:
    """α of λ_k ∝ k^−α: least-squares slope of log λ_k against log k over the leading ``fraction``
    of the positive covariance eigenvalues (α-ReQ; α ≈ 1 is reported as best, α → 0 flat/isotropic)."""
    lam = spectrum(z, gather_distributed=gather_distributed)
    lam = lam[lam > lam[0] * 1e-12]
    n = max(2, int(math.ceil(fraction * lam.numel())))
    lam = lam[:n]
    x = torch.log(torch.arange(1, lam.numel() + 1, dtype=lam.dtype))
    y = torch.log(lam)
    x = x - x.mean()
    return float(-(x * (y - y.mean())).sum() / (x * x).sum())


def embedding_std(z: torch.Tensor, gather_distributed: bool = True) -> float:
    """mean_d std_i (z_i/‖z_i‖)_d: 1/√D for embeddings spread over the sphere, 0 under collapse."""
    return float(F.normalize(_full(z, gather_distributed), dim=1).std(0).mean())


def alignment(z1: torch.Tensor, z2: torch.Tensor, alpha: float = 2.0) -> float:
    """Wang & Isola 2020: E‖u1 − u2‖^α over positive pairs (0 = perfectly invariant)."""
    u1, u2 = F.normalize(z1.detach().double(), dim=1), F.normalize(z2.detach().double(), dim=1)
    return float((u1 - u2).norm(dim=1).pow(alpha).mean())


def uniformity(z: torch.Tensor, t: float = 2.0) -> float:
    """Wang & Isola 2020: log E_{i≠j} exp(−t‖u_i − u_j‖²) (→ 0 under collapse, lower = more uniform)."""
    u = F.normalize(z.detach().double(), dim=1)
    sq = torch.cdist(u, u).pow(2)
    n = u.shape[0]
    off = sq[~torch.eye(n, dtype=torch.bool)]
    return float(torch.log(torch.exp(-t * off).mean()))
