"""Real linear BYOL / SimSiam networks trained by SGD on sampled data: the discrete side of the theory.

Data: x ~ N(0, Σx); two views per sample, independently augmented,

* ``additive``:        x' = x + σ n,  n ~ N(0, I)      -> X = Σx, X' = σ² I
* ``multiplicative``:  x' = m ⊙ x / q, m_i ~ Bern(q)   -> X = Σx, X' = (1 − q)/q · diag(Σx)

(the mask is rescaled like dropout so the augmentation mean is x itself). Training uses autograd
on J = ½ mean ‖Wp W x1 − StopGrad(Wa x2)‖², so it checks the hand-derived flows independently.
The step sizes follow spec §A.1's mapping: trunk learning rate α, predictor α·α_p, EMA
Wa ← Wa + αβ(W − Wa), weight decay α·η on both; t = α · step is the flow's time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .tian import FlowParams

AUGMENTATIONS = ("additive", "multiplicative")


@dataclass
class AugmentedGaussian:
    cov: np.ndarray  # Σx (n1 × n1)
    augmentation: str = "additive"
    sigma: float = 0.5  # additive noise std
    keep: float = 0.8  # multiplicative: mask keep probability q

    def __post_init__(self) -> None:
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation '{self.augmentation}'; choose one of {', '.join(AUGMENTATIONS)}")
        self.cov = np.asarray(self.cov, float)
        self._chol = torch.linalg.cholesky(torch.as_tensor(self.cov) + 1e-12 * torch.eye(self.dim, dtype=torch.float64))

    @property
    def dim(self) -> int:
        return self.cov.shape[0]

    def statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """(X, X') of spec §A.1 for this data model."""
        if self.augmentation == "additive":
            return self.cov, self.sigma ** 2 * np.eye(self.dim)
        return self.cov, (1 - self.keep) / self.keep * np.diag(np.diag(self.cov))

    def sample(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Two augmented views of n samples, float64 (n, n1)."""
        x = torch.randn(n, self.dim, generator=g, dtype=torch.float64) @ self._chol.T
        views = []
        for _ in range(2):
            if self.augmentation == "additive":
                views.append(x + self.sigma * torch.randn(n, self.dim, generator=g, dtype=torch.float64))
            else:
                mask = (torch.rand(n, self.dim, generator=g, dtype=torch.float64) < self.keep).double()
                views.append(x * mask / self.keep)
        return views[0], views[1]


def train_linear(data: AugmentedGaussian, w0: np.ndarray, wp0: np.ndarray, prm: FlowParams | list[FlowParams], lr: float,
                 steps: int, batch: int = 256, wa0: np.ndarray | None = None, record_every: int = 10, seed: int = 0) -> dict:
    """SGD on the linear network; returns t = lr · step and W, Wp, Wa every ``record_every`` steps.

    A list of parameter sets trains that many independent networks at once (same initialisation,
    same sampled batches; their α_p, η, β may differ, their ``target``/``symmetric`` may not): the
    phase diagram's grid in one vectorised run. Arrays then carry a leading cell axis."""
    cells = prm if isinstance(prm, list) else [prm]
    if len({(c.target, c.symmetric) for c in cells}) != 1:
        raise ValueError("cells trained together must share target and symmetric")
    target, symmetric = cells[0].target, cells[0].symmetric
    col = lambda name: torch.tensor([getattr(c, name) for c in cells], dtype=torch.float64).view(-1, 1, 1)  # noqa: E731
    alpha_p, eta, beta = col("alpha_p"), col("eta"), col("beta")
    c = len(cells)
    g = torch.Generator().manual_seed(seed)
    w = torch.tensor(np.broadcast_to(w0, (c, *w0.shape[-2:])).copy(), dtype=torch.float64, requires_grad=True)
    wp = torch.tensor(np.broadcast_to(wp0, (c, *wp0.shape[-2:])).copy(), dtype=torch.float64, requires_grad=True)
    wa = torch.tensor(np.broadcast_to(w0 if wa0 is None else wa0, (c, *w0.shape[-2:])).copy(), dtype=torch.float64)
    ts, ws, wps, was = [], [], [], []

    def record(step: int) -> None:
        ts.append(lr * step)
        for store, m in ((ws, w), (wps, wp), (was, wa)):
            store.append(m.detach().numpy().copy())

    record(0)
    for step in range(1, steps + 1):
        x1, x2 = data.sample(batch, g)
        online = x1 @ w.transpose(1, 2) @ wp.transpose(1, 2)  # (cells, batch, n2)
        if target == "ema":
            aim = (x2 @ wa.transpose(1, 2)).detach()
        elif target == "simsiam":
            aim = (x2 @ w.transpose(1, 2)).detach()
        else:  # no stop-gradient
            aim = x2 @ w.transpose(1, 2)
        loss = 0.5 * (online - aim).pow(2).sum(2).mean(1).sum()  # cells are independent: summing keeps their gradients
        gw, gwp = torch.autograd.grad(loss, (w, wp))
        with torch.no_grad():
            w -= lr * (gw + eta * w)
            wp -= lr * (alpha_p * gwp + eta * wp)
            if symmetric:
                wp.copy_((wp + wp.transpose(1, 2)) / 2)
            if target == "ema":
                wa += lr * beta * (w - wa)
        if step % record_every == 0 or step == steps:
            record(step)
    out = {"t": np.array(ts), "W": np.stack(ws, 1), "Wp": np.stack(wps, 1), "Wa": np.stack(was, 1)}  # (cells, time, ...)
    if not isinstance(prm, list):
        out |= {k: out[k][0] for k in ("W", "Wp", "Wa")}
    return out
