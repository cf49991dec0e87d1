"""The linear-network dynamics of Tian, Chen & Ganguli 2021 (spec §A.1): gradient flows, fixed points, closed forms.

Model: online f1 = W x1, predictor Wp, target f2a = Wa x2, loss J = ½ E‖Wp f1 − StopGrad(f2a)‖².
With X = E[x̄x̄ᵀ] (augmentation-averaged inputs) and X' = E_x V[x'|x] (augmentation covariance),
the gradient flow with weight decay η, predictor rate α_p and EMA rate β is (Eqns 2-4)::

    Ẇp = α_p (−Wp W (X + X') + Wa X) Wᵀ − η Wp
    Ẇ  = Wpᵀ (−Wp W (X + X') + Wa X) − η W
    Ẇa = β (W − Wa)

``target="simsiam"`` sets Wa = W (stop-gradient kept); ``target="none"`` removes the
stop-gradient (Theorem 2: W → 0). Under isotropy (X = I, X' = σ²I) and a shared eigenbasis the
modes decouple (Eqns 11-13)::

    ṗ_j = α_p s_j [τ − (1 + σ²) p_j] − η p_j
    ṡ_j = 2 p_j s_j [τ − (1 + σ²) p_j] − 2η s_j
    τ̇   = β (1 − τ) − τ ṡ_j / (2 s_j)        (τ fixed when β is None, e.g. τ = 1 for SimSiam)

Integration: ``scipy.integrate.solve_ivp`` (adaptive RK, DOP853 by default, rtol 1e-9): the
flows are smooth and low-dimensional, and error control matters because the checks compare to
closed forms at 1e-3 or tighter; LSODA is available for stiff settings (large η or α_p).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp

TARGETS = ("ema", "simsiam", "none")


# ---------------------------------------------------------------------------------------------- closed forms
def collapse_threshold(tau: float = 1.0, sigma2: float = 0.0) -> float:
    """η above which only the collapsed fixed point exists: τ² / (4(1 + σ²)) (Obs#5)."""
    return tau * tau / (4 * (1 + sigma2))


def fixed_points(eta: float, tau: float = 1.0, sigma2: float = 0.0) -> tuple[float, float] | None:
    """(p*−, p*+) = [τ ∓ √(τ² − 4η(1+σ²))] / (2(1+σ²)) on the invariant parabola; None when η exceeds the threshold.
    With η = 0: (0, τ/(1+σ²)). p*+ and 0 are stable, p*− unstable; modes starting below p*− collapse."""
    disc = tau * tau - 4 * eta * (1 + sigma2)
    if disc < 0:
        return None
    root = math.sqrt(disc)
    return (tau - root) / (2 * (1 + sigma2)), (tau + root) / (2 * (1 + sigma2))


def parabola(t: np.ndarray, p: np.ndarray, p0: float, s0: float, alpha_p: float, eta: float) -> np.ndarray:
    """Eqn 14, the exact integral of the per-mode flow for any τ(t): s(t) = p(t)²/α_p + e^{−2ηt} (s0 − p0²/α_p).

    (The spec writes c_j = α_p⁻¹p_j(0)² − s_j(0); that sign does not reproduce s(0) = s0 -- differentiate
    p²/α_p − s along the flow: it decays as e^{−2ηt}, so c_j = s_j(0) − α_p⁻¹p_j(0)².)"""
    return p * p / alpha_p + np.exp(-2 * eta * t) * (s0 - p0 * p0 / alpha_p)


def wp_fixed_point(f: np.ndarray, tau: float = 1.0, sigma2: float = 0.0, eta: float = 0.0, alpha_p: float = 1.0) -> np.ndarray:
    """App. B: the Wp with Ẇp = 0 for a given F = U Λ Uᵀ: U τΛ((1+σ²)Λ + η/α_p)⁻¹ Uᵀ."""
    lam, u = np.linalg.eigh(f)
    p = tau * lam / ((1 + sigma2) * lam + eta / alpha_p)
    return (u * p) @ u.T


BLOW_UP = 1e8  # |state| beyond this ends an integration with an error
MAX_EVALS = 500_000  # right-hand-side evaluations before a (stiff) integration is abandoned with an error


class _TooStiff(Exception):
    pass


def _solve(rhs, t_end: float, y0: np.ndarray, t: np.ndarray, method: str, rtol: float, atol: float, what: str):
    calls = [0]

    def counted(time, y):
        calls[0] += 1
        if calls[0] > MAX_EVALS:
            raise _TooStiff
        return rhs(time, y)

    def blow_up(_, y):
        return BLOW_UP - np.abs(y).max()

    blow_up.terminal = True
    try:
        sol = solve_ivp(counted, (0, t_end), y0, method=method, t_eval=t, rtol=rtol, atol=atol, events=blow_up)
    except _TooStiff:
        raise ValueError(f"the {what} needs more than {MAX_EVALS:,} steps with method={method} (stiff?); "
                         "try method=LSODA or a shorter horizon") from None
    if sol.status == 1:
        raise ValueError(f"the {what} diverges (|state| > {BLOW_UP:g} at t = {sol.t_events[0][0]:.4g}); "
                         "lower the rates or the horizon")
    if not sol.success:
        raise RuntimeError(f"the {what} failed: {sol.message}")
    return sol


# ---------------------------------------------------------------------------------------------- per-mode ODE
@dataclass
class ModeParams:
    alpha_p: float = 1.0  # predictor learning-rate ratio
    eta: float = 0.0  # weight decay
    sigma2: float = 0.0  # isotropic augmentation variance, X' = σ² I
    beta: float | None = None  # EMA rate; None keeps τ fixed at tau0 (SimSiam: τ = 1)


def mode_rhs(y: np.ndarray, prm: ModeParams) -> np.ndarray:
    """Right-hand side of Eqns 11-13 for stacked modes ``y = [p_1..p_k, s_1..s_k, τ_1..τ_k]``."""
    k = y.size // 3
    p, s, tau = y[:k], y[k:2 * k], y[2 * k:]
    gain = tau - (1 + prm.sigma2) * p
    dp = prm.alpha_p * s * gain - prm.eta * p
    ds = 2 * p * s * gain - 2 * prm.eta * s
    # τ̇ = β(1 − τ) − τ ṡ/(2s) with ṡ/(2s) = p·gain − η (no division, so s → 0 is safe)
    dtau = np.zeros_like(tau) if prm.beta is None else prm.beta * (1 - tau) - tau * (p * gain - prm.eta)
    return np.concatenate([dp, ds, dtau])


def integrate_modes(p0, s0, prm: ModeParams, t_end: float, tau0: float = 1.0, points: int = 400,
                    method: str = "DOP853", rtol: float = 1e-9, atol: float = 1e-12) -> dict[str, np.ndarray]:
    """Integrate every mode (p0[j], s0[j]) from τ(0) = tau0 to ``t_end``; returns t and p, s, τ of shape (modes, points)."""
    p0, s0 = np.atleast_1d(np.asarray(p0, float)), np.atleast_1d(np.asarray(s0, float))
    p0, s0 = np.broadcast_arrays(p0, s0)
    k = p0.size
    y0 = np.concatenate([p0, s0, np.full(k, float(tau0))])
    t = np.linspace(0, t_end, points)
    sol = _solve(lambda _, y: mode_rhs(y, prm), t_end, y0, t, method, rtol, atol, "per-mode ODE")
    return {"t": sol.t, "p": sol.y[:k], "s": sol.y[k:2 * k], "tau": sol.y[2 * k:]}


# ---------------------------------------------------------------------------------------------- matrix flow
@dataclass
class FlowParams:
    alpha_p: float = 1.0
    eta: float = 0.0
    beta: float = 0.0  # EMA rate (target="ema" only)
    target: str = "ema"  # ema | simsiam (Wa = W) | none (no stop-gradient, Wa = W)
    symmetric: bool = False  # symmetrised predictor flow (assumption 3 of §3)

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"unknown target '{self.target}'; choose one of {', '.join(TARGETS)}")


