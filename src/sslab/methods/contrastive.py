"""The sample-contrastive family: repulsion between samples (the Gram matrix KᵀK) keeps embeddings apart.

* SimCLR (Chen et al. 2020): two views through one encoder + projector, InfoNCE over the batch.
  Its variants differ only in the loss and are presets of the same class: SimCLR-abs / -sq
  (Garrido et al. 2023), DCL (Yeh et al. 2022), the spectral contrastive loss (HaoChen et al. 2021).
* MoCo v2 / v3 (Chen et al. 2020, 2021): InfoNCE of online queries against the keys of an EMA key
  encoder -- a :class:`~.siamese.Siamese` composition (MoCo v2: a queue of past keys as negatives;
  MoCo v3: a predictor and the batch's keys).

VICReg-ctr (Garrido et al. Eqn 13) and NNCLR are sample-contrastive too; they are registered beside
their classes (:mod:`.dimension`, :mod:`.nnclr`).
"""

from __future__ import annotations

from abc import abstractmethod

import torch
import torch.nn.functional as F
from torch import nn

from ..losses import info_nce, momentum_contrast, spectral_contrastive, standardize_dimensions
from ..losses.contrastive import NEGATIVE_TRANSFORMS
from ..nets import mlp
from .base import SSLMethod, StepOutput, check_choice
from .parts import EMATarget, Predictor, Queue
from .siamese import Siamese
from .spec import MethodSpec, acts_when_in, acts_when_positive, mnist_recipes, register, standard_recipes

STANDARDIZE = ("none", "center", "dimension")


class SampleContrastive(SSLMethod):
    """Two views through one encoder and projector (``proj_hidden_dim``, ``proj_dim``, ``proj_layers``;
    ``proj_last_bn`` adds the SimCLR v2 BatchNorm after the last layer, ``proj_bn=false`` drops the hidden
    layers' BatchNorm: solo-learn's ``Linear ReLU Linear``), the loss a subclass's :meth:`contrast` of
    the embeddings after ``standardize`` (Garrido et al. 2023 Eqn 14, Table 1): ``none`` (classical
    SimCLR), ``center`` (SimCLR A: dimensions centred over the batch, then embeddings ℓ2-normalised) or
    ``dimension`` (SimCLR B: dimensions centred and scaled to norm √(N/M), no embedding normalisation)."""

    def __init__(self, backbone: nn.Module, /, proj_hidden_dim: int = 2048, proj_dim: int = 128, proj_layers: int = 2,
                 proj_last_bn: bool = False, proj_bn: bool = True, standardize: str = "none") -> None:
        super().__init__(backbone)
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim, proj_layers, bn=proj_bn, last_bn=proj_last_bn)
        check_choice("standardize", standardize, STANDARDIZE)
        self.standardize = standardize

    @abstractmethod
    def contrast(self, k1: torch.Tensor, k2: torch.Tensor) -> torch.Tensor:
        """The loss of the two views' (standardised) embeddings."""

    def forward(self, views: list[torch.Tensor]) -> StepOutput:
        feats, z = self.embed_views(views)
        k = z if self.standardize == "none" else [standardize_dimensions(zi, scale=self.standardize == "dimension") for zi in z]
        loss = self.contrast(k[0], k[1])
        return StepOutput(loss, feats[0], z)


class SimCLR(SampleContrastive):
    """SimCLR: ``loss = info_nce(g(f(x1)), g(f(x2)), temperature)``.

    Defaults follow the official SimCLR: a 2-layer projector (hidden 2048, output 128), τ = 0.5
    for CIFAR-size batches (the paper's Table 5 ablation; 0.1-0.2 at ImageNet batch 4096).
    ``negatives`` (``none|abs|sq``) and ``decoupled`` select the InfoNCE variants (SimCLR-abs / -sq,
    DCL); the projector and ``standardize`` are :class:`SampleContrastive`'s.
    """

    def __init__(self, backbone: nn.Module, /, temperature: float = 0.5, negatives: str = "none", decoupled: bool = False,
                 **encoder) -> None:
        super().__init__(backbone, **encoder)
        check_choice("negatives", negatives, tuple(NEGATIVE_TRANSFORMS))
        self.temperature, self.negatives, self.decoupled = temperature, negatives, decoupled

    def contrast(self, k1: torch.Tensor, k2: torch.Tensor) -> torch.Tensor:
        return info_nce(k1, k2, self.temperature, negatives=self.negatives, decoupled=self.decoupled,
                        normalize=self.standardize != "dimension")


