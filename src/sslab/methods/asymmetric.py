"""Methods with an online and a target branch: BYOL, SimSiam, DirectPred/DirectCopy/DirectSet(α), MoCo v2/v3.

They differ by switches of one architecture (Tian et al. 2021 analyse exactly this family,
spec §A.1: ``Wa`` is the target, ``Wp`` the predictor):

* the target: an EMA copy of the online backbone + projector (``momentum > 0``: BYOL, MoCo) or
  the online network itself (``momentum = 0``: SimSiam), behind a stop-gradient
  (``stop_gradient=False`` removes it -- only meaningful without EMA, Tian et al. Thm 2);
* the predictor on the online branch: ``mlp``, ``linear`` or ``none``; learned by SGD, or set
  in closed form from the correlation of its input (``direct``: DirectPred / DirectSet(α),
  DirectCopy, see :mod:`sslab.methods.direct`);
* the loss: negative cosine (BYOL, SimSiam, DirectPred) or InfoNCE against the target's keys
  (MoCo v3, batch keys; MoCo v2, a queue of past keys), symmetric over the two views or not.

    L = ½ [ ℓ(q(z1), sg(z2')) + ℓ(q(z2), sg(z1')) ]    (``symmetric``; else the first term)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..losses import momentum_contrast, negative_cosine
from ..losses.distributed import gather
from ..nets import mlp
from .base import SSLMethod, check_choice
from .direct import NORMS, CorrelationEstimate, directcopy_predictor, directset_predictor
from .momentum import cosine_momentum, ema_update, frozen_copy

PREDICTORS = ("mlp", "linear", "none")
DIRECT = ("none", "pred", "copy")
LOSSES = ("cosine", "info_nce")
WEIGHT_DECAY_ON = ("all", "predictor")


class AsymmetricSiamese(SSLMethod):
    """Online encoder + projector + predictor against a stop-gradient target (see the module doc).

    Architecture: ``proj_*`` shape the projector (``proj_bn_affine=False``: luckmatters'
    BN without affine), ``predictor`` / ``pred_hidden_dim`` / ``pred_bias`` (default: bias for
    ``mlp``, none for ``linear``) the predictor.

    Target: ``momentum`` → ``momentum_final`` on BYOL's cosine schedule (0.996 → 1 for BYOL;
    equal values keep it constant, as luckmatters' 0.996; 0 → 0 is SimSiam); ``stop_gradient``.

    Loss: ``loss="cosine"`` or ``"info_nce"`` with ``temperature``, ``queue_size`` (MoCo v2's
    queue of past keys; with ``batch_negatives=False`` the other keys of the batch are not
    negatives, as MoCo v2) and ``temperature_scale`` (MoCo v3 multiplies by 2τ); ``symmetric``.

    Ablation switches of Tian et al.: ``symmetric_predictor`` (Wp ← (Wp + Wpᵀ)/2 after every step,
    luckmatters ``predictor_reg=symmetric``; for an MLP W0 ← (W0 + W1ᵀ)/2, W1 ← W0ᵀ),
    ``pred_lr_ratio`` (α_p: the predictor's learning rate over the trunk's), ``weight_decay_on``
    (``predictor``: weight decay on the predictor only, Table 5).

    Closed-form predictor (``direct``, needs ``predictor="linear"``): ``pred`` sets
    Wp = Q diag((s/s_max)^power + eps) Qᵀ (DirectPred at power ½, DirectSet(α) otherwise),
    ``copy`` sets Wp = F̂/‖F̂‖ + eps·I (``norm``); every ``freq`` steps, with ordinary gradient
    steps on Wp in between. F̂: ``rho``, ``zero_mean``, ``init``, ``eps_inside``.
    """

    def __init__(
        self,
        backbone: nn.Module,
        proj_hidden_dim: int = 4096,
        proj_dim: int = 256,
        proj_layers: int = 2,
        proj_bn: bool = True,
        proj_bn_affine: bool = True,
        proj_last_bn: bool = False,
        proj_last_bias: bool = True,
        predictor: str = "mlp",
        pred_hidden_dim: int = 4096,
        pred_bias: bool | None = None,
        momentum: float = 0.996,
        momentum_final: float = 1.0,
        stop_gradient: bool = True,
        loss: str = "cosine",
        temperature: float = 0.2,
        queue_size: int = 0,
        batch_negatives: bool = True,
        temperature_scale: bool = False,
        symmetric: bool = True,
        symmetric_predictor: bool = False,
        pred_lr_ratio: float = 1.0,
        weight_decay_on: str = "all",
        direct: str = "none",
        rho: float = 0.3,
        eps: float = 0.1,
        freq: int = 1,
        power: float = 0.5,
        eps_inside: bool = False,
        zero_mean: bool = False,
        init: str = "first_batch",
        norm: str = "spectral",
    ) -> None:
        super().__init__(backbone)
        for name, value, valid in (("predictor", predictor, PREDICTORS), ("direct", direct, DIRECT),
                                   ("loss", loss, LOSSES), ("weight_decay_on", weight_decay_on, WEIGHT_DECAY_ON),
                                   ("norm", norm, NORMS)):
            check_choice(name, value, valid)
        if not 0.0 <= momentum <= 1.0 or not 0.0 <= momentum_final <= 1.0:
            raise ValueError(f"momentum must lie in [0, 1], got {momentum} -> {momentum_final}")
        self.uses_ema = momentum > 0 or momentum_final > 0
        if not stop_gradient and self.uses_ema:
            raise ValueError("stop_gradient=false needs momentum=0 momentum_final=0 (without EMA the target is "
                             "the online network, through which the gradient then flows)")
        if direct != "none" and predictor != "linear":
            raise ValueError(f"direct={direct} sets a linear predictor; use predictor=linear (got '{predictor}')")
        if freq < 1:
            raise ValueError(f"freq must be >= 1 (steps between predictor resets), got {freq}")
        if queue_size and loss != "info_nce":
            raise ValueError("queue_size needs loss=info_nce (the queue holds negative keys)")
        self.projector = mlp(self.feature_dim, proj_hidden_dim, proj_dim, proj_layers, bn=proj_bn, bn_affine=proj_bn_affine,
                             last_bn=proj_last_bn, last_bn_affine=False, last_bias=proj_last_bias)
        if predictor == "mlp":
            self.predictor: nn.Module = mlp(proj_dim, pred_hidden_dim, proj_dim, 2, last_bias=pred_bias is not False)
        elif predictor == "linear":
            self.predictor = nn.Linear(proj_dim, proj_dim, bias=bool(pred_bias))
        else:
            self.predictor = nn.Identity()
        self.momentum, self.momentum_final, self.stop_gradient = momentum, momentum_final, stop_gradient
        if self.uses_ema:
            self.target_backbone = frozen_copy(self.backbone)
            self.target_projector = frozen_copy(self.projector)
        self.loss, self.temperature, self.batch_negatives = loss, temperature, batch_negatives
        self.temperature_scale, self.symmetric = temperature_scale, symmetric
        self.symmetric_predictor, self.pred_lr_ratio, self.weight_decay_on = symmetric_predictor, pred_lr_ratio, weight_decay_on
        self.queue_size = queue_size
        if queue_size:
            self.register_buffer("queue", torch.zeros(queue_size, proj_dim))
            self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
            self.register_buffer("queue_filled", torch.zeros((), dtype=torch.long))
        self._pending_keys: list[torch.Tensor] = []
        self.direct, self.freq, self.power, self.eps, self.eps_inside, self.norm = direct, freq, power, eps, eps_inside, norm
        if direct != "none":
            self.corr = CorrelationEstimate(proj_dim, rho=rho, zero_mean=zero_mean, init=init)

    def targets(self, views: list[torch.Tensor], z: list[torch.Tensor]) -> list[torch.Tensor]:
        """The target branch's projections of the two views (no gradient unless ``stop_gradient=False``)."""
        if not self.uses_ema:
            return z if not self.stop_gradient else [zi.detach() for zi in z]
        with torch.no_grad():
            return [self.target_projector(self.target_backbone(v)) for v in views[:2]]

    def pair_loss(self, p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.loss == "cosine":
            return negative_cosine(p, t, stop_gradient=self.stop_gradient)
        queue = self.queue[: int(self.queue_filled)] if self.queue_size else None
        loss = momentum_contrast(p, t.detach(), self.temperature, queue=queue, batch_negatives=self.batch_negatives)
        return loss * (2 * self.temperature) if self.temperature_scale else loss

    def forward(self, views: list[torch.Tensor]) -> dict:
        feats, z = self.embed_views(views)
        if self.direct != "none" and self.training:
            self.corr.update(torch.cat(z))  # F̂ includes this batch before it is used (luckmatters order)
        p = [self.predictor(zi) for zi in z]
        t = self.targets(views, z)
        pairs = [(p[0], t[1]), (p[1], t[0])] if self.symmetric else [(p[0], t[1])]
        loss = sum(self.pair_loss(a, b) for a, b in pairs) / len(pairs)
        if self.queue_size and self.training:
            self._pending_keys = [F.normalize(b.detach(), dim=1) for _, b in pairs]
        return {"loss": loss, "features": feats[0], "embeddings": z, "predictions": p}

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        if self.direct != "none" and (step - 1) % self.freq == 0:
            self.set_predictor()
        if self.symmetric_predictor:
            self.symmetrise_predictor()
        if self.uses_ema:
            tau = cosine_momentum(self.momentum, self.momentum_final, step - 1, total_steps)
            ema_update(self.backbone, self.target_backbone, tau)
            ema_update(self.projector, self.target_projector, tau)
        if self.queue_size:
            for keys in self._pending_keys:
                self.enqueue(gather(keys))
            self._pending_keys = []

    @torch.no_grad()
    def set_predictor(self) -> None:
        """Overwrite Wp from F̂ (DirectPred / DirectSet(α) / DirectCopy)."""
        corr = self.corr.value()
        if self.direct == "pred":
            w = directset_predictor(corr, self.power, self.eps, self.eps_inside)
        else:
            w = directcopy_predictor(corr, self.eps, self.norm)
        self.predictor.weight.copy_(w)

    @torch.no_grad()
    def symmetrise_predictor(self) -> None:
        linears = [m for m in self.predictor.modules() if isinstance(m, nn.Linear)]
        if len(linears) == 1:
            w = linears[0].weight
            w.copy_((w + w.T) / 2)
        elif len(linears) == 2:
            w0, w1 = linears[0].weight, linears[1].weight
            w0.copy_((w0 + w1.T) / 2)
            w1.copy_(w0.T)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write ``keys`` at the queue pointer, wrapping around (oldest keys are replaced)."""
        n = min(keys.shape[0], self.queue_size)
        idx = (self.queue_ptr + torch.arange(n, device=keys.device)) % self.queue_size
        self.queue[idx] = keys[-n:].to(self.queue.dtype)
        self.queue_ptr.copy_((self.queue_ptr + n) % self.queue_size)
        self.queue_filled.copy_(torch.clamp(self.queue_filled + n, max=self.queue_size))

    def parameter_groups(self) -> list[dict]:
        trunk = [p for n, p in self.named_parameters() if p.requires_grad and not n.startswith("predictor.")]
        pred = [p for p in self.predictor.parameters() if p.requires_grad]
        groups = [{"params": trunk}]
        if self.weight_decay_on == "predictor":
            groups[0]["weight_decay"] = 0.0
        if pred:
            groups.append({"params": pred, "lr_scale": self.pred_lr_ratio})
        return groups
