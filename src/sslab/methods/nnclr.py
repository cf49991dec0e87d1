"""NNCLR (Dwibedi et al. 2021, *With a Little Help from My Friends*): nearest neighbours as positives.

Each view's ℓ2-normalised projection z_i is replaced by its nearest neighbour NN(z_i) (cosine)
in a support set Q of past projections, and InfoNCE pulls it to the other view's prediction
p⁺_i = g(z⁺_i), against the predictions of the other images (NNCLR Eqn 2, symmetrised):

    ℓ_i = −log exp(NN(z_i)ᵀp̂⁺_i / τ) / Σ_k exp(NN(z_i)ᵀp̂⁺_k / τ),   L = ½ [ℓ(NN(z1), p2) + ℓ(NN(z2), p1)]

The gradient flows through the predictions only (a neighbour is a stored vector). Q is a FIFO
(:class:`.parts.Queue`) of the first view's normalised projections, gathered from every rank and
written after the step; it starts as random unit vectors. No official code was released: the
defaults are the paper's (§4: Q of 98,304, τ = 0.1, projector [2048, 2048, 256] with BN after
every layer, predictor [4096, 256]), implemented as ``solo/methods/nnclr.py`` (``find_nn``,
``dequeue_and_enqueue``) and ``solo/losses/nnclr.py`` do; docs/methods/nnclr.md has the sources.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..losses import momentum_contrast
from ..nets import mlp
from .base import SSLMethod, StepOutput
from .parts import Predictor, Queue
from .spec import MethodSpec, register, standard_recipes


def nearest_neighbours(z: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """Row i: the row of ``support (K, D)`` with the largest dot product with ``z[i]`` (cosine for unit rows)."""
    return support[(z @ support.T).argmax(dim=1)]


class NNCLR(SSLMethod):
    """NNCLR with a support set of ``queue_size`` projections, ``temperature`` τ, projector
    ``proj_hidden_dim`` → ``proj_dim`` (3 layers, BN after each) and an MLP predictor of ``pred_hidden_dim``."""

    def __init__(self, backbone: nn.Module, /, proj_hidden_dim: int = 2048, proj_dim: int = 256, pred_hidden_dim: int = 4096,
                 temperature: float = 0.1, queue_size: int = 98304) -> None:
        super().__init__(backbone)
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim, 3, last_bn=True)
        self.predictor = Predictor("mlp", proj_dim, pred_hidden_dim)
        self.support = Queue(queue_size, proj_dim, gather_keys=True, init="random")
        self.temperature = temperature

    def forward(self, views: list[torch.Tensor]) -> StepOutput:
        feats, z = self.embed_views(views)
        p = [self.predictor(zi) for zi in z]
        u = [F.normalize(zi.detach(), dim=1) for zi in z]
        nn1, nn2 = (nearest_neighbours(ui, self.support.keys) for ui in u)
        loss = (momentum_contrast(nn1, p[1], self.temperature) + momentum_contrast(nn2, p[0], self.temperature)) / 2
        if self.training:
            self.support.stage(u[0])
        # nn_similarity: mean cos(z1, NN(z1)), how close the support set's neighbours are (logged as method/nn_similarity)
        return StepOutput(loss, feats[0], z, scalars={"nn_similarity": (nn1 * u[0]).sum(1).mean()})


register(MethodSpec(name="nnclr", family="sample-contrastive", cls=NNCLR, views="byol",
                    description="NNCLR, nearest neighbour from a support set as the positive",
                    paper="Dwibedi, Aytar, Tompson, Sermanet, Zisserman 2021, With a Little Help from My Friends: "
                          "Nearest-Neighbor Contrastive Learning of Visual Representations (ICCV)",
                    code="none released; vturrisi/solo-learn solo/methods/nnclr.py", recipes=standard_recipes("nnclr"),
                    doc="nnclr.md"))
