"""Target networks that follow the online one by an exponential moving average (EMA).

BYOL's target, MoCo's key encoder and DINO's teacher are the same device: after each optimiser
step, θ_target ← τ θ_target + (1 − τ) θ_online, with τ on BYOL's cosine schedule from a base
value to a final one. τ is a function of the step alone, so a resumed run continues it exactly.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..optim import cosine_schedule


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
    for po, pt in zip(online.parameters(), target.parameters()):
        pt.mul_(tau).add_(po.detach(), alpha=1 - tau)
