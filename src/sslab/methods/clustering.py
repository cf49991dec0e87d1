"""SwAV (Caron et al. 2020): predict one view's equipartitioned cluster code from another view.

Backbone → projector (2048-128, BN) → ℓ2-normalised embedding → scores against K ℓ2-normalised
prototypes. Codes of the two global crops come from Sinkhorn-Knopp (ε 0.05, 3 iterations),
optionally over a queue of past embeddings (small batches: the official recipe uses 3840 from
epoch 15); every other crop, local multi-crop views included, predicts them
(:func:`sslab.losses.swav`). The prototypes are frozen for the first ``freeze_prototypes_steps``
steps (official ``freeze_prototypes_niters`` 313) or for good (``fixed_prototypes``, the
Jha et al. ablation: SwAV with fixed prototypes). Defaults are the official ``main_swav.py`` ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..losses import swav
from ..nets import mlp
from .base import SSLMethod, StepOutput, by_resolution, split_like
from .parts import HostMirror, Queue
from .spec import MethodSpec, acts_when_positive, register, standard_recipes


class SwAV(HostMirror, SSLMethod):
    """SwAV with ``num_prototypes`` K, ``temperature`` τ, Sinkhorn ``epsilon`` / ``sinkhorn_iterations``,
    ``queue_size`` (per rank and global crop; 0 = none) used from ``queue_start_epoch``, and the
    prototype freezing switches ``freeze_prototypes_steps`` / ``fixed_prototypes``."""

    acts_when = {"queue_start_epoch": acts_when_positive("queue_size")}

    def __init__(self, backbone: nn.Module, /, proj_hidden_dim: int = 2048, proj_dim: int = 128,
                 num_prototypes: int = 3000, temperature: float = 0.1, epsilon: float = 0.05,
                 sinkhorn_iterations: int = 3, queue_size: int = 0, queue_start_epoch: int = 15,
                 freeze_prototypes_steps: int = 313, fixed_prototypes: bool = False) -> None:
        super().__init__(backbone)
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim, 2)
        self.prototypes = nn.Linear(proj_dim, num_prototypes, bias=False)
        self.normalize_prototypes()
        if fixed_prototypes:
            self.prototypes.requires_grad_(False)
        self.temperature, self.epsilon, self.sinkhorn_iterations = temperature, epsilon, sinkhorn_iterations
        # official: one queue per global crop, per rank (no gather), newest keys replacing the oldest
        self.queues = nn.ModuleList(Queue(queue_size, proj_dim) for _ in range(2)) if queue_size else None
        self.queue_start_epoch, self.freeze_prototypes_steps = queue_start_epoch, freeze_prototypes_steps
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))

    @property
    def embedding_dim(self) -> int:
        return self.prototypes.in_features

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """The ℓ2-normalised projection that the prototypes score."""
        return F.normalize(self.projector(features), dim=1)

    def forward(self, views: list[torch.Tensor]) -> StepOutput:
        # official: crops of one resolution through the backbone together, then the head on all crops at once
        feats = by_resolution(self.backbone, views)
        z = split_like(self.embed(torch.cat(feats)), feats)
        scores = [self.prototypes(zi) for zi in z]
        queue_scores = None
        if self.training and self.queues is not None and self.queue_started:
            # official: the queue joins the codes once it is full; this batch enters it after the step
            queue_scores = [self.prototypes(q.keys).detach() if q.full else None for q in self.queues]
            for q, zi in zip(self.queues, z[:2]):
                q.stage(zi)
        loss = swav(scores, self.temperature, self.epsilon, self.sinkhorn_iterations, (0, 1), queue_scores)
        return StepOutput(loss, feats[0], z[:2])

    @property
    def queue_started(self) -> bool:
        """Whether this epoch uses the queue (a bool that flips once: a compiled forward recompiles once)."""
        if "queue_started" not in self.__dict__:
            self.__dict__["queue_started"] = self.epoch_of(self.host_int("steps_done")) >= self.queue_start_epoch
        return self.__dict__["queue_started"]

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self.__dict__.pop("queue_started", None)

    @torch.no_grad()
    def normalize_prototypes(self) -> None:
        """Prototypes on the unit sphere (official: re-normalised before every step)."""
        self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))

    def before_optimizer_step(self, step: int) -> None:
        if step < self.freeze_prototypes_steps:
            self.prototypes.weight.grad = None

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        super().after_step(step, total_steps)
        self.normalize_prototypes()
        self.set_int("steps_done", step)  # buffer and host copy
        self.__dict__.pop("queue_started", None)


register(MethodSpec(name="swav", family="clustering/distillation", cls=SwAV, views="swav",
                    description="SwAV, swapped prediction of Sinkhorn cluster codes",
                    paper="Caron, Misra, Mairal, Goyal, Bojanowski, Joulin 2020, Unsupervised Learning of Visual Features by "
                    "Contrasting Cluster Assignments (NeurIPS)",
                    code="facebookresearch/swav main_swav.py", recipes=standard_recipes("swav"), doc="swav.md"))
