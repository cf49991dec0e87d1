"""DINO (Caron et al. 2021): self-distillation from a centred, sharpened EMA teacher."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def dino(
    student_logits: Sequence[torch.Tensor],
    teacher_logits: Sequence[torch.Tensor],
    center: torch.Tensor,
    student_temp: float = 0.1,
    teacher_temp: float = 0.04,
) -> torch.Tensor:
    r"""DINO's cross-entropy between teacher and student crop distributions (official ``DINOLoss``).

    ``student_logits[v]`` is ``(B, K)`` for every crop (global crops first), ``teacher_logits[t]``
    for the global crops only; ``center (1, K)`` is the running teacher mean. With
    :math:`P_t = \mathrm{softmax}((g_t - c)/\tau_t)` (no gradient) and
    :math:`P_s = \mathrm{softmax}(g_s/\tau_s)`,

    .. math:: \mathcal L = \frac{1}{\#\text{pairs}} \sum_{t} \sum_{v \ne t} -\frac1B\sum_i P_t^{(i)} \cdot \log P_s^{(i)}

    over teacher crops *t* and student crops *v* that are not the same view. Centring keeps one
    dimension from dominating, sharpening (τ_t < τ_s) keeps the output from going uniform.
    """
    targets = [F.softmax((t.detach() - center) / teacher_temp, dim=-1) for t in teacher_logits]
    logp = [F.log_softmax(s / student_temp, dim=-1) for s in student_logits]
    total, pairs = student_logits[0].new_zeros(()), 0
    for ti, p in enumerate(targets):
        for v, lp in enumerate(logp):
            if v == ti:
                continue
            total = total + (-p * lp).sum(-1).mean()
            pairs += 1
    return total / pairs
