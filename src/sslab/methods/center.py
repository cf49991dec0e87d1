"""The explicit center-vector objective of Jha et al. 2024.

Their framework reads every SSL method as "maximise the per-sample augmentation mean ‖E_a z‖
while minimising the center ‖E_x z‖"; this method writes the two terms down directly (spec §C.2,
the paper's exact form is NOT FOUND there, so this is the suggested library loss):

    L = −mean_i u_i¹ᵀ u_i² + λ ‖s‖²,   u = z/‖z‖,

with ‖s‖² the unbiased batch estimate over both views (:func:`sslab.losses.center_penalty`).
λ (``center_weight``) is an option; λ = 0 removes the only force against collapse.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..losses import center_penalty
from ..nets import mlp
from .base import SSLMethod, StepOutput
from .spec import MethodSpec, mnist_recipes, register


class CenterVector(SSLMethod):
    """Alignment of the two views' normalised projections plus ``center_weight`` x the center penalty.

    ``center_weight`` defaults to 1.0: with it the loss is the linearised-InfoNCE / triplet form
    E[zᵀz⁺] − E[zᵀz⁻] of spec §C.2 (NOT FOUND in the paper; a documented option).
    """

    def __init__(self, backbone: nn.Module, /, proj_hidden_dim: int = 2048, proj_dim: int = 128, proj_layers: int = 2,
                 center_weight: float = 1.0) -> None:
        super().__init__(backbone)
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim, proj_layers)
        self.center_weight = center_weight

    def forward(self, views: list[torch.Tensor]) -> StepOutput:
        feats, z = self.embed_views(views)
        alignment = F.cosine_similarity(z[0], z[1], dim=1).mean()
        center = center_penalty(torch.cat(z))
        loss = -alignment + self.center_weight * center
        return StepOutput(loss, feats[0], z, scalars={"center_sq": center.detach(), "alignment": alignment.detach()})


register(MethodSpec(name="center", family="explicit center", cls=CenterVector, views="simclr",
                    description="alignment + penalty on the center vector ‖E_x z‖²",
                    paper="Jha, Blaschko, Asano, Tuytelaars 2024, The common stability mechanism behind most self-supervised "
                    "learning approaches (arXiv 2402.14957)",
                    code="none (the loss of spec §C.2)", recipes=mnist_recipes("center"), doc="center.md"))
