"""Sample-contrastive methods: repulsion between samples keeps the embeddings apart.

SimCLR (Chen et al. 2020): two views through one encoder + projector, InfoNCE over the batch.
Its variants differ only in the loss and are presets of the same class: SimCLR-abs / -sq
(Garrido et al. 2023), DCL (Yeh et al. 2022) and the spectral contrastive loss (HaoChen et al. 2021).
"""

from __future__ import annotations

import torch
from torch import nn

from ..losses import info_nce, spectral_contrastive, standardize_dimensions
from ..nets import mlp
from .base import SSLMethod, check_choice

STANDARDIZE = ("none", "center", "dimension")


class SimCLR(SSLMethod):
    """SimCLR: ``loss = info_nce(g(f(x1)), g(f(x2)), temperature)``.

    Defaults follow the official SimCLR: a 2-layer projector (hidden 2048, output 128), τ = 0.5
    for CIFAR-size batches (the paper's Table 5 ablation; 0.1-0.2 at ImageNet batch 4096).
    ``proj_last_bn`` adds the SimCLR v2 BatchNorm after the last projector layer.
    ``negatives`` (``none|abs|sq``) and ``decoupled`` select the InfoNCE variants;
    ``loss="spectral"`` the spectral contrastive loss on the raw projections.
    ``standardize`` (Garrido et al. 2023 Eqn 14, Table 1): ``none`` (classical SimCLR),
    ``center`` (SimCLR A: dimensions centred over the batch, then embeddings ℓ2-normalised) or
    ``dimension`` (SimCLR B: dimensions centred and scaled to norm √(N/M), no embedding
    normalisation).
    """

    def __init__(
        self,
        backbone: nn.Module,
        proj_hidden_dim: int = 2048,
        proj_dim: int = 128,
        proj_layers: int = 2,
        proj_last_bn: bool = False,
        temperature: float = 0.5,
        negatives: str = "none",
        decoupled: bool = False,
        loss: str = "info_nce",
        standardize: str = "none",
    ) -> None:
        super().__init__(backbone)
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim, proj_layers, last_bn=proj_last_bn)
        check_choice("loss", loss, ("info_nce", "spectral"))
        check_choice("standardize", standardize, STANDARDIZE)
        self.temperature, self.negatives, self.decoupled, self.loss = temperature, negatives, decoupled, loss
        self.standardize = standardize

    def forward(self, views: list[torch.Tensor]) -> dict:
        feats, z = self.embed_views(views)
        k = z if self.standardize == "none" else [standardize_dimensions(zi, scale=self.standardize == "dimension") for zi in z]
        if self.loss == "spectral":
            loss = spectral_contrastive(k[0], k[1])
        else:
            loss = info_nce(k[0], k[1], self.temperature, negatives=self.negatives, decoupled=self.decoupled,
                            normalize=self.standardize != "dimension")
        return {"loss": loss, "features": feats[0], "embeddings": z}
