"""The two criteria of Garrido et al. 2023 (Definition 3.2), for an embedding matrix ``z (N, M)``.

With K = zᵀ (columns are the N embeddings, rows the M dimensions):
sample-contrastive ``L_c = ‖KᵀK − diag(KᵀK)‖_F²`` penalises the off-diagonal Gram matrix,
dimension-contrastive ``L_nc = ‖KKᵀ − diag(KKᵀ)‖_F²`` the off-diagonal (uncentred) covariance.
Theorem 3.3: ``L_nc + Σ_j ‖K_j,·‖⁴ = L_c + Σ_i ‖K_·,i‖⁴`` (both sides equal ‖KᵀK‖_F² = ‖KKᵀ‖_F²).
"""

from __future__ import annotations

import torch

from .distributed import gather


def _offdiag_sq_sum(m: torch.Tensor) -> torch.Tensor:
    return m.pow(2).sum() - torch.diagonal(m).pow(2).sum()


def sample_contrastive(z: torch.Tensor) -> torch.Tensor:
    """``L_c = Σ_{i≠j} (z_i · z_j)²`` over the N rows (samples) of ``z (N, M)``."""
    return _offdiag_sq_sum(z @ z.T)


def dimension_contrastive(z: torch.Tensor) -> torch.Tensor:
    """``L_nc = Σ_{k≠l} (z_·k · z_·l)²`` over the M columns (dimensions) of ``z (N, M)``."""
    return _offdiag_sq_sum(z.T @ z)


def standardize_dimensions(z: torch.Tensor, scale: bool = True, gather_distributed: bool = True) -> torch.Tensor:
    r"""Dimension centring / standardisation of SimCLR, Garrido et al. 2023 Eqn 14 (Table 1, SimCLR A/B).

    Each dimension is centred over the (gathered) batch; with ``scale`` it is also rescaled to
    the norm √(N/M), :math:`K_{\cdot,i} \leftarrow \hat K_{\cdot,i}/\|\hat K_{\cdot,i}\|_2\,\sqrt{N/M}`
    (Eqn 14 as printed indexes its loop inconsistently; this is the intent the spec reads: centre
    each *dimension* and give it a fixed norm, as VICReg), so the embeddings have mean squared
    norm 1. ``z``: ``(N, M)``, rows are samples.
    """
    full = gather(z) if gather_distributed else z
    mean = full.mean(0)
    if not scale:
        return z - mean
    n, m = full.shape
    norm = (full - mean).norm(dim=0).clamp(min=1e-12)
    return (z - mean) / norm * (n / m) ** 0.5
