"""Dimension-contrastive methods: decorrelating the embedding dimensions keeps them from collapsing.

Barlow Twins (Zbontar et al. 2021), VICReg (Bardes et al. 2022), its LogSumExp variants
VICReg-exp / VICReg-ctr (Garrido et al. 2023) and W-MSE (Ermolov et al. 2021) share the
architecture -- backbone, a projector (official Barlow Twins / VICReg: 8192-8192-8192,
Linear-BN-ReLU hidden layers, a bias-free last Linear), the same network for both views -- and
differ only in the loss, so they are one class with the loss as a switch. VICReg-ctr is
VICReg-exp on the transposed embedding matrix: a sample-contrastive method (Garrido et al. Eqn 13)
reached from VICReg by two switches; it is registered here, beside its class, with its own family.
"""

from __future__ import annotations

import torch
from torch import nn

from ..losses import barlow_twins, vicreg, vicreg_exp, w_mse
from ..losses.redundancy import CTR_CENTERINGS
from ..nets import mlp
from .base import SSLMethod, StepOutput, check_choice
from .contrastive import GARRIDO
from .spec import MethodSpec, mnist_recipes, register, standard_recipes

LOSSES = ("barlow_twins", "vicreg", "vicreg_exp", "vicreg_ctr", "w_mse")


class DimensionContrastive(SSLMethod):
    """``loss(g(f(x1)), g(f(x2)))`` with ``loss`` = ``barlow_twins`` (``lambd``; ``lambd=0`` drops
    the off-diagonal term, an ablation of Jha et al.; ``scale_loss`` multiplies the loss, solo-learn
    0.1), ``vicreg`` (``sim_coeff``, ``std_coeff``, ``cov_coeff``), ``vicreg_exp`` / ``vicreg_ctr``
    (the same and ``temperature``, NOT FOUND in the paper: default 0.1; VICReg-ctr's ``centering``:
    ``dimension``, Table 1, or ``embedding``, Eqn 13 read literally -- :func:`sslab.losses.vicreg_exp`
    gives the evidence for each) or ``w_mse`` (``w_size`` sub-batch, default the batch; ``w_eps``
    shrinkage; ``w_iter`` splits). Defaults are the official ones."""

    def __init__(self, backbone: nn.Module, /, loss: str = "barlow_twins", proj_hidden_dim: int = 8192,
                 proj_dim: int = 8192, proj_layers: int = 3, lambd: float = 0.0051, scale_loss: float = 1.0,
                 sim_coeff: float = 25.0, std_coeff: float = 25.0, cov_coeff: float = 1.0, temperature: float = 0.1,
                 centering: str = "dimension", w_size: int | None = None, w_eps: float = 0.0, w_iter: int = 1) -> None:
        super().__init__(backbone)
        check_choice("loss", loss, LOSSES)
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim, proj_layers, last_bias=False)
        self.loss_name = loss
        self.scale_loss = scale_loss
        self.lambd, self.sim_coeff, self.std_coeff, self.cov_coeff = lambd, sim_coeff, std_coeff, cov_coeff
        check_choice("centering", centering, CTR_CENTERINGS)
        self.temperature, self.centering, self.w_size, self.w_eps, self.w_iter = temperature, centering, w_size, w_eps, w_iter

    def embed_views(self, views: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """W-MSE runs the projector once on both views' features, so its BatchNorm sees 2N samples
        (official ``methods/w_mse.py``: ``h = self.head(torch.cat(h))``); the others project each view."""
        if self.loss_name != "w_mse":
            return super().embed_views(views)
        feats = [self.backbone(v) for v in views[:2]]
        return feats, list(self.projector(torch.cat(feats)).chunk(2))

    def forward(self, views: list[torch.Tensor]) -> StepOutput:
        feats, z = self.embed_views(views)
        coeffs = dict(sim=self.sim_coeff, var=self.std_coeff, cov=self.cov_coeff)
        if self.loss_name == "barlow_twins":
            loss = barlow_twins(z[0], z[1], lambd=self.lambd, scale=self.scale_loss)
        elif self.loss_name == "vicreg":
            loss = vicreg(z[0], z[1], **coeffs)
        elif self.loss_name == "w_mse":
            loss = w_mse(z[0], z[1], w_size=self.w_size, eps=self.w_eps, w_iter=self.w_iter)
        else:
            loss = vicreg_exp(z[0], z[1], temperature=self.temperature, transpose=self.loss_name == "vicreg_ctr",
                              centering=self.centering, **coeffs)
        return StepOutput(loss, feats[0], z)


VICREG_CODE = "facebookresearch/vicreg main_vicreg.py"

register(
    MethodSpec("barlow_twins", "dimension-contrastive", DimensionContrastive, "byol",
               "Barlow Twins, cross-correlation to identity",
               "Zbontar, Jing, Misra, LeCun, Deny 2021, Barlow Twins (ICML)", "facebookresearch/barlowtwins main.py",
               preset={"loss": "barlow_twins"}, recipes=standard_recipes("barlow_twins"), doc="dimension.md"),
    MethodSpec("vicreg", "dimension-contrastive", DimensionContrastive, "vicreg", "VICReg, variance-invariance-covariance",
               "Bardes, Ponce, LeCun 2022, VICReg (ICLR)", VICREG_CODE, preset={"loss": "vicreg"},
               recipes=standard_recipes("vicreg"), doc="dimension.md"),
    MethodSpec("vicreg_exp", "dimension-contrastive", DimensionContrastive, "vicreg",
               "VICReg with a LogSumExp covariance term (Garrido et al. Eqns 11-12)", GARRIDO, VICREG_CODE,
               preset={"loss": "vicreg_exp"}, recipes=mnist_recipes("vicreg_exp"), doc="dimension.md"),
    MethodSpec("vicreg_ctr", "sample-contrastive", DimensionContrastive, "vicreg",
               "VICReg-exp on the transposed embeddings (Garrido et al. Eqn 13)", GARRIDO, VICREG_CODE,
               preset={"loss": "vicreg_ctr"}, recipes=mnist_recipes("vicreg_ctr"), doc="dimension.md"),
    MethodSpec("w_mse", "dimension-contrastive", DimensionContrastive, "simclr",
               "whitening MSE: Cholesky-whitened views pulled together",
               "Ermolov, Siarohin, Sangineto, Sebe 2021, Whitening for Self-Supervised Representation Learning (ICML)",
               "htdt/self-supervised methods/w_mse.py",
               preset={"loss": "w_mse", "proj_hidden_dim": 1024, "proj_dim": 64, "proj_layers": 2, "w_size": 128},
               recipes=standard_recipes("w_mse"), doc="w_mse.md"),
)
