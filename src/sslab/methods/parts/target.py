"""Targets: what the online branch is pulled towards, behind a stop-gradient.

* :class:`OnlineTarget` -- the online network's own embeddings, detached (SimSiam; Tian et al.
  2021's ``Wa = W``). ``stop_gradient=False`` lets the gradient through: the ablation of SimSiam
  §4.1 and Tian et al. Theorem 2, which collapses.
* :class:`EMATarget` -- a copy of the online network that follows it by an exponential moving
  average (BYOL's target, MoCo's key encoder, DINO's teacher): after each optimiser step
  θ_target ← τ θ_target + (1 − τ) θ_online, with τ on BYOL's cosine schedule from ``momentum`` to
  ``momentum_final``. τ is a function of the step alone, so a resumed run continues it exactly.
  It starts as a copy of the online network (BYOL, MoCo, DINO) or, with ``init="random"``, as an
  independent random initialisation (the luckmatters DirectPred code, whose copy-to-target call is
  commented out).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ...nets import reinitialize
from ...optim import cosine_schedule
from ..base import Part, check_choice, split_like

INITS = ("copy", "random")


def cosine_momentum(base: float, final: float, step: int, total_steps: int) -> float:
    """BYOL's EMA schedule τ_k = 1 − (1 − τ_base)(cos(πk/K) + 1)/2, from ``base`` to ``final``."""
    return cosine_schedule(base, final, step, total_steps)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A gradient-free copy of ``module``: the target starts equal to the online network
    (BYOL, MoCo, DINO all initialise it so)."""
    return copy.deepcopy(module).requires_grad_(False)


@torch.no_grad()
def ema_update(online: nn.Module, target: nn.Module, tau: float) -> None:
    """θ_target ← τ θ_target + (1 − τ) θ_online for every parameter. BatchNorm statistics are
    not averaged: the target runs in train mode on its own batch statistics (BYOL)."""
    targets, onlines = list(target.parameters()), [p.detach() for p in online.parameters()]
    torch._foreach_mul_(targets, tau)  # a few kernels for all tensors, the same arithmetic as a loop of mul_/add_
    torch._foreach_add_(targets, onlines, alpha=1 - tau)


class OnlineTarget(Part):
    """The online embeddings as targets, detached unless ``stop_gradient=False``."""

    def __init__(self, stop_gradient: bool = True) -> None:
        super().__init__()
        self.stop_gradient = stop_gradient

    def forward(self, views: list[torch.Tensor], online: list[torch.Tensor]) -> list[torch.Tensor]:
        return [z.detach() for z in online] if self.stop_gradient else list(online)


class EMATarget(Part):
    """An EMA copy of the online modules ``online`` (run in sequence: e.g. backbone then projector)."""

    def __init__(self, *online: nn.Module, momentum: float = 0.996, momentum_final: float = 1.0, init: str = "copy",
                 joint: bool = False) -> None:
        super().__init__()
        if not 0.0 <= momentum <= 1.0 or not 0.0 <= momentum_final <= 1.0:
            raise ValueError(f"momentum must lie in [0, 1], got {momentum} -> {momentum_final}")
        check_choice("target init", init, INITS)
        self.online = list(online)  # a plain list: these modules belong to the method, not to the target
        self.network = frozen_copy(nn.Sequential(*online))
        if init == "random":
            reinitialize(self.network)
        self.momentum, self.momentum_final = momentum, momentum_final
        self.joint = joint  # both views in one call (DINO's MultiCropWrapper teacher) rather than one call each

    @torch.no_grad()
    def forward(self, views: list[torch.Tensor], online: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """The target's embeddings of the two global views (``online`` is unused: the target has its own weights)."""
        if self.joint:
            return split_like(self.network(torch.cat(views[:2])), views[:2])
        return [self.network(v) for v in views[:2]]

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        tau = cosine_momentum(self.momentum, self.momentum_final, step - 1, total_steps)
        for online, target in zip(self.online, self.network):
            ema_update(online, target, tau)


def siamese_target(backbone: nn.Module, projector: nn.Module, momentum: float, momentum_final: float,
                   stop_gradient: bool = True, init: str = "copy") -> Part:
    """An EMA target of ``backbone`` → ``projector`` (starting as a copy or, ``init="random"``, an
    independent initialisation) when either momentum is > 0, else the online network behind a
    stop-gradient (SimSiam); removing the stop-gradient needs no EMA."""
    if momentum > 0 or momentum_final > 0:
        if not stop_gradient:
            raise ValueError("stop_gradient=false needs momentum=0 momentum_final=0 (without EMA the target is "
                             "the online network, through which the gradient then flows)")
        return EMATarget(backbone, projector, momentum=momentum, momentum_final=momentum_final, init=init)
    if momentum < 0 or momentum_final < 0:
        raise ValueError(f"momentum must lie in [0, 1], got {momentum} -> {momentum_final}")
    return OnlineTarget(stop_gradient)
