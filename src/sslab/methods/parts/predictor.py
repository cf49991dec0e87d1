"""Learned predictors: the online branch's extra head that the target branch lacks (BYOL, SimSiam, MoCo v3, NNCLR).

``kind`` is ``mlp`` (``Linear(hidden) BN ReLU Linear``, BYOL/SimSiam), ``linear`` (one matrix
Wp, the predictor Tian et al. 2021 analyse) or ``none`` (the identity: the ablation that
collapses, Tian et al. App. D, BYOL Table 5b). ``symmetric`` is Tian et al.'s ablation (luckmatters
``predictor_reg=symmetric``): after every step Wp ← (Wp + Wpᵀ)/2, and for an MLP W0 ← (W0 + W1ᵀ)/2,
W1 ← W0ᵀ. The closed-form predictors of DirectPred/DirectCopy are :mod:`.direct`.
"""

from __future__ import annotations

import torch
from torch import nn

from ...nets import mlp
from ..base import Part, check_choice

KINDS = ("mlp", "linear", "none")


class Predictor(Part):
    """``net`` = the ``kind`` predictor on ``dim``-dimensional embeddings; ``bias`` (default: on for
    ``mlp``'s last layer, off for ``linear``); ``bn_affine`` off: luckmatters' affine-free BatchNorm."""

    def __init__(self, kind: str = "mlp", dim: int = 256, hidden_dim: int = 4096, bias: bool | None = None,
                 symmetric: bool = False, bn_affine: bool = True) -> None:
        super().__init__()
        check_choice("predictor", kind, KINDS)
        if kind == "mlp":
            self.net: nn.Module = mlp(dim, hidden_dim, dim, 2, last_bias=bias is not False, bn_affine=bn_affine)
        elif kind == "linear":
            self.net = nn.Linear(dim, dim, bias=bool(bias))
        else:
            self.net = nn.Identity()
        self.symmetric = symmetric

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    def observe(self, inputs: list[torch.Tensor]) -> None:
        """Shown the training batch's predictor inputs (every view); closed-form predictors keep them for ``after_step``."""

    def observe_targets(self, targets: list[torch.Tensor]) -> None:
        """Shown the target branch's embeddings of the same batch (the optimal predictor's F̂_a keeps them)."""

    def matrix(self) -> torch.Tensor | None:
        """Wp of a linear predictor (``None`` for an MLP or the identity): what the diagnostics align with F̂."""
        return self.net.weight if isinstance(self.net, nn.Linear) else None

    def correlation(self) -> torch.Tensor | None:
        """The predictor's own estimate of F̂, the correlation of its input (``None``: it keeps none)."""
        return None

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        if not self.symmetric:
            return
        linears = [m for m in self.net.modules() if isinstance(m, nn.Linear)]
        if len(linears) == 1:
            w = linears[0].weight
            w.copy_((w + w.T) / 2)
        elif len(linears) == 2:
            w0, w1 = linears[0].weight, linears[1].weight
            w0.copy_((w0 + w1.T) / 2)
            w1.copy_(w0.T)
