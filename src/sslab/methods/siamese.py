"""The two-branch architecture Tian et al. 2021 analyse (spec §A.1), shared by BYOL, SimSiam, DirectPred and MoCo.

An online branch -- backbone, projector, predictor -- is pulled towards a target branch's
embedding of the other view:

    L = ½ [ ℓ(q(z1), t2) + ℓ(q(z2), t1) ]    (``symmetric``; else the first term)

with z = projector(backbone(x)), q the predictor part (``Wp``) and t the target part (``Wa``:
the online network behind a stop-gradient, or its EMA). Subclasses choose ℓ (:meth:`criterion`)
and compose the parts; the switches here are the ones every such method shares: ``symmetric``,
Tian et al.'s optimiser ablations ``pred_lr_ratio`` (α_p: the predictor's learning rate over
the trunk's) and ``weight_decay_on`` (``predictor``: weight decay on the predictor only, Table 5),
and SimSiam's ``fix_pred_lr`` (the predictor keeps its initial learning rate while the rest
follows the schedule: ``main_simsiam.py --fix-pred-lr``, its Table 1 last row).
"""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import nn

from .base import Part, SSLMethod, StepOutput, check_choice
from .parts import Predictor

WEIGHT_DECAY_ON = ("all", "predictor")


class Siamese(SSLMethod):
    """``backbone`` → ``projector`` → ``predictor`` against ``target``; ℓ = :meth:`criterion`."""

    def __init__(self, backbone: nn.Module, projector: nn.Module, predictor: Predictor, target: Part, /, *,
                 symmetric: bool = True, pred_lr_ratio: float = 1.0, weight_decay_on: str = "all",
                 fix_pred_lr: bool = False) -> None:
        super().__init__(backbone)
        check_choice("weight_decay_on", weight_decay_on, WEIGHT_DECAY_ON)
        self.projector, self.predictor, self.target = projector, predictor, target
        self.symmetric, self.pred_lr_ratio, self.weight_decay_on = symmetric, pred_lr_ratio, weight_decay_on
        self.fix_pred_lr = fix_pred_lr

    @abstractmethod
    def criterion(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """ℓ(q(z_i), t_j) for one direction."""

    def combine(self, terms: list[torch.Tensor]) -> torch.Tensor:
        """The loss from the directions' ℓ: their mean."""
        return sum(terms) / len(terms)

    def pairs(self, p: list[torch.Tensor], t: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(prediction, target) of each direction the loss averages."""
        return [(p[0], t[1]), (p[1], t[0])] if self.symmetric else [(p[0], t[1])]

    def forward(self, views: list[torch.Tensor]) -> StepOutput:
        feats, z = self.embed_views(views)
        if self.training:
            self.predictor.observe(z)
        p = [self.predictor(zi) for zi in z]
        t = self.target(views, z)
        if self.training:
            self.predictor.observe_targets(t)
        pairs = self.pairs(p, t)
        loss = self.combine([self.criterion(a, b) for a, b in pairs])
        return StepOutput(loss, feats[0], z, targets=[b for _, b in pairs])

    def parameter_groups(self) -> list[dict]:
        trunk = [p for n, p in self.named_parameters() if p.requires_grad and not n.startswith("predictor.")]
        pred = [p for p in self.predictor.parameters() if p.requires_grad]
        groups = [{"params": trunk}]
        if self.weight_decay_on == "predictor":
            groups[0]["weight_decay"] = 0.0
        if pred:  # fixed_lr: the engine keeps this group's learning rate off the schedule
            groups.append({"params": pred, "lr_scale": self.pred_lr_ratio, "fixed_lr": self.fix_pred_lr})
        return groups
