"""Whitening MSE (W-MSE, Ermolov et al. 2021): scatter the embeddings by whitening, then pull views together."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .distributed import gather


def whiten(x: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    r"""Cholesky whitening of ``x (n, d)`` over its rows (official ``Whitening2d``).

    :math:`\Sigma = (1-\epsilon)\,\mathrm{cov}(x) + \epsilon I` (unbiased covariance of the centred
    rows), :math:`\Sigma = LL^\top`, and the output :math:`(x - \bar x) L^{-\top}` has identity
    covariance. Needs ``n > d`` (the official sub-batch 128 for 64-d embeddings).
    """
    xc = x - x.mean(0)
    cov = xc.T @ xc / (x.shape[0] - 1)
    eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    chol = torch.linalg.cholesky((1 - eps) * cov + eps * eye)
    inv = torch.linalg.solve_triangular(chol, eye, upper=False)  # L⁻¹
    return xc @ inv.T


def w_mse(z1: torch.Tensor, z2: torch.Tensor, w_size: int | None = None, eps: float = 0.0, w_iter: int = 1,
          generator: torch.Generator | None = None, gather_distributed: bool = True) -> torch.Tensor:
    r"""W-MSE 2 (Ermolov et al. 2021, Eqn 3-4), as the official ``methods/w_mse.py``.

    The batch is split into random sub-batches of ``w_size`` samples (the same split for both
    views); each view's sub-batch is whitened separately (:func:`whiten`) and

    .. math:: \mathcal L = \frac{1}{N}\sum_i \Big\| \frac{w_i^1}{\|w_i^1\|} - \frac{w_i^2}{\|w_i^2\|} \Big\|^2
              = 2 - \frac2N \sum_i \cos(w_i^1, w_i^2),

    averaged over ``w_iter`` random splits. ``w_size=None`` whitens the whole batch at once.
    Under DDP the batch is gathered first, so sub-batches mix ranks (the official code whitens
    per GPU; on one device the two agree).
    """
    if gather_distributed:
        z1, z2 = gather(z1), gather(z2)
    n = z1.shape[0]
    w_size = w_size or n
    if n % w_size:
        raise ValueError(f"batch size {n} is not a multiple of w_size {w_size}")
    total = z1.new_zeros(())
    for _ in range(w_iter):
        perm = torch.randperm(n, generator=generator, device="cpu").to(z1.device).view(-1, w_size)
        w1 = torch.empty_like(z1)
        w2 = torch.empty_like(z2)
        for idx in perm:
            w1[idx], w2[idx] = whiten(z1[idx], eps), whiten(z2[idx], eps)
        total = total + 2 - 2 * F.cosine_similarity(w1, w2, dim=1).mean()
    return total / w_iter
