"""The center vector of Jha et al. 2024: the mean of the ℓ2-normalised embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .distributed import gather


def center_penalty(z: torch.Tensor, gather_distributed: bool = True) -> torch.Tensor:
    r"""Unbiased estimate of ‖s‖², s = E_x[z(x)/‖z(x)‖], from B embeddings ``z (B, D)``.

    .. math:: \widehat{\|s\|^2} = \frac{1}{B(B-1)} \sum_{i \ne j} u_i^\top u_j, \quad u = z/\|z\|

    (spec §C.2, [DERIVED]): the plug-in ‖mean(u)‖² = (1/B²)(Σ_{i≠j} u_iᵀu_j + B) is biased
    upward by (1 − ‖s‖²)/B; leaving out the i = j terms removes the bias. Pool both views'
    embeddings into ``z`` to use every pair. May be slightly negative when ‖s‖ ≈ 0.
    """
    u = F.normalize(gather(z) if gather_distributed else z, dim=1)
    b = u.shape[0]
    total = u.sum(0)
    return (total.pow(2).sum() - b) / (b * (b - 1))  # Σ_{i≠j} u_iᵀu_j = ‖Σu‖² − Σ‖u_i‖²
