"""DINO (Caron et al. 2021): a student matches a centred, sharpened EMA teacher over multi-crop views.

The student sees every crop (two global, ``local_crops`` small ones), the teacher -- an EMA of
the student, momentum 0.996 → 1 on a cosine -- only the global crops. Both end in a DINO head
(3-layer GELU MLP 2048-2048-256, ℓ2-normalised bottleneck, weight-normalised linear layer to K
outputs). The teacher's outputs are centred by a running mean (momentum 0.9) and sharpened
(τ_t 0.04, optionally warmed up linearly from ``warmup_teacher_temp``); the loss is
:func:`sslab.losses.dino`. Defaults are the official ``main_dino.py`` ones.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..losses import dino
from ..losses.distributed import world_size
from .base import Part, SSLMethod, StepOutput, by_resolution, split_like
from .parts import EMATarget, HostMirror
from .spec import MethodSpec, acts_when_positive, register, standard_recipes


class TeacherCenter(Part):
    """DINO's center c of the teacher outputs: ``after_step`` sets c ← m c + (1 − m) · mean of this
    step's teacher outputs over the global batch (official ``update_center``, m = ``momentum``)."""

    def __init__(self, dim: int, momentum: float = 0.9) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("center", torch.zeros(1, dim))
        self._teacher: torch.Tensor | None = None

    def stage(self, teacher: torch.Tensor) -> None:
        """Remember this batch's teacher outputs ``(B, K)`` for ``after_step``."""
        self._teacher = teacher.detach()

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        if self._teacher is None:
            return
        batch_center = self._teacher.sum(0, keepdim=True)
        if world_size() > 1:
            dist.all_reduce(batch_center)
        batch_center = batch_center / (self._teacher.shape[0] * world_size())
        self.center.mul_(self.momentum).add_(batch_center, alpha=1 - self.momentum)
        self._teacher = None


class DINOHead(nn.Module):
    """``mlp`` (``layers`` Linear+GELU, optional BN) → ℓ2-normalise → weight-normalised ``Linear(bottleneck, out_dim)``.

    ``norm_last_layer`` fixes the weight-norm gain g = 1 (official default; False trains it).
    """

    def __init__(self, in_dim: int, out_dim: int = 65536, hidden_dim: int = 2048, bottleneck_dim: int = 256,
                 layers: int = 3, use_bn: bool = False, norm_last_layer: bool = True) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        d = in_dim
        for _ in range(layers - 1):
            mods += [nn.Linear(d, hidden_dim)] + ([nn.BatchNorm1d(hidden_dim)] if use_bn else []) + [nn.GELU()]
            d = hidden_dim
        mods.append(nn.Linear(d, bottleneck_dim))
        self.mlp = nn.Sequential(*mods)
        for m in self.mlp.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        # weight_norm(Linear(bottleneck, out, bias=False)): W = g · V/‖V‖ row-wise, g initialised to 1
        self.last_v = nn.Parameter(torch.empty(out_dim, bottleneck_dim))
        nn.init.trunc_normal_(self.last_v, std=0.02)
        self.last_g = nn.Parameter(torch.ones(out_dim, 1), requires_grad=not norm_last_layer)

    def bottleneck(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mlp(x), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.bottleneck(x), self.last_g * F.normalize(self.last_v, dim=1))


