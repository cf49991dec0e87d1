"""Closed-form predictors: DirectPred (Tian et al. 2021), DirectCopy and DirectSet(α) (Wang et al. 2021).

Instead of learning the linear predictor Wp, set it from F̂, a moving estimate of the
correlation matrix of its input f (the online projection), spec §A.2 and §B.2:

    F̂ ← ρ F̂ + (1 − ρ) mean_{i, views} f_i f_iᵀ                              (Eqn 19)
    DirectPred / DirectSet(α):  F̂ = Q diag(s) Qᵀ,  p_j = (s_j / s_max)^α + ε,  Wp = Q diag(p) Qᵀ   (Eqn 18)
    DirectCopy:                 Wp = F̂ / ‖F̂‖ + ε I   (no eigendecomposition)
    "optimal" (Table 1):        ½(Wp F̂ + F̂ Wp) = ½(F̂_a + F̂_aᵀ),  F̂_a ← ρ F̂_a + (1 − ρ) E[f_a fᵀ]

As in the official ``luckmatters`` code (``compute_w_corr``, ``balance_type=boost_scale``): the
eigenvalues are clamped at 0 and normalised by the largest, ε is added after the power
(``eps_inside`` puts it inside: p = clamp(s̃ + ε, 1e-4)^α), p is clamped at 1e-4, the first batch
initialises F̂ (``init="zeros"`` starts from 0 without bias correction, as Halvagal et al.),
F̂ is uncentred (``zero_mean`` subtracts E[f]E[f]ᵀ, which the paper reports hurts).

:class:`DirectPredictor` is the part: a bias-free linear predictor whose F̂ takes in the
training batch and which is reset from F̂ every ``freq`` steps, in ``after_step``; in between,
Wp takes ordinary gradient steps.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from ...losses.distributed import world_size
from ..base import check_choice
from .predictor import Predictor

MODES = ("pred", "copy", "optimal")
NORMS = ("spectral", "fro", "none")
INITS = ("first_batch", "zeros")


def directset_predictor(corr: torch.Tensor, power: float = 0.5, eps: float = 0.1, eps_inside: bool = False) -> torch.Tensor:
    """DirectSet(α): ``Q diag((s/s_max)^α + ε) Qᵀ`` from a symmetric PSD ``corr`` (α = ½: DirectPred).

    Computed in float64 with ``torch.linalg.eigh`` (F̂ is symmetric; the official code's
    ``torch.eig`` is deprecated), returned in ``corr``'s dtype.
    """
    s, q = torch.linalg.eigh(corr.double())
    s = s.clamp(min=0)
    s = s / s.max().clamp(min=torch.finfo(torch.float64).tiny)
    if eps_inside:
        p = (s + eps).clamp(min=1e-4).pow(power)
    else:
        p = (s.pow(power) + eps).clamp(min=1e-4)
    return ((q * p) @ q.T).to(corr.dtype)


def directcopy_predictor(corr: torch.Tensor, eps: float = 0.3, norm: str = "spectral") -> torch.Tensor:
    """DirectCopy: ``F̂/‖F̂‖ + εI``; ``norm`` = ``spectral`` (λ_max, Halvagal et al.), ``fro``
    (the KTH reproduction) or ``none`` (the official luckmatters code path) -- the paper's choice
    is NOT FOUND (spec §B.2), spectral is the default."""
    check_choice("norm", norm, NORMS)
    if norm == "spectral":
        scale = torch.linalg.eigvalsh(corr.double()).max().clamp(min=1e-30).to(corr.dtype)
    elif norm == "fro":
        scale = torch.linalg.matrix_norm(corr).clamp(min=1e-30)
    else:
        scale = torch.ones((), dtype=corr.dtype, device=corr.device)
    return corr / scale + eps * torch.eye(corr.shape[0], dtype=corr.dtype, device=corr.device)


def optimal_predictor(corr: torch.Tensor, cross: torch.Tensor, reg: float = 0.01) -> torch.Tensor:
    """Tian et al.'s "optimal" linear predictor (Table 1, luckmatters ``predictor_reg=minimal_space``):
    the symmetric Wp solving ``F̂ Wp + Wp F̂ = F̂_a + F̂_aᵀ``, with F̂_a = E[f_a fᵀ] the correlation of the
    target's output with the predictor input. In F̂'s eigenbasis (F̂ = U diag(d) Uᵀ, d clamped at 0)
    each entry is ``(Uᵀ S U)_ij / ((d_i + d_j + reg)/2)`` with S = ½(F̂_a + F̂_aᵀ); ``reg`` keeps the
    division finite (luckmatters ``dyn_reg``, which has no default: its value is NOT FOUND, 0.01 is ours).
    float64 ``eigh``; returned in ``corr``'s dtype."""
    d, u = torch.linalg.eigh(corr.double())
    d = d.clamp(min=0)
    s = (cross.double() + cross.double().T) / 2
    w = (u.T @ s @ u) / ((d[:, None] + d[None, :] + reg) / 2)
    return (u @ w @ u.T).to(corr.dtype)


