"""Losses of the asymmetric (predictor + stop-gradient) family."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def negative_cosine(p: torch.Tensor, z: torch.Tensor, stop_gradient: bool = True) -> torch.Tensor:
    r"""Negative cosine similarity with a stop-gradient on the target (SimSiam, Chen & He 2021, Eqn 1).

    .. math:: \mathcal{D}(p, z) = -\frac{1}{N}\sum_i \frac{p_i}{\|p_i\|}\cdot\frac{\mathrm{sg}(z_i)}{\|z_i\|}

    ``p``: ``(N, D)`` predictions of the online branch; ``z``: ``(N, D)`` targets, detached here.
    BYOL's normalised MSE is :math:`\|\bar p - \bar z\|^2 = 2 - 2\cos`, i.e. ``2 + 2 * negative_cosine``:
    the same gradients up to a factor 2. The luckmatters DirectPred code uses ``-2 cos`` summed
    over both views; sslab uses the SimSiam scale (symmetric loss = mean of the two directions).
    ``stop_gradient=False`` lets the gradient flow into ``z`` too (the ablation of SimSiam §4.1 and
    Tian et al. Thm 2, which collapses).
    """
    return -F.cosine_similarity(p, z.detach() if stop_gradient else z, dim=-1).mean()
