"""What every method is, and what its parts are.

A method is a plain ``nn.Module`` mapping a list of views to a :class:`StepOutput`: the ``loss``,
the backbone ``features`` of the first view, the ``embeddings`` the loss sees and the ``scalars`` it
wants logged. One training step of it is :func:`sslab.step` (:mod:`.step`): forward, backward,
``before_optimizer_step``, the optimiser's step, ``after_step``; ``configure_schedule`` first.

A method is built from :class:`Part` s -- a target, a predictor, a queue -- each a small module
with its own state. ``forward`` changes no state: the parts' buffers (queues, centers, EMA
targets, correlation estimates, predictor resets) change only in ``after_step``, which runs
after each optimiser step. No Lightning import.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields

import torch
from torch import nn


def check_choice(name: str, value: str, valid: tuple[str, ...]) -> None:
    """One-line error for an option outside its choices: ``unknown <name> '<value>'; valid choices: ...``."""
    if value not in valid:
        raise ValueError(f"unknown {name} '{value}'; valid choices: {', '.join(valid)}")


def by_resolution(net: nn.Module, views: list[torch.Tensor]) -> list[torch.Tensor]:
    """``[net(v) for v in views]``, with consecutive views of one resolution passed in one call, as the
    official DINO and SwAV ``MultiCropWrapper`` do: fewer, larger kernels, and BatchNorm statistics over
    those views together (the official behaviour). The split sizes are batch sizes: no host read."""
    out, i = [], 0
    while i < len(views):
        j = i + 1
        while j < len(views) and views[j].shape[1:] == views[i].shape[1:]:
            j += 1
        group = views[i:j]
        y = net(torch.cat(group) if len(group) > 1 else group[0])
        out.extend(y.split([v.shape[0] for v in group]) if len(group) > 1 else [y])
        i = j
    return out


def split_like(y: torch.Tensor, parts: list[torch.Tensor]) -> list[torch.Tensor]:
    """``y`` (computed on ``torch.cat(parts)``) split back into one piece per part."""
    return list(y.split([p.shape[0] for p in parts]))


@dataclass
class StepOutput:
    """What a method's ``forward`` returns for one batch of views.

    * ``loss`` -- the scalar to minimise;
    * ``features`` -- backbone features of the first view, ``(N, F)`` (the engine's online probe reads them, detached);
    * ``embeddings`` -- the per-view embeddings the loss sees (the diagnostics measure the first two);
    * ``scalars`` -- the method's own 0-dim statistics (DINO's teacher entropy and KL, the center's ‖s‖²), which the
      engine logs as ``method/<name>`` (epoch mean), in this order; nothing else is logged;
    * ``targets`` -- for methods with a target: what each direction of the loss compared a prediction against
      (MoCo's queue takes these keys); empty for the others.
    """

    loss: torch.Tensor
    features: torch.Tensor
    embeddings: list[torch.Tensor]
    scalars: dict[str, torch.Tensor] = field(default_factory=dict)
    targets: list[torch.Tensor] = field(default_factory=list)

    def detach(self) -> StepOutput:
        """The same tensors cut from the graph (views of the same storage: no copy, no host read), what the
        engine hands its callbacks, so keeping them does not keep the step's graph alive."""
        def cut(value):
            if isinstance(value, torch.Tensor):
                return value.detach()
            if isinstance(value, dict):
                return {k: v.detach() for k, v in value.items()}
            return [v.detach() for v in value]

        return StepOutput(**{f.name: cut(getattr(self, f.name)) for f in fields(self)})


class Part(nn.Module):
    """A piece of a method with its own state: it may read the current batch in ``forward`` but
    updates its buffers only in ``after_step`` (``step`` = optimiser steps completed, 1-based)."""

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        """Update this part's state after optimiser step ``step`` of ``total_steps``."""


class SSLMethod(nn.Module, ABC):
    """Base class: holds the ``backbone`` whose features are evaluated and runs its parts' ``after_step``."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.steps_per_epoch, self.total_steps = 1, 1  # what forward reads until configure_schedule is called
        self.schedule_configured = False  # sslab.step refuses to train before configure_schedule

    @property
    def feature_dim(self) -> int:
        return int(self.backbone.out_dim)

    @abstractmethod
    def forward(self, views: list[torch.Tensor]) -> StepOutput:
        """The method's loss and tensors for one batch of views (no state changes)."""

    @property
    def embedding_dim(self) -> int:
        """Size of the embeddings the loss sees (the projector's last linear layer)."""
        return [m for m in self.projector.modules() if isinstance(m, nn.Linear)][-1].out_features

    def configure_schedule(self, steps_per_epoch: int, total_steps: int) -> None:
        """The length of the training, told before its first step (part of the step contract: :func:`sslab.step`
        refuses a method not told it): epoch-based schedules (DINO, SwAV) count epochs with ``steps_per_epoch``,
        and ``after_step`` is given ``total_steps`` (EMA momentum, DINO's teacher temperature)."""
        self.steps_per_epoch, self.total_steps = steps_per_epoch, total_steps
        self.schedule_configured = True

    def epoch_of(self, step: int) -> int:
        """The (0-based) epoch that optimiser step ``step`` belongs to."""
        return step // max(1, self.steps_per_epoch)

    def before_optimizer_step(self, step: int) -> None:
        """Hook between backward and the optimiser step (``step`` = steps done before this one, 0-based): e.g.
        drop the gradients of a layer that is frozen for now (DINO's last layer, SwAV's prototypes)."""

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        """After each optimiser step (``step`` counts completed steps, 1-based): every part's
        ``after_step``, in the order the parts were registered."""
        for module in self.modules():
            if isinstance(module, Part):
                module.after_step(step, total_steps)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """The embedding of backbone features that the loss sees (and the diagnostics measure): the projection."""
        return self.projector(features)

    def embed_views(self, views: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Backbone features and embeddings of the two global views, online network only (what the
        diagnostics probe: no predictor, target or loss is computed)."""
        feats = [self.backbone(v) for v in views[:2]]
        return feats, [self.embed(f) for f in feats]

    def parameter_groups(self) -> list[dict]:
        """Optimiser parameter groups; override to give parts their own settings (e.g. a predictor)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]