class CorrelationEstimate(nn.Module):
    """F̂: the ρ-moving average of the (uncentred) correlation of the predictor input, in buffers
    so checkpoints carry it. Under DDP each batch's correlation is averaged over ranks first,
    so every rank sets the same predictor."""

    def __init__(self, dim: int, rho: float = 0.3, zero_mean: bool = False, init: str = "first_batch") -> None:
        super().__init__()
        check_choice("init", init, INITS)
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"rho must lie in [0, 1), got {rho}")
        self.rho, self.zero_mean, self.init = rho, zero_mean, init
        self.register_buffer("corr", torch.zeros(dim, dim))
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, f: torch.Tensor) -> None:
        """Add a batch ``f (B, D)`` (both views stacked): d = mean_i f_i f_iᵀ."""
        f = f.detach().float()
        self.update_matrix(f.T @ f / f.shape[0], f.mean(0))

    @torch.no_grad()
    def update_matrix(self, corr: torch.Tensor, mean: torch.Tensor) -> None:
        """Add one batch's correlation matrix and mean (averaged over ranks first under DDP)."""
        d = torch.cat([corr.float().flatten(), mean.float()])
        if world_size() > 1:
            dist.all_reduce(d)
            d /= world_size()
        n = self.corr.shape[0]
        corr, mean = d[: n * n].view(n, n), d[n * n:]
        first = self.count == 0 if self.init == "first_batch" else None  # the first batch replaces the zeros
        for estimate, batch in ((self.corr, corr), (self.mean, mean)):
            blended = estimate.mul(self.rho).add_(batch, alpha=1 - self.rho)
            # chosen on the device: reading the count on the host would make every step wait for the GPU
            estimate.copy_(blended if first is None else torch.where(first, batch, blended))
        self.count += 1

    def value(self) -> torch.Tensor:
        """F̂, or the covariance F̂ − E[f]E[f]ᵀ with ``zero_mean``."""
        if self.zero_mean:
            return self.corr - torch.outer(self.mean, self.mean)
        return self.corr


class DirectPredictor(Predictor):
    """Wp set in closed form from F̂ every ``freq`` steps: ``mode="pred"`` is DirectPred (``power``
    ½) / DirectSet(α) (``power`` α), ``"copy"`` is DirectCopy (``norm``), ``"optimal"`` Tian et al.'s
    Table 1 predictor solved from F̂ and the target cross-correlation F̂_a (``reg``). ``rho``,
    ``zero_mean``, ``init`` shape the estimates; ``eps`` / ``eps_inside`` the boost of the small
    eigenvalues; ``symmetric`` symmetrises the gradient steps between resets (:class:`.Predictor`)."""

    def __init__(self, dim: int, mode: str = "pred", rho: float = 0.3, eps: float = 0.1, freq: int = 1,
                 power: float = 0.5, eps_inside: bool = False, zero_mean: bool = False, init: str = "first_batch",
                 norm: str = "spectral", symmetric: bool = False, reg: float = 0.01) -> None:
        super().__init__("linear", dim, bias=False, symmetric=symmetric)
        check_choice("direct", mode, MODES)
        check_choice("norm", norm, NORMS)
        if freq < 1:
            raise ValueError(f"freq must be >= 1 (steps between predictor resets), got {freq}")
        self.mode, self.freq, self.power, self.eps, self.eps_inside, self.norm = mode, freq, power, eps, eps_inside, norm
        self.corr = CorrelationEstimate(dim, rho=rho, zero_mean=zero_mean, init=init)
        self.reg = reg
        if mode == "optimal":  # F̂_a = E[f_a fᵀ]: rows the target's output, columns the predictor input
            self.cross = CorrelationEstimate(dim, rho=rho, zero_mean=zero_mean, init=init)
        self._inputs: torch.Tensor | None = None
        self._targets: list[torch.Tensor] | None = None

    def observe(self, inputs: list[torch.Tensor]) -> None:
        self._inputs = torch.cat(inputs).detach()  # F̂ takes in this batch before Wp is set (luckmatters order)

    def observe_targets(self, targets: list[torch.Tensor]) -> None:
        if self.mode == "optimal":
            self._targets = [t.detach() for t in targets[:2]]

    def correlation(self) -> torch.Tensor:
        return self.corr.value()

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        if self._targets is not None and self._inputs is not None:  # luckmatters: ½[E f_a(v2) f(v1)ᵀ + E f_a(v1) f(v2)ᵀ]
            a1, a2 = (a.float() for a in self._targets)
            n = a1.shape[0]
            f1, f2 = self._inputs[:n].float(), self._inputs[n:2 * n].float()  # the first two views' predictor inputs
            self.cross.update_matrix((a2.T @ f1 + a1.T @ f2) / (2 * n), (a1.mean(0) + a2.mean(0)) / 2)
            self._targets = None
        if self._inputs is not None:
            self.corr.update(self._inputs)
            self._inputs = None
        if (step - 1) % self.freq == 0:  # luckmatters: niter % freq == 0, counting from 0
            corr = self.corr.value()
            if self.mode == "pred":
                w = directset_predictor(corr, self.power, self.eps, self.eps_inside)
            elif self.mode == "optimal":
                cross = self.cross.corr  # with zero_mean, luckmatters centres it by E[f_a] E[f]ᵀ
                cross = cross - torch.outer(self.cross.mean, self.corr.mean) if self.corr.zero_mean else cross
                w = optimal_predictor(corr, cross, self.reg)
            else:
                w = directcopy_predictor(corr, self.eps, self.norm)
            self.net.weight.copy_(w)
        super().after_step(step, total_steps)
