"""The Tian, Chen & Ganguli experiments of the theory lab: ``tian-modes``, ``tian-linear``, ``tian-phase``.

Each ``run_*(params, out)`` integrates / trains, writes its PNGs into ``out`` and returns the
numbers (JSON-ready) including the closed-form checks it makes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..figures import panels, save
from .linear_net import AugmentedGaussian, train_linear
from .tian import (
    FlowParams,
    ModeParams,
    balance_residual,
    collapse_threshold,
    commutator,
    fixed_points,
    integrate_flow,
    integrate_modes,
    parabola,
    wp_fixed_point,
)

# ---------------------------------------------------------------------------------------------------- tian-modes
MODES_DEFAULTS = {"alpha_p": 1.0, "eta": 0.04, "sigma2": 0.0, "beta": None, "tau0": 1.0, "t_end": 400.0,
                  "p0": [0.01, 0.03, 0.05, 0.2, 0.6, 1.2], "s0": [1e-4, 9e-4, 2.5e-3, 0.04, 0.1, 1.0], "collapse_tol": 1e-3}


def run_modes(prm: dict, out: Path) -> dict:
    """Per-mode ODE (Eqns 11-13) from each (p0_j, s0_j): final p, s, τ; p*± and the collapse threshold;
    the Eqn 14 integral along every trajectory."""
    mp = ModeParams(prm["alpha_p"], prm["eta"], prm["sigma2"], prm["beta"])
    r = integrate_modes(prm["p0"], prm["s0"], mp, prm["t_end"], tau0=prm["tau0"])
    t, p, s = r["t"], r["p"], r["s"]
    tau_final = float(r["tau"][0, -1])
    fp = fixed_points(prm["eta"], tau_final, prm["sigma2"])
    residual = max(float(np.abs(s[j] - parabola(t, p[j], p[j, 0], s[j, 0], prm["alpha_p"], prm["eta"])).max())
                   for j in range(p.shape[0]))
    collapsed = [bool(abs(p[j, -1]) < prm["collapse_tol"] or s[j, -1] < prm["collapse_tol"]) for j in range(p.shape[0])]
    fig, (phase, time_ax) = panels(2)
    grid = np.linspace(0, max(1.3 * float(np.abs(p).max()), 1e-3), 200)
    phase.plot(grid, grid ** 2 / prm["alpha_p"], "k--", lw=1, label="invariant parabola s = p²/α_p")
    for j in range(p.shape[0]):
        phase.plot(p[j], s[j], lw=1.3, label=f"p0={p[j, 0]:.3g}, s0={s[j, 0]:.3g}")
        phase.plot(p[j, 0], s[j, 0], "o", color=phase.lines[-1].get_color(), ms=4)
        time_ax.plot(t, p[j], color=phase.lines[-1].get_color(), lw=1.3)
    if fp is not None:
        for v, name in zip(fp, ("p*−", "p*+")):
            phase.axvline(v, color="gray", ls=":", lw=1)
            time_ax.axhline(v, color="gray", ls=":", lw=1, label=f"{name} = {v:.4f}")
    phase.set(xlabel="p_j (predictor eigenvalue)", ylabel="s_j (eigenvalue of F)", title="per-mode trajectories")
    time_ax.set(xlabel="t", ylabel="p_j(t)", title=f"η={prm['eta']}, α_p={prm['alpha_p']}, σ²={prm['sigma2']}")
    phase.legend(fontsize=7)
    time_ax.legend(fontsize=7)
    return {
        "final_p": p[:, -1].tolist(), "final_s": s[:, -1].tolist(), "final_tau": tau_final, "collapsed": collapsed,
        "p_minus": None if fp is None else fp[0], "p_plus": None if fp is None else fp[1],
        "collapse_threshold_eta": collapse_threshold(tau_final, prm["sigma2"]), "parabola_max_residual": residual,
        "figures": [save(fig, out, "tian_modes.png")],
    }


# ---------------------------------------------------------------------------------------------------- tian-linear
LINEAR_DEFAULTS = {"n": 6, "augmentation": "additive", "isotropic": True, "sigma": 0.5, "keep": 0.8, "alpha_p": 1.0,
                   "eta": 0.01, "beta": 0.5, "target": "ema", "symmetric": False, "lr": 0.02, "steps": 5000,
                   "batch": 512, "init_scale": 0.5, "seed": 0}


def data_model(prm: dict) -> AugmentedGaussian:
    n = prm["n"]
    cov = np.eye(n) if prm["isotropic"] else np.diag(np.linspace(2.0, 0.25, n))
    return AugmentedGaussian(cov, prm["augmentation"], sigma=prm["sigma"], keep=prm["keep"])


def initial_weights(n: int, scale: float, seed: int, symmetric: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w0 = rng.normal(size=(n, n)) * scale / np.sqrt(n)
    wp0 = rng.normal(size=(n, n)) * scale / np.sqrt(n)
    return w0, ((wp0 + wp0.T) / 2 if symmetric else wp0)


def run_linear(prm: dict, out: Path) -> dict:
    """The matrix flow (Eqns 2-4) integrated, and SGD on a linear network on sampled data, side by side."""
    data = data_model(prm)
    x, xp = data.statistics()
    fp = FlowParams(prm["alpha_p"], prm["eta"], prm["beta"], prm["target"], prm["symmetric"])
    w0, wp0 = initial_weights(prm["n"], prm["init_scale"], prm["seed"], prm["symmetric"])
    t_end = prm["lr"] * prm["steps"]
    flow = integrate_flow(w0, wp0, x, xp, fp, t_end, points=201)
    sgd = train_linear(data, w0, wp0, fp, prm["lr"], prm["steps"], prm["batch"], record_every=max(1, prm["steps"] // 100),
                       seed=prm["seed"])

    def stats(run: dict) -> dict[str, np.ndarray]:
        f = np.einsum("tij,jk,tlk->til", run["W"], x, run["W"])  # F = W X Wᵀ
        return {"F": np.linalg.eigvalsh(f), "Wp": np.linalg.eigvals(run["Wp"]).real,
                "comm": np.array([commutator(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-300)
                                  for a, b in zip(f, run["Wp"])]),
                "balance": np.array([balance_residual(a, b, w0, wp0, t, prm["alpha_p"], prm["eta"])
                                     for a, b, t in zip(run["W"], run["Wp"], run["t"])]),
                "norm": np.linalg.norm(run["W"], axis=(1, 2))}

    fs, ss = stats(flow), stats(sgd)
    fig, axes = panels(4, width=4.2)
    for j in range(prm["n"]):
        axes[0].plot(flow["t"], fs["F"][:, j], color=f"C{j}", lw=1.2)
        axes[0].plot(sgd["t"], ss["F"][:, j], ".", color=f"C{j}", ms=3)
        axes[1].plot(flow["t"], np.sort(fs["Wp"], 1)[:, j], color=f"C{j}", lw=1.2)
        axes[1].plot(sgd["t"], np.sort(ss["Wp"], 1)[:, j], ".", color=f"C{j}", ms=3)
    axes[0].set(title="eigenvalues of F = W X Wᵀ (line: flow, dots: SGD)", xlabel="t")
    axes[1].set(title="eigenvalues of Wp (real part)", xlabel="t")
    axes[2].semilogy(flow["t"], fs["comm"] + 1e-18, label="flow")
    axes[2].semilogy(sgd["t"], ss["comm"] + 1e-18, ".", label="SGD")
    axes[2].set(title="relative ‖[F, Wp]‖ (Theorem 3)", xlabel="t")
    axes[2].legend(fontsize=8)
    axes[3].semilogy(flow["t"], fs["balance"] + 1e-18, label="flow")
    axes[3].semilogy(sgd["t"], ss["balance"] + 1e-18, ".", label="SGD")
    axes[3].set(title="‖WWᵀ − WpᵀWp/α_p − e^{−2ηt}C‖ (Theorem 1)", xlabel="t")
    axes[3].legend(fontsize=8)
    # flow vs SGD at the SGD's recorded times
    flow_at = {k: np.stack([np.interp(sgd["t"], flow["t"], fs[k][:, j]) for j in range(prm["n"])], 1) for k in ("F",)}
    scale = max(float(np.abs(fs["F"]).max()), 1e-12)
    result = {
        "t_end": t_end, "final_F_eigenvalues_flow": fs["F"][-1].tolist(), "final_F_eigenvalues_sgd": ss["F"][-1].tolist(),
        "final_Wp_eigenvalues_flow": np.sort(fs["Wp"][-1]).tolist(), "final_Wp_eigenvalues_sgd": np.sort(ss["Wp"][-1]).tolist(),
        "max_F_gap_flow_vs_sgd": float(np.abs(flow_at["F"] - ss["F"]).max() / scale),
        "initial_commutator": float(fs["comm"][0]),
        "final_commutator_flow": float(fs["comm"][-1]), "final_commutator_sgd": float(ss["comm"][-1]),
        "max_balance_residual_flow": float(fs["balance"].max()), "final_W_norm_flow": float(fs["norm"][-1]),
        "initial_W_norm": float(fs["norm"][0]), "figures": [save(fig, out, "tian_linear.png")],
    }
    if prm["isotropic"] and prm["target"] != "none":
        f_end = flow["W"][-1] @ x @ flow["W"][-1].T
        tau = 1.0  # at a steady state Wa = W
        target_wp = wp_fixed_point(f_end, tau, prm["sigma"] ** 2 if prm["augmentation"] == "additive" else 0.0,
                                   prm["eta"], prm["alpha_p"])
        result["wp_fixed_point_gap_at_t_end"] = float(np.linalg.norm((flow["Wp"][-1] + flow["Wp"][-1].T) / 2 - target_wp))
    return result


# ---------------------------------------------------------------------------------------------------- tian-phase
PHASE_DEFAULTS = {"eta": [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3], "alpha_p": [0.1, 0.2, 0.5, 1.0, 2.0, 5.0],
                  "sigma2": 0.2, "p0": 0.05, "s0": 0.5, "t_end": 60.0, "n": 4, "lr": 0.02, "batch": 256, "seed": 0,
                  "collapse_tol": 1e-2, "sgd": True, "resolution": [61, 41]}


def run_phase(prm: dict, out: Path) -> dict:
    """Collapse vs not over (η, α_p) for SimSiam (τ = 1): the per-mode ODE on a fine grid and linear-network
    SGD (n modes, all starting at (p0, s0), additive isotropic augmentation σ²) on the listed grid."""
    etas, alphas = [float(v) for v in prm["eta"]], [float(v) for v in prm["alpha_p"]]
    fine_eta = np.linspace(min(etas), max(etas), int(prm["resolution"][0]))
    fine_alpha = np.geomspace(min(alphas), max(alphas), int(prm["resolution"][1]))
    ode = np.zeros((fine_alpha.size, fine_eta.size))
    for i, a in enumerate(fine_alpha):
        for j, e in enumerate(fine_eta):
            r = integrate_modes(prm["p0"], prm["s0"], ModeParams(a, e, prm["sigma2"], None), prm["t_end"], points=2,
                                method="LSODA", rtol=1e-7, atol=1e-10)
            ode[i, j] = r["s"][0, -1]
    ode_collapsed = ode < prm["collapse_tol"] * prm["s0"]

    def ode_at(a: float, e: float) -> bool:
        r = integrate_modes(prm["p0"], prm["s0"], ModeParams(a, e, prm["sigma2"], None), prm["t_end"], points=2,
                            method="LSODA", rtol=1e-7, atol=1e-10)
        return bool(r["s"][0, -1] < prm["collapse_tol"] * prm["s0"])

    cells = [(a, e) for a in alphas for e in etas]
    result: dict = {"grid": [{"alpha_p": a, "eta": e, "ode_collapsed": ode_at(a, e)} for a, e in cells],
                    "collapse_threshold_eta": collapse_threshold(1.0, prm["sigma2"])}
    fig, (ax,) = panels(1, width=6.5, height=4.6)
    mesh = ax.pcolormesh(fine_eta, fine_alpha, ode_collapsed.astype(float), cmap="RdBu_r", shading="nearest", vmin=0, vmax=1,
                         alpha=0.55)
    ax.axvline(result["collapse_threshold_eta"], color="k", ls="--", lw=1, label="η = τ²/(4(1+σ²))")
    if prm["sgd"]:
        n = prm["n"]
        data = AugmentedGaussian(np.eye(n), "additive", sigma=float(np.sqrt(prm["sigma2"])))
        w0, wp0 = np.sqrt(prm["s0"]) * np.eye(n), prm["p0"] * np.eye(n)
        steps = int(round(prm["t_end"] / prm["lr"]))
        run = train_linear(data, w0, wp0, [FlowParams(a, e, 0.0, "simsiam") for a, e in cells], prm["lr"], steps,
                           prm["batch"], record_every=steps, seed=prm["seed"])
        for cell, w_end in zip(result["grid"], run["W"][:, -1]):
            s_end = np.linalg.eigvalsh(w_end @ w_end.T)
            cell["sgd_surviving_modes"] = int((s_end > prm["collapse_tol"] * prm["s0"]).sum())
            cell["sgd_collapsed"] = cell["sgd_surviving_modes"] == 0
        agree = [c["sgd_collapsed"] == c["ode_collapsed"] for c in result["grid"]]
        result["sgd_ode_agreement"] = sum(agree) / len(agree)
        for marker, flag, label in (("x", True, "SGD: collapsed"), ("o", False, "SGD: not collapsed")):
            pts = [(c["eta"], c["alpha_p"]) for c in result["grid"] if c["sgd_collapsed"] is flag]
            if pts:
                ax.scatter(*zip(*pts), marker=marker, color="k", s=40, facecolors="none" if marker == "o" else None,
                           label=label)
    ax.set(xscale="linear", yscale="log", xlabel="weight decay η", ylabel="predictor rate α_p",
           title=f"SimSiam modes from p0={prm['p0']}, s0={prm['s0']}, σ²={prm['sigma2']} (red: ODE collapses)")
    fig.colorbar(mesh, ax=ax, label="per-mode ODE: collapsed")
    ax.legend(fontsize=8, loc="upper right")
    result["figures"] = [save(fig, out, "tian_phase.png")]
    return result
