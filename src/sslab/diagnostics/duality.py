"""The duality diagnostics of Garrido et al. 2023 (spec §C.1, §E), on unit-norm embeddings.

With K = uᵀ (M × N: rows are the M dimensions, columns the N unit-norm embeddings):

    L_c  = ‖KᵀK − diag‖_F²   (sample-contrastive: off-diagonal Gram matrix)
    L_nc = ‖KKᵀ − diag‖_F²   (dimension-contrastive: off-diagonal uncentred covariance)
    Theorem 3.3   L_nc + Σ_j ‖K_j,·‖⁴ = L_c + Σ_i ‖K_·,i‖⁴   (Σ_i ‖K_·,i‖⁴ = N here)
    Lemma 3.4     N²/M ≤ Σ_j ‖K_j,·‖⁴ ≤ N²                   (all ‖K_·,i‖ = 1)

Where the rows' fourth-power sum sits between its bounds says how evenly the embeddings use the
dimensions: ``rows4_ratio`` = Σ_j‖K_j,·‖⁴ / (N²/M) is 1 when every dimension carries the same
energy (the paper finds trained models within "a single-digit factor" of it) and M when one
dimension carries everything. Proposition 3.1's picture of a healthy batch: the off-diagonal
Gram entries u_iᵀu_j have mean ≈ 0 and variance ≈ 1/M (random unit vectors), so
``gram_offdiag_var_ratio`` = M · var ≈ 1; under complete collapse every entry is 1 (mean 1, var 0).

When N < M the M × M matrix KKᵀ is not formed: ‖KKᵀ‖_F² = tr(KKᵀKKᵀ) = ‖KᵀK‖_F², and its diagonal is
the rows' squared norms, so L_nc comes from the N × N Gram matrix (Theorem 3.3 then holds by
construction: ``identity_gap`` is checked only when both matrices are formed, N ≥ M).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses.distributed import gather


def duality_stats(z: torch.Tensor, gather_distributed: bool = True) -> dict[str, float]:
    """The criteria, the Lemma 3.4 quantities and the off-diagonal Gram statistics of ``z (N, M)``.

    Keys: ``l_c``, ``l_nc``, ``rows4`` Σ_j‖K_j,·‖⁴, ``cols4`` Σ_i‖K_·,i‖⁴ (= N), ``rows4_lower``
    N²/M, ``rows4_upper`` N², ``rows4_ratio`` rows4 / (N²/M), ``identity_gap`` the relative
    residual of Theorem 3.3 (rounding only), ``gram_offdiag_mean``, ``gram_offdiag_var`` and
    ``gram_offdiag_var_ratio`` (M · variance).
    """
    z = z.detach().double()
    u = F.normalize(gather(z) if gather_distributed else z, dim=1)
    n, m = u.shape
    gram = u @ u.T
    gram_diag = torch.diagonal(gram)
    l_c = float(gram.pow(2).sum() - gram_diag.pow(2).sum())
    if n >= m:
        cov = u.T @ u
        cov_diag = torch.diagonal(cov)
        cov_sq = cov.pow(2).sum()
    else:  # ‖KKᵀ‖_F² = ‖KᵀK‖_F²: no M x M matrix
        cov_diag = u.pow(2).sum(0)
        cov_sq = gram.pow(2).sum()
    l_nc = float(cov_sq - cov_diag.pow(2).sum())
    rows4, cols4 = float(cov_diag.pow(2).sum()), float(gram_diag.pow(2).sum())
    off = gram[~torch.eye(n, dtype=torch.bool, device=u.device)]
    both = l_c + cols4
    return {
        "l_c": l_c, "l_nc": l_nc, "rows4": rows4, "cols4": cols4, "rows4_lower": n * n / m, "rows4_upper": float(n * n),
        "rows4_ratio": rows4 / (n * n / m), "identity_gap": abs(l_nc + rows4 - both) / max(both, 1e-300),
        "gram_offdiag_mean": float(off.mean()), "gram_offdiag_var": float(off.var()),
        "gram_offdiag_var_ratio": float(off.var()) * m,
    }
