"""The center-vector framework of Jha et al. 2024 (spec §C.2), measured on unit-norm embeddings u = z/‖z‖.

    center        s = E_x E_a u                     (→ ‖s‖ = 1 under complete collapse)
    aug mean      μ(x) = E_a u(a(x))                (its norm: how invariant the views are)
    decomposition E_x‖μ‖² = ‖s‖² + E_x‖μ − s‖²     (all three returned)
    total spread  E‖u − s‖² = 1 − ‖s‖²

Unbiased estimators from B samples with two views: ‖s‖² = mean over i ≠ j of u_iᵀu_j (pooled
views), E‖μ‖² = mean_i u_i¹ᵀu_i² (the mean positive cosine). The plug-in ‖mean u‖² is biased
upward by (1 − ‖s‖²)/B. Under DDP the embeddings are gathered first (no gradient).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses.distributed import gather


def _unit(z: torch.Tensor, gather_distributed: bool) -> torch.Tensor:
    z = z.detach().double()
    return F.normalize(gather(z) if gather_distributed else z, dim=1)


def center_norm(z: torch.Tensor, unbiased: bool = False, gather_distributed: bool = True) -> torch.Tensor:
    """‖s‖ of ``z (N, D)``: the plug-in ‖mean u‖, or with ``unbiased`` √max(0, unbiased ‖s‖²)."""
    u = _unit(z, gather_distributed)
    if not unbiased:
        return u.mean(0).norm()
    b = u.shape[0]
    sq = (u.sum(0).pow(2).sum() - b) / (b * (b - 1))
    return sq.clamp(min=0).sqrt()


def aug_mean_norm(z1: torch.Tensor, z2: torch.Tensor, gather_distributed: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(E_x‖μ(x)‖ with μ estimated by the two views' mean, unbiased E_x‖μ(x)‖² = mean positive cosine)."""
    u1, u2 = _unit(z1, gather_distributed), _unit(z2, gather_distributed)
    return ((u1 + u2) / 2).norm(dim=1).mean(), (u1 * u2).sum(1).mean()


def center_stats(z1: torch.Tensor, z2: torch.Tensor, gather_distributed: bool = True) -> dict[str, float]:
    """Every center-framework number of a two-view batch, unbiased where it matters:
    ``center_sq`` ‖s‖², ``center_norm`` ‖s‖ (plug-in), ``aug_mean_sq`` E‖μ‖², ``aug_mean_norm``,
    ``aug_mean_spread`` E‖μ − s‖² = E‖μ‖² − ‖s‖², ``total_spread`` 1 − ‖s‖²."""
    z1, z2 = z1.detach().double(), z2.detach().double()
    pooled = torch.cat([gather(z1), gather(z2)]) if gather_distributed else torch.cat([z1, z2])
    u = _unit(pooled, False)
    b = u.shape[0]
    center_sq = float((u.sum(0).pow(2).sum() - b) / (b * (b - 1)))
    norm, mu_sq = aug_mean_norm(z1, z2, gather_distributed)
    return {"center_sq": center_sq, "center_norm": float(u.mean(0).norm()), "aug_mean_sq": float(mu_sq),
            "aug_mean_norm": float(norm), "aug_mean_spread": float(mu_sq) - center_sq, "total_spread": 1 - center_sq}
