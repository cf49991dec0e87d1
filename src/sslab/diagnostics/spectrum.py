"""Spectra and rank of an embedding batch ``z (N, D)``: is the representation spread over its dimensions?

* :func:`spectrum` -- eigenvalues of the covariance (or correlation) matrix, descending;
* :func:`effective_rank` -- exp of the entropy of the normalised singular values (Roy & Vetterli 2007);
* :func:`rankme` -- RankMe (Garrido, Balestriero, Najman, LeCun 2023): the same with ε added, on raw embeddings;
* :func:`alpha_req` -- α-ReQ (Agrawal et al. 2022): the power-law decay λ_k ∝ k^−α of the eigenvalues;
* :func:`embedding_std` -- mean per-dimension std of u = z/‖z‖ (SimSiam §4.1; 1/√D healthy, 0 collapsed);
* :func:`alignment`, :func:`uniformity` -- Wang & Isola 2020 on unit-norm views.

When the batch is smaller than the dimension (N < D: a 512-image probe set under an 8192-wide
Barlow Twins / VICReg head) the D × D covariance has rank < N, and its nonzero eigenvalues are
those of the N × N Gram matrix (``zᵀz`` and ``z zᵀ`` share them): every function here then
decomposes the Gram matrix, O(N²D + N³) instead of O(ND² + D³) (at N = 512, D = 8192 the
difference between a fraction of a second and minutes), and gives the same values up to rounding
(tests/test_diagnostics.py compares both routes).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..losses.distributed import gather


def _full(z: torch.Tensor, gather_distributed: bool) -> torch.Tensor:
    z = z.detach().double()
    return gather(z) if gather_distributed else z


def squared_singular_values(z: torch.Tensor) -> torch.Tensor:
    """σ_k² of ``z`` ``(N, D)``, descending, min(N, D) of them: eigenvalues of the smaller of ``zᵀz`` and
    ``z zᵀ``; those below the rounding floor N·ε·σ_max² are set to 0 (as an SVD would leave them ~0)."""
    gram = z @ z.T if z.shape[0] < z.shape[1] else z.T @ z
    lam = torch.linalg.eigvalsh(gram).flip(0).clamp(min=0)
    floor = lam[0] * max(gram.shape[0], 1) * torch.finfo(lam.dtype).eps
    return torch.where(lam > floor, lam, torch.zeros_like(lam))


def _singular_values(z: torch.Tensor) -> torch.Tensor:
    """σ of ``z``: an SVD when N ≥ D, the Gram route (module docstring) when N < D."""
    return torch.linalg.svdvals(z) if z.shape[0] >= z.shape[1] else squared_singular_values(z).sqrt()


def spectrum(z: torch.Tensor, correlation: bool = False, gather_distributed: bool = True) -> torch.Tensor:
    """Eigenvalues (descending, D of them) of the covariance of ``z``'s dimensions, or of their correlation matrix."""
    z = _full(z, gather_distributed)
    n, d = z.shape
    if n < d:  # the D - N + 1 others are 0: the centred batch has rank <= N - 1
        zc = z - z.mean(0)
        if correlation:
            zc = zc / zc.pow(2).sum(0).div(n - 1).sqrt().clamp(min=1e-15)
        lam = squared_singular_values(zc) / (n - 1)
        return torch.cat([lam, lam.new_zeros(d - n)])
    c = torch.cov(z.T)
    if correlation:
        sd = torch.sqrt(torch.diagonal(c).clamp(min=1e-30))
        c = c / torch.outer(sd, sd)
    return torch.linalg.eigvalsh(c).flip(0).clamp(min=0)


def _entropy_rank(values: torch.Tensor, eps: float = 0.0) -> float:
    p = values / values.sum() + eps
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def effective_rank(z: torch.Tensor, gather_distributed: bool = True) -> float:
    """exp(H(p)), p = σ/Σσ over the singular values of the centred batch: 1 for rank one, D for isotropic."""
    z = _full(z, gather_distributed)
    return _entropy_rank(_singular_values(z - z.mean(0)))


def rankme(z: torch.Tensor, eps: float = 1e-7, gather_distributed: bool = True) -> float:
    """RankMe: exp(−Σ p_k log p_k), p_k = σ_k/‖σ‖₁ + ε, on the (uncentred) embeddings (Garrido et al. 2023, Eqn 1)."""
    return _entropy_rank(_singular_values(_full(z, gather_distributed)), eps)


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