class DINO(HostMirror, SSLMethod):
    """DINO self-distillation. ``out_dim`` K, head sizes, ``norm_last_layer``, temperatures
    (``student_temp``, ``teacher_temp`` reached linearly from ``warmup_teacher_temp`` over
    ``warmup_teacher_temp_epochs``), ``center_momentum``, teacher ``momentum`` → ``momentum_final``
    and ``freeze_last_layer`` (epochs during which the last layer gets no update)."""

    acts_when = {"warmup_teacher_temp": acts_when_positive("warmup_teacher_temp_epochs")}

    def __init__(self, backbone: nn.Module, /, out_dim: int = 65536, proj_hidden_dim: int = 2048,
                 bottleneck_dim: int = 256, head_layers: int = 3, use_bn_in_head: bool = False,
                 norm_last_layer: bool = True, student_temp: float = 0.1, teacher_temp: float = 0.04,
                 warmup_teacher_temp: float = 0.04, warmup_teacher_temp_epochs: int = 0, center_momentum: float = 0.9,
                 momentum: float = 0.996, momentum_final: float = 1.0, freeze_last_layer: int = 1) -> None:
        super().__init__(backbone)
        self.head = DINOHead(self.feature_dim, out_dim, proj_hidden_dim, bottleneck_dim, head_layers, use_bn_in_head,
                             norm_last_layer)
        self.teacher = EMATarget(self.backbone, self.head, momentum=momentum, momentum_final=momentum_final,
                                 joint=True)
        self.center = TeacherCenter(out_dim, center_momentum)
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        self.student_temp, self.teacher_temp = student_temp, teacher_temp
        self.warmup_teacher_temp, self.warmup_teacher_temp_epochs = warmup_teacher_temp, warmup_teacher_temp_epochs
        # τ_t of the current epoch, kept where forward reads it (not saved: it follows from steps_done)
        self.register_buffer("teacher_temp_now", torch.tensor(self.current_teacher_temp()), persistent=False)
        self.freeze_last_layer = freeze_last_layer

    @property
    def embedding_dim(self) -> int:
        """The ℓ2-normalised bottleneck returned as ``embeddings`` (what ``z_std`` measures)."""
        return self.head.last_v.shape[1]

    def current_teacher_temp(self) -> float:
        """τ_t of the current epoch: linear from ``warmup_teacher_temp`` over the warm-up epochs (official schedule)."""
        epoch = self.epoch_of(self.host_int("steps_done"))
        n = self.warmup_teacher_temp_epochs
        if epoch >= n:
            return self.teacher_temp
        return self.warmup_teacher_temp + (self.teacher_temp - self.warmup_teacher_temp) * (epoch / max(1, n - 1))

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """The head's ℓ2-normalised bottleneck (before the weight-normalised prototypes layer)."""
        return self.head.bottleneck(features)

    def forward(self, views: list[torch.Tensor]) -> StepOutput:
        # official MultiCropWrapper: crops of one resolution through the backbone together, the head on all at once
        feats = by_resolution(self.backbone, views)
        student = split_like(self.head(torch.cat(feats)), feats)
        teacher = self.teacher(views)
        temp = self.teacher_temp_now  # a device scalar: a compiled forward does not recompile as it changes
        center = self.center.center
        loss = dino(student, teacher, center, self.student_temp, temp)
        with torch.no_grad():  # DINO's own collapse diagnostics (its Fig. 7): teacher entropy h and KL = loss − h
            p = F.softmax((torch.cat(teacher) - center) / temp, dim=-1)
            entropy = -(p * torch.log(p.clamp(min=1e-30))).sum(-1).mean()
        if self.training:
            self.center.stage(torch.cat(teacher))
        embeddings = [self.embed(f) for f in feats[:2]]
        return StepOutput(loss, feats[0], embeddings, scalars={"teacher_entropy": entropy, "kl": loss.detach() - entropy})

    def before_optimizer_step(self, step: int) -> None:
        if self.epoch_of(step) < self.freeze_last_layer:  # official cancel_gradients_last_layer
            self.head.last_v.grad = None
            self.head.last_g.grad = None

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        super().after_step(step, total_steps)  # the teacher's EMA and the center
        self.set_int("steps_done", step)  # buffer and host copy
        self.teacher_temp_now.fill_(self.current_teacher_temp())

    def configure_schedule(self, steps_per_epoch: int, total_steps: int) -> None:
        super().configure_schedule(steps_per_epoch, total_steps)
        self.teacher_temp_now.fill_(self.current_teacher_temp())

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self.teacher_temp_now.fill_(self.current_teacher_temp())  # one host read, after a checkpoint load


register(MethodSpec(name="dino", family="clustering/distillation", cls=DINO, views="dino",
                    description="DINO, self-distillation from a centred EMA teacher",
                    paper="Caron, Touvron, Misra, Jégou, Mairal, Bojanowski, Joulin 2021, Emerging Properties in "
                    "Self-Supervised Vision Transformers (ICCV)",
                    code="facebookresearch/dino main_dino.py", recipes=standard_recipes("dino"), doc="dino.md"))
