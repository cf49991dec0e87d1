"""The two criteria of Garrido et al. 2023 (Definition 3.2), for an embedding matrix ``z (N, M)``.

With K = zᵀ (columns are the N embeddings, rows the M dimensions):
sample-contrastive ``L_c = ‖KᵀK − diag(KᵀK)‖_F²`` penalises the off-diagonal Gram matrix,
dimension-contrastive ``L_nc = ‖KKᵀ − diag(KKᵀ)‖_F²`` the off-diagonal (uncentred) covariance.
Theorem 3.3: ``L_nc + Σ_j ‖K_j,·‖⁴ = L_c + Σ_i ‖K_·,i‖⁴`` (both sides equal ‖KᵀK‖_F² = ‖KKᵀ‖_F²).
"""

from __future__ import annotations

import torch


def _offdiag_sq_sum(m: torch.Tensor) -> torch.Tensor:
    return m.pow(2).sum() - torch.diagonal(m).pow(2).sum()


def sample_contrastive(z: torch.Tensor) -> torch.Tensor:
    """``L_c = Σ_{i≠j} (z_i · z_j)²`` over the N rows (samples) of ``z (N, M)``."""
    return _offdiag_sq_sum(z @ z.T)


def dimension_contrastive(z: torch.Tensor) -> torch.Tensor:
    """``L_nc = Σ_{k≠l} (z_·k · z_·l)²`` over the M columns (dimensions) of ``z (N, M)``."""
    return _offdiag_sq_sum(z.T @ z)
