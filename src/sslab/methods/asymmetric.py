"""Asymmetric methods: a predictor on the online branch and a stop-gradient on the target.

BYOL (Grill et al. 2020) and SimSiam (Chen & He 2021) are one class: the target branch is an
exponential moving average of the online branch (BYOL) or the online branch itself under a
stop-gradient (SimSiam, ``momentum=0``). The loss is symmetric:

    L = ½ [ D(q(z1), sg(z2')) + D(q(z2), sg(z1')) ],   D = negative cosine

with z' the target projections. Tian et al. 2021 analyse exactly this family (spec §A.1):
their ``Wa`` is the EMA target, ``Wp`` the predictor.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ..losses import negative_cosine
from ..nets import mlp
from .base import SSLMethod


def cosine_momentum(base: float, final: float, step: int, total_steps: int) -> float:
    """BYOL's EMA schedule τ_k = 1 − (1 − τ_base)(cos(πk/K) + 1)/2, from ``base`` to ``final``."""
    if total_steps <= 0:
        return base
    return final - (final - base) * (math.cos(math.pi * min(step, total_steps) / total_steps) + 1) / 2


class AsymmetricSiamese(SSLMethod):
    """Online encoder + projector + predictor; target = EMA copy (``momentum > 0``) or the online net.

    ``momentum`` is BYOL's τ_base (0.996 on ImageNet, 0.99 on CIFAR in solo-learn) and
    ``momentum_final`` its end value (1.0, cosine schedule); ``momentum=0`` with
    ``momentum_final=0`` gives SimSiam. ``predictor``: ``mlp`` (2 layers), ``linear`` (one
    bias-free linear map, the DirectPred setting) or ``none`` (the identity; collapses,
    Tian et al. Thm 2 discussion).
    """

    def __init__(
        self,
        backbone: nn.Module,
        proj_hidden_dim: int = 4096,
        proj_dim: int = 256,
        proj_layers: int = 2,
        proj_last_bn: bool = False,
        pred_hidden_dim: int = 4096,
        predictor: str = "mlp",
        momentum: float = 0.996,
        momentum_final: float = 1.0,
    ) -> None:
        super().__init__(backbone)
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim, proj_layers, last_bn=proj_last_bn,
                             last_bn_affine=False)
        if predictor == "mlp":
            self.predictor: nn.Module = mlp(proj_dim, pred_hidden_dim, proj_dim, 2)
        elif predictor == "linear":
            self.predictor = nn.Linear(proj_dim, proj_dim, bias=False)
        elif predictor == "none":
            self.predictor = nn.Identity()
        else:
            raise ValueError(f"unknown predictor '{predictor}'; valid choices: mlp, linear, none")
        if not 0.0 <= momentum <= 1.0 or not 0.0 <= momentum_final <= 1.0:
            raise ValueError(f"momentum must lie in [0, 1], got {momentum} -> {momentum_final}")
        self.momentum, self.momentum_final = momentum, momentum_final
        self.uses_ema = momentum > 0 or momentum_final > 0
        if self.uses_ema:
            self.target_backbone = copy.deepcopy(self.backbone).requires_grad_(False)
            self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)

    def forward(self, views: list[torch.Tensor]) -> dict:
        v1, v2 = views[:2]
        feats, z = self.embed_views(views)
        p = [self.predictor(zi) for zi in z]
        if self.uses_ema:
            with torch.no_grad():
                t = [self.target_projector(self.target_backbone(v)) for v in (v1, v2)]
        else:
            t = z  # SimSiam: the online projections themselves, detached inside the loss
        loss = 0.5 * (negative_cosine(p[0], t[1]) + negative_cosine(p[1], t[0]))
        return {"loss": loss, "features": feats[0], "embeddings": z, "predictions": p}

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        if not self.uses_ema:
            return
        # τ is a function of the step alone, so a resumed run continues the schedule exactly
        tau = cosine_momentum(self.momentum, self.momentum_final, step - 1, total_steps)
        for online, target in ((self.backbone, self.target_backbone), (self.projector, self.target_projector)):
            for po, pt in zip(online.parameters(), target.parameters()):
                pt.mul_(tau).add_(po.detach(), alpha=1 - tau)
        # BN statistics are not averaged: the target runs in train mode on batch statistics (BYOL)