def flow_rhs(w: np.ndarray, wp: np.ndarray, wa: np.ndarray, x: np.ndarray, xp: np.ndarray, prm: FlowParams):
    """(Ẇ, Ẇp, Ẇa) of Eqns 2-4 (and the no-stop-gradient flow of Theorem 2)."""
    total = x + xp
    target = wa if prm.target == "ema" else w
    g = -wp @ w @ total + target @ x
    dwp = prm.alpha_p * g @ w.T - prm.eta * wp
    if prm.symmetric:
        dwp = (dwp + dwp.T) / 2
    dw = wp.T @ g - prm.eta * w
    if prm.target == "none":  # the gradient also flows through the target branch W x2
        dw = dw + wp @ w @ x - w @ total
    dwa = prm.beta * (w - wa) if prm.target == "ema" else np.zeros_like(wa)
    return dw, dwp, dwa


def integrate_flow(w0: np.ndarray, wp0: np.ndarray, x: np.ndarray, xp: np.ndarray, prm: FlowParams, t_end: float,
                   wa0: np.ndarray | None = None, points: int = 200, method: str = "DOP853", rtol: float = 1e-9,
                   atol: float = 1e-12) -> dict[str, np.ndarray]:
    """Integrate (W, Wp, Wa) from (w0, wp0, wa0 = w0 by default); returns t and the stacked matrices per time."""
    n2, n1 = w0.shape
    wa0 = w0.copy() if wa0 is None else wa0
    sizes = (n2 * n1, n2 * n2, n2 * n1)

    def unpack(y):
        a, b = sizes[0], sizes[0] + sizes[1]
        return y[:a].reshape(n2, n1), y[a:b].reshape(n2, n2), y[b:].reshape(n2, n1)

    def rhs(_, y):
        return np.concatenate([m.ravel() for m in flow_rhs(*unpack(y), x, xp, prm)])

    t = np.linspace(0, t_end, points)
    y0 = np.concatenate([w0.ravel(), wp0.ravel(), wa0.ravel()])
    sol = _solve(rhs, t_end, y0, t, method, rtol, atol, "matrix flow")
    mats = [unpack(sol.y[:, i]) for i in range(sol.y.shape[1])]
    return {"t": sol.t, "W": np.stack([m[0] for m in mats]), "Wp": np.stack([m[1] for m in mats]),
            "Wa": np.stack([m[2] for m in mats])}


def commutator(f: np.ndarray, wp: np.ndarray) -> float:
    """‖[F, Wp]‖_F (Theorem 3's quantity, unnormalised)."""
    return float(np.linalg.norm(f @ wp - wp @ f))


def balance_residual(w: np.ndarray, wp: np.ndarray, w0: np.ndarray, wp0: np.ndarray, t: float, alpha_p: float,
                     eta: float) -> float:
    """Theorem 1: ‖WWᵀ − α_p⁻¹WpᵀWp − e^{−2ηt}C‖_F with C = W0W0ᵀ − α_p⁻¹Wp0ᵀWp0 (0 along any flow with stop-gradient)."""
    c = w0 @ w0.T - wp0.T @ wp0 / alpha_p
    return float(np.linalg.norm(w @ w.T - wp.T @ wp / alpha_p - math.exp(-2 * eta * t) * c))
