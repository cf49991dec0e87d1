"""The asymmetric family: a predictor and a stop-gradient (and often an EMA target) keep it from collapsing.

Each method is a :class:`~.siamese.Siamese` composition of parts (spec §A.1, Tian et al. 2021):

* BYOL      = MLP projector + MLP predictor + EMA target, negative cosine;
* SimSiam   = 3-layer projector ending in BN + bottleneck predictor + the online network behind a
  stop-gradient;
* DirectPred = BYOL with a linear predictor set in closed form from F̂ (DirectSet(α): ``power``;
  DirectCopy: ``direct="copy"``), see :mod:`.parts.direct`.

``momentum=0 momentum_final=0`` turns BYOL's EMA target into SimSiam's; ``stop_gradient=false``
(without EMA) and ``predictor=none`` are the ablations that collapse (Tian et al. Thm 2, App. D).
"""

from __future__ import annotations

import torch
from torch import nn

from ..losses import negative_cosine
from ..nets import mlp
from .base import Part, check_choice
from .parts import DirectPredictor, Predictor, siamese_target
from .siamese import Siamese
from .spec import ActsWhen, MethodSpec, acts_when_in, mnist_recipes, register, standard_recipes

LOSS_SCALES = ("simsiam", "byol")


class NegativeCosine(Siamese):
    """ℓ = −cos(q(z_i), t_j) (SimSiam Eqn 1); the target part decides the stop-gradient.

    ``loss_scale``: ``simsiam`` -- L = the mean of ℓ over the directions (SimSiam's ½D + ½D, the
    default); ``byol`` -- L = Σ over the directions of 2 − 2cos, BYOL's normalised MSE summed as the
    official code (``byol_experiment.py``: ``regression_loss`` of both views added) and luckmatters
    do: the same minimum, 4× the gradient. With the official learning rate and weight decay only
    ``byol`` gives the official dynamics (weight decay relative to the gradient decides collapse,
    Tian et al. §5)."""

    def __init__(self, backbone: nn.Module, projector: nn.Module, predictor: Predictor, target: Part, /, *,
                 loss_scale: str = "simsiam", **switches) -> None:
        check_choice("loss_scale", loss_scale, LOSS_SCALES)
        super().__init__(backbone, projector, predictor, target, **switches)
        self.loss_scale = loss_scale

    def criterion(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return negative_cosine(prediction, target, stop_gradient=False)

    def combine(self, terms: list[torch.Tensor]) -> torch.Tensor:
        if self.loss_scale == "byol":
            return sum(2 + 2 * t for t in terms)  # Σ_directions mean_i ‖p̂_i − t̂_i‖² = Σ (2 − 2cos)
        return super().combine(terms)


class BYOL(NegativeCosine):
    """BYOL (Grill et al. 2020): projector ``Linear(4096) BN ReLU Linear(256)``, the same-shaped
    ``predictor`` (``mlp|linear|none``, ``pred_bias``, ``symmetric_predictor``) and an EMA target,
    τ ``momentum`` → ``momentum_final`` on a cosine (0.996 → 1). Tian et al.'s baselines (luckmatters):
    ``bn_affine=false`` (affine-free BN in the heads) and ``target_init=random`` (the target starts
    as its own random initialisation)."""

    #: a learned predictor's options (its shape, bias, symmetrisation, learning rate) act only when there is one
    acts_when = {"pred_hidden_dim": acts_when_in("predictor", "mlp"), "pred_bias": acts_when_in("predictor", "mlp", "linear"),
                 "symmetric_predictor": acts_when_in("predictor", "mlp", "linear"),
                 "pred_lr_ratio": acts_when_in("predictor", "mlp", "linear"),
                 "fix_pred_lr": acts_when_in("predictor", "mlp", "linear")}

    def __init__(self, backbone: nn.Module, /, proj_hidden_dim: int = 4096, proj_dim: int = 256, predictor: str = "mlp",
                 pred_hidden_dim: int = 4096, pred_bias: bool | None = None, symmetric_predictor: bool = False,
                 momentum: float = 0.996, momentum_final: float = 1.0, stop_gradient: bool = True, bn_affine: bool = True,
                 target_init: str = "copy", **switches) -> None:
        projector = mlp(backbone.out_dim, proj_hidden_dim, proj_dim, 2, bn_affine=bn_affine)
        predictor = Predictor(predictor, proj_dim, pred_hidden_dim, pred_bias, symmetric_predictor, bn_affine=bn_affine)
        super().__init__(backbone, projector, predictor,
                         siamese_target(backbone, projector, momentum, momentum_final, stop_gradient, target_init), **switches)


class SimSiam(NegativeCosine):
    """SimSiam (Chen & He 2021): projector of ``proj_layers`` (3) Linear-BN layers of 2048, the last
    BN affine-free (``proj_last_bn``), bottleneck predictor ``Linear(512) BN ReLU Linear(2048)``, and
    the online embeddings behind a stop-gradient as targets (``stop_gradient=false``: the ablation)."""

    acts_when = {k: BYOL.acts_when[k] for k in ("pred_hidden_dim", "symmetric_predictor", "pred_lr_ratio", "fix_pred_lr")}

    def __init__(self, backbone: nn.Module, /, proj_hidden_dim: int = 2048, proj_dim: int = 2048, proj_layers: int = 3,
                 proj_last_bn: bool = True, predictor: str = "mlp", pred_hidden_dim: int = 512,
                 symmetric_predictor: bool = False, stop_gradient: bool = True, **switches) -> None:
        projector = mlp(backbone.out_dim, proj_hidden_dim, proj_dim, proj_layers, last_bn=proj_last_bn, last_bn_affine=False)
        super().__init__(backbone, projector, Predictor(predictor, proj_dim, pred_hidden_dim, symmetric=symmetric_predictor),
                         siamese_target(backbone, projector, 0.0, 0.0, stop_gradient), **switches)


class DirectPred(NegativeCosine):
    """DirectPred (Tian et al. 2021) / DirectSet(α) / DirectCopy (Wang et al. 2021): BYOL with a
    bias-free linear predictor reset from F̂ every ``freq`` steps (:class:`.parts.DirectPredictor`:
    ``direct``, ``rho``, ``eps``, ``power``, ``eps_inside``, ``zero_mean``, ``init``, ``norm``; and
    ``direct=optimal`` with ``reg``: Tian et al.'s Table 1 predictor solved from F̂ and E[f_a fᵀ]).
    Official luckmatters setting: projector 512-128 with affine-free BN, constant EMA 0.996, and a
    target that starts as an independent random initialisation (``target_init="random"``; the
    default ``copy`` starts it equal to the online network, as BYOL)."""

    #: each closed form reads its own options: DirectSet(α)'s power, DirectCopy's norm, the optimal predictor's reg
    acts_when = {"power": acts_when_in("direct", "pred"), "eps_inside": acts_when_in("direct", "pred"),
                 "eps": acts_when_in("direct", "pred", "copy"), "norm": acts_when_in("direct", "copy"),
                 "reg": acts_when_in("direct", "optimal"),
                 # a closed-form Wp of a symmetric F̂ is symmetric: symmetrising acts only on the SGD steps between resets
                 # (freq > 1) or on the optimal predictor, which is not symmetric
                 "symmetric_predictor": ActsWhen("freq", lambda o: o["freq"] > 1 or o["direct"] == "optimal",
                                                 "freq > 1 or direct=optimal")}

    def __init__(self, backbone: nn.Module, /, direct: str = "pred", rho: float = 0.3, eps: float = 0.1, freq: int = 1,
                 power: float = 0.5, eps_inside: bool = False, zero_mean: bool = False, init: str = "first_batch",
                 norm: str = "spectral", symmetric_predictor: bool = False, proj_hidden_dim: int = 512, proj_dim: int = 128,
                 momentum: float = 0.996, momentum_final: float = 0.996, stop_gradient: bool = True,
                 target_init: str = "copy", reg: float = 0.01, **switches) -> None:
        projector = mlp(backbone.out_dim, proj_hidden_dim, proj_dim, 2, bn_affine=False)
        predictor = DirectPredictor(proj_dim, direct, rho=rho, eps=eps, freq=freq, power=power, eps_inside=eps_inside,
                                    zero_mean=zero_mean, init=init, norm=norm, symmetric=symmetric_predictor, reg=reg)
        super().__init__(backbone, projector, predictor,
                         siamese_target(backbone, projector, momentum, momentum_final, stop_gradient, target_init),
                         **switches)


TIAN = "Tian, Chen, Ganguli 2021, Understanding self-supervised learning dynamics without contrastive pairs (ICML)"
WANG = ("Wang, Chen, Du, Tian 2021, Towards demystifying representation learning with non-contrastive "
        "self-supervision (arXiv 2110.04947)")
LUCKMATTERS = "facebookresearch/luckmatters ssl/real-dataset (byol_trainer.py, README commands)"

register(
    MethodSpec(name="byol", family="asymmetric", cls=BYOL, views="byol", description="BYOL, EMA target + MLP predictor",
               paper="Grill et al. 2020, Bootstrap Your Own Latent (NeurIPS)",
               code="deepmind/deepmind-research byol/byol_experiment.py",
               recipes={**standard_recipes("byol"), "shifted_mnist": "byol_shifted_mnist"}, doc="byol_simsiam.md"),
    MethodSpec(name="simsiam", family="asymmetric", cls=SimSiam, views="byol", description="SimSiam, stop-gradient without EMA",
               paper="Chen & He 2021, Exploring Simple Siamese Representation Learning (CVPR)",
               code="facebookresearch/simsiam simsiam/builder.py", recipes=standard_recipes("simsiam"), doc="byol_simsiam.md"),
    MethodSpec(name="directpred", family="asymmetric", cls=DirectPred, views="byol",
               description="BYOL with the linear predictor set from F̂'s eigendecomposition (power=α: DirectSet(α))",
               paper=TIAN, code=LUCKMATTERS, recipes=mnist_recipes("directpred"), doc="directpred.md"),
    MethodSpec(name="directcopy", family="asymmetric", cls=DirectPred, views="byol",
               description="Wp = F̂/‖F̂‖ + εI, no eigendecomposition", paper=WANG, code=LUCKMATTERS,
               preset={"direct": "copy", "rho": 0.5, "eps": 0.3}, recipes=mnist_recipes("directcopy"), doc="directpred.md"),
)
