"""Dimension-contrastive methods: decorrelating the embedding dimensions keeps them from collapsing.

Barlow Twins (Zbontar et al. 2021), VICReg (Bardes et al. 2022), its LogSumExp variants
VICReg-exp / VICReg-ctr (Garrido et al. 2023) and W-MSE (Ermolov et al. 2021) share the
architecture -- backbone, a projector (official Barlow Twins / VICReg: 8192-8192-8192,
Linear-BN-ReLU hidden layers, a bias-free last Linear), the same network for both views -- and
differ only in the loss: :class:`DimensionContrastive` holds the architecture, one subclass per
loss holds that loss's options, so an option of another loss (``lambd`` for VICReg) is not an
option of the method and is refused. VICReg-ctr is VICReg-exp on the transposed embedding matrix:
a sample-contrastive method (Garrido et al. Eqn 13) reached from VICReg by two switches; it is
registered here, beside its class, with its own family.
"""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import nn

from ..losses import barlow_twins, vicreg, vicreg_exp, w_mse
from ..losses.redundancy import CTR_CENTERINGS
from ..nets import mlp
from .base import SSLMethod, StepOutput, check_choice
from .contrastive import GARRIDO
from .spec import MethodSpec, mnist_recipes, register, standard_recipes


class DimensionContrastive(SSLMethod):
    """``loss(g(f(x1)), g(f(x2)))``: backbone f and projector g (``proj_hidden_dim``, ``proj_dim``,
    ``proj_layers``) shared by both views; the subclass is the loss. Defaults are the official ones."""

    def __init__(self, backbone: nn.Module, /, proj_hidden_dim: int = 8192, proj_dim: int = 8192,
                 proj_layers: int = 3) -> None:
        super().__init__(backbone)
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim, proj_layers, last_bias=False)

    @abstractmethod
    def loss(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """The method's loss of the two views' embeddings."""

    def forward(self, views: list[torch.Tensor]) -> StepOutput:
        feats, z = self.embed_views(views)
        return StepOutput(self.loss(z[0], z[1]), feats[0], z)


class BarlowTwins(DimensionContrastive):
    """Barlow Twins: ``lambd`` weighs the off-diagonal term (``lambd=0`` drops it, an ablation of
    Jha et al.); ``scale_loss`` multiplies the loss (solo-learn 0.1)."""

    def __init__(self, backbone: nn.Module, /, lambd: float = 0.0051, scale_loss: float = 1.0, **projector) -> None:
        super().__init__(backbone, **projector)
        self.lambd, self.scale_loss = lambd, scale_loss

    def loss(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return barlow_twins(z1, z2, lambd=self.lambd, scale=self.scale_loss)


class VICReg(DimensionContrastive):
    """VICReg: invariance, variance and covariance weighed by ``sim_coeff``, ``std_coeff``, ``cov_coeff``."""

    def __init__(self, backbone: nn.Module, /, sim_coeff: float = 25.0, std_coeff: float = 25.0, cov_coeff: float = 1.0,
                 **projector) -> None:
        super().__init__(backbone, **projector)
        self.sim_coeff, self.std_coeff, self.cov_coeff = sim_coeff, std_coeff, cov_coeff

    def coefficients(self) -> dict[str, float]:
        return dict(sim=self.sim_coeff, var=self.std_coeff, cov=self.cov_coeff)

    def loss(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return vicreg(z1, z2, **self.coefficients())


class VICRegExp(VICReg):
    """VICReg-exp: the covariance term a LogSumExp at ``temperature`` (NOT FOUND in the paper: default 0.1)."""

    def __init__(self, backbone: nn.Module, /, temperature: float = 0.1, **vicreg_options) -> None:
        super().__init__(backbone, **vicreg_options)
        self.temperature = temperature

    def loss(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return vicreg_exp(z1, z2, temperature=self.temperature, **self.coefficients())


class VICRegCtr(VICRegExp):
    """VICReg-ctr: VICReg-exp on Kᵀ; ``centering`` ``dimension`` (Table 1) or ``embedding`` (Eqn 13 read
    literally) -- :func:`sslab.losses.vicreg_exp` gives the evidence for each."""

    def __init__(self, backbone: nn.Module, /, centering: str = "dimension", **vicreg_exp_options) -> None:
        super().__init__(backbone, **vicreg_exp_options)
        check_choice("centering", centering, CTR_CENTERINGS)
        self.centering = centering

    def loss(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return vicreg_exp(z1, z2, temperature=self.temperature, transpose=True, centering=self.centering,
                          **self.coefficients())


class WMSE(DimensionContrastive):
    """W-MSE: ``w_size`` sub-batch (default the batch), ``w_eps`` shrinkage, ``w_iter`` splits."""

    def __init__(self, backbone: nn.Module, /, w_size: int | None = None, w_eps: float = 0.0, w_iter: int = 1,
                 **projector) -> None:
        super().__init__(backbone, **projector)
        self.w_size, self.w_eps, self.w_iter = w_size, w_eps, w_iter

    def embed_views(self, views: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The projector runs once on both views' features, so its BatchNorm sees 2N samples (official
        ``methods/w_mse.py``: ``h = self.head(torch.cat(h))``)."""
        feats = [self.backbone(v) for v in views[:2]]
        return feats, list(self.projector(torch.cat(feats)).chunk(2))

    def loss(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return w_mse(z1, z2, w_size=self.w_size, eps=self.w_eps, w_iter=self.w_iter)


VICREG_CODE = "facebookresearch/vicreg main_vicreg.py"

register(
    MethodSpec(name="barlow_twins", family="dimension-contrastive", cls=BarlowTwins, views="byol",
               description="Barlow Twins, cross-correlation to identity",
               paper="Zbontar, Jing, Misra, LeCun, Deny 2021, Barlow Twins (ICML)", code="facebookresearch/barlowtwins main.py",
               recipes=standard_recipes("barlow_twins"), doc="dimension.md"),
    MethodSpec(name="vicreg", family="dimension-contrastive", cls=VICReg, views="vicreg",
               description="VICReg, variance-invariance-covariance", paper="Bardes, Ponce, LeCun 2022, VICReg (ICLR)",
               code=VICREG_CODE, recipes=standard_recipes("vicreg"), doc="dimension.md"),
    MethodSpec(name="vicreg_exp", family="dimension-contrastive", cls=VICRegExp, views="vicreg",
               description="VICReg with a LogSumExp covariance term (Garrido et al. Eqns 11-12)", paper=GARRIDO,
               code=VICREG_CODE, recipes=mnist_recipes("vicreg_exp"), doc="dimension.md"),
    MethodSpec(name="vicreg_ctr", family="sample-contrastive", cls=VICRegCtr, views="vicreg",
               description="VICReg-exp on the transposed embeddings (Garrido et al. Eqn 13)", paper=GARRIDO,
               code=VICREG_CODE, recipes=mnist_recipes("vicreg_ctr"), doc="dimension.md"),
    MethodSpec(name="w_mse", family="dimension-contrastive", cls=WMSE, views="simclr",
               description="whitening MSE: Cholesky-whitened views pulled together",
               paper="Ermolov, Siarohin, Sangineto, Sebe 2021, Whitening for Self-Supervised Representation Learning "
                     "(ICML)", code="htdt/self-supervised methods/w_mse.py",
               preset={"proj_hidden_dim": 1024, "proj_dim": 64, "proj_layers": 2, "w_size": 128},
               recipes=standard_recipes("w_mse"), doc="w_mse.md"),
)