class SpectralContrastive(SampleContrastive):
    """The spectral contrastive loss (HaoChen et al. 2021) with ``mu`` (μ: embeddings projected onto the
    ball of radius √μ, loss divided by μ, as the official code; 1 is its CIFAR value, 10 ImageNet;
    ``mu=null`` uses the raw projections)."""

    def __init__(self, backbone: nn.Module, /, mu: float | None = 1.0, **encoder) -> None:
        super().__init__(backbone, **encoder)
        self.mu = mu

    def contrast(self, k1: torch.Tensor, k2: torch.Tensor) -> torch.Tensor:
        return spectral_contrastive(k1, k2, mu=self.mu)


class MoCo(Siamese):
    """MoCo: queries q(z) of the online network against keys from an EMA key encoder (τ ``momentum``
    → ``momentum_final``), ℓ = :func:`sslab.losses.momentum_contrast` at ``temperature``.

    ``queue_size`` > 0 keeps that many past keys as negatives (MoCo v2; with
    ``batch_negatives=False`` the other keys of the batch are not negatives, as MoCo v2). The queue
    starts as random unit vectors, as the official ``moco/builder.py`` (``queue_init="random"``);
    ``zeros`` starts it empty, and then the first step has no negatives at all;
    ``temperature_scale`` multiplies the loss by 2τ (MoCo v3). Projector ``proj_hidden_dim`` →
    ``proj_dim`` (BN after the hidden layer with ``proj_bn``, after the output with ``proj_last_bn``),
    ``predictor`` ``none`` (v2) or ``mlp`` (v3, ``pred_hidden_dim``, ``pred_bias``).
    """

    acts_when = {"pred_hidden_dim": acts_when_in("predictor", "mlp"), "pred_bias": acts_when_in("predictor", "mlp", "linear"),
                 "pred_lr_ratio": acts_when_in("predictor", "mlp", "linear"),
                 "fix_pred_lr": acts_when_in("predictor", "mlp", "linear"), "queue_init": acts_when_positive("queue_size")}

    def __init__(self, backbone: nn.Module, /, proj_hidden_dim: int = 2048, proj_dim: int = 128, proj_bn: bool = False,
                 proj_last_bn: bool = False, predictor: str = "none", pred_hidden_dim: int = 4096,
                 pred_bias: bool | None = None, momentum: float = 0.999, momentum_final: float = 0.999,
                 temperature: float = 0.2, queue_size: int = 0, queue_init: str = "random", batch_negatives: bool = True,
                 temperature_scale: bool = False, symmetric: bool = False, **switches) -> None:
        projector = mlp(backbone.out_dim, proj_hidden_dim, proj_dim, 2, bn=proj_bn, last_bn=proj_last_bn, last_bn_affine=False)
        super().__init__(backbone, projector, Predictor(predictor, proj_dim, pred_hidden_dim, pred_bias),
                         EMATarget(backbone, projector, momentum=momentum, momentum_final=momentum_final),
                         symmetric=symmetric, **switches)
        self.queue = Queue(queue_size, proj_dim, gather_keys=True, init=queue_init) if queue_size else None
        self.temperature, self.batch_negatives, self.temperature_scale = temperature, batch_negatives, temperature_scale

    def criterion(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        queue = self.queue.values() if self.queue is not None else None
        loss = momentum_contrast(prediction, target.detach(), self.temperature, queue=queue,
                                 batch_negatives=self.batch_negatives)
        return loss * (2 * self.temperature) if self.temperature_scale else loss

    def forward(self, views: list[torch.Tensor]) -> StepOutput:
        out = super().forward(views)
        if self.queue is not None and self.training:  # this step's keys join the queue in after_step
            self.queue.stage(*[F.normalize(k.detach(), dim=1) for k in out.targets])
        return out


MOCO_V2 = "Chen, Fan, Girshick, He 2020, Improved Baselines with Momentum Contrastive Learning (arXiv 2003.04297)"
MOCO_V3 = "Chen, Xie, He 2021, An Empirical Study of Training Self-Supervised Vision Transformers (ICCV)"
GARRIDO = "Garrido, Chen, Bardes, Najman, LeCun 2023, On the duality between contrastive and non-contrastive SSL (ICLR)"
SIMCLR_CODE = "google-research/simclr tf2/objective.py"

register(
    MethodSpec(name="simclr", family="sample-contrastive", cls=SimCLR, views="simclr",
               description="SimCLR, InfoNCE over the batch",
               paper="Chen, Kornblith, Norouzi, Hinton 2020, A Simple Framework for Contrastive Learning (ICML)",
               code=SIMCLR_CODE, recipes=standard_recipes("simclr"), doc="simclr.md"),
    MethodSpec(name="simclr_abs", family="sample-contrastive", cls=SimCLR, views="simclr",
               description="SimCLR with |cos| of the negatives", paper=GARRIDO, code=SIMCLR_CODE,
               preset={"negatives": "abs"}, recipes=mnist_recipes("simclr_abs"), doc="simclr.md"),
    MethodSpec(name="simclr_sq", family="sample-contrastive", cls=SimCLR, views="simclr",
               description="SimCLR with squared cosines of the negatives", paper=GARRIDO, code=SIMCLR_CODE,
               preset={"negatives": "sq"}, recipes=mnist_recipes("simclr_sq"), doc="simclr.md"),
    MethodSpec(name="dcl", family="sample-contrastive", cls=SimCLR, views="simclr",
               description="decoupled contrastive learning, positive out of the denominator",
               paper="Yeh et al. 2022, Decoupled Contrastive Learning (ECCV)",
               code="no official code found (the paper's L_DC)", preset={"decoupled": True},
               recipes=mnist_recipes("dcl"), doc="simclr.md"),
    MethodSpec(name="spectral_contrastive", family="sample-contrastive", cls=SpectralContrastive, views="simclr",
               description="spectral contrastive loss -2E[zᵀz⁺] + E[(zᵀz⁻)²]",
               paper="HaoChen, Wei, Gaidon, Ma 2021, Provable Guarantees for Self-Supervised Deep Learning with Spectral "
                     "Contrastive Loss (NeurIPS)", code="jhaochenz96/spectral_contrastive_learning models/spectral.py",
               recipes=mnist_recipes("spectral_contrastive"), doc="simclr.md"),
    MethodSpec(name="moco_v2", family="sample-contrastive", cls=MoCo, views="simclr",
               description="MoCo v2, momentum encoder + queue of negative keys", paper=MOCO_V2,
               code="facebookresearch/moco moco/builder.py", preset={"queue_size": 65536, "batch_negatives": False},
               recipes=standard_recipes("moco_v2"), doc="moco.md"),
    MethodSpec(name="moco_v3", family="sample-contrastive", cls=MoCo, views="byol",
               description="MoCo v3, momentum encoder + predictor, batch keys as negatives", paper=MOCO_V3,
               code="facebookresearch/moco-v3 moco/builder.py",
               preset={"proj_hidden_dim": 4096, "proj_dim": 256, "proj_bn": True, "proj_last_bn": True, "predictor": "mlp",
                       "pred_bias": False, "momentum": 0.99, "momentum_final": 1.0, "temperature": 1.0,
                       "temperature_scale": True, "symmetric": True},
               recipes=standard_recipes("moco_v3"), doc="moco.md"),
)
