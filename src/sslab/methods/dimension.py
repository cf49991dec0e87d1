"""Dimension-contrastive methods: decorrelating the embedding dimensions keeps them from collapsing.

Barlow Twins (Zbontar et al. 2021) and VICReg (Bardes et al. 2022) share the architecture --
backbone, a wide projector (official: 8192-8192-8192, Linear-BN-ReLU hidden layers, a bias-free
last Linear), the same network for both views -- and differ only in the loss, so they are one
class with the loss as a switch.
"""

from __future__ import annotations

import torch
from torch import nn

from ..losses import barlow_twins, vicreg
from ..nets import mlp
from .base import SSLMethod

LOSSES = ("barlow_twins", "vicreg")


class DimensionContrastive(SSLMethod):
    """``loss(g(f(x1)), g(f(x2)))`` with ``loss`` = ``barlow_twins`` (``lambd``) or ``vicreg``
    (``sim_coeff``, ``std_coeff``, ``cov_coeff``); defaults are the official ones."""

    def __init__(
        self,
        backbone: nn.Module,
        loss: str = "barlow_twins",
        proj_hidden_dim: int = 8192,
        proj_dim: int = 8192,
        proj_layers: int = 3,
        lambd: float = 0.0051,
        sim_coeff: float = 25.0,
        std_coeff: float = 25.0,
        cov_coeff: float = 1.0,
    ) -> None:
        super().__init__(backbone)
        if loss not in LOSSES:
            raise ValueError(f"unknown loss '{loss}'; valid choices: {', '.join(LOSSES)}")
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim, proj_layers, last_bias=False)
        self.loss_name = loss
        self.lambd, self.sim_coeff, self.std_coeff, self.cov_coeff = lambd, sim_coeff, std_coeff, cov_coeff

    def forward(self, views: list[torch.Tensor]) -> dict:
        feats, z = self.embed_views(views)
        if self.loss_name == "barlow_twins":
            loss = barlow_twins(z[0], z[1], lambd=self.lambd)
        else:
            loss = vicreg(z[0], z[1], sim=self.sim_coeff, var=self.std_coeff, cov=self.cov_coeff)
        return {"loss": loss, "features": feats[0], "embeddings": z}
