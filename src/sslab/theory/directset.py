"""DirectSet(α) in a linear network (Wang, Chen, Du, Tian 2021): which features survive, and what it buys downstream.

The paper's data model and exact DirectSet(α) normalisation are NOT FOUND (spec §B.3). Our model,
chosen to be the simplest one in which its abstract's claims can be stated and checked:

* inputs x ~ N(0, I_d) whose d coordinates are the features; a view adds feature-wise noise,
  x' = x + diag(σ_k) n, so feature k has augmentation variance σ_k² (X = I, X' = diag(σ_k²));
* online f = W x (W: n × d), target StopGrad(W x2) (SimSiam), loss ½‖Wp f1 − StopGrad(f2)‖²,
  weight decay η on W;
* the predictor is set, not learned: Wp = F̂^α + εI, F̂ the ρ-EMA of E[f fᵀ] (DirectPred's
  accumulator; α = ½ is DirectPred's square root, α = 1 DirectCopy's copy). We keep F̂'s scale:
  with F̂/‖F̂‖ the top mode's p = 1 + ε exceeds 1/(1 + σ²) and, in this un-normalised loss, every
  mode would decay -- the normalised version belongs to the normalised (cosine) loss.

Closed form. When W's columns align with the features, feature k's energy s_k = ‖W e_k‖²
follows ṡ_k = 2 s_k [p_k(1 − p_k(1 + σ_k²)) − η] with p_k = (s_k(1 + σ_k²))^α + ε, so a feature
survives iff p(1 − p(1 + σ_k²)) = η has a root, i.e. σ_k² ≤ 1/(4η) − 1: **weight decay is a
threshold on the augmentation variance** -- low-variance features are kept, high-variance ones
discarded. The surviving energy is s_k* = (p*₊ − ε)^{1/α} / (1 + σ_k²), p*₊ = [1 + √(1 − 4η(1+σ_k²))]/(2(1+σ_k²)).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..figures import panels, save

DEFAULTS = {"d": 24, "n": 24, "aug_var_max": 6.0, "eta": [0.03, 0.06, 0.1, 0.16], "alpha": 0.5, "eps": 0.0,
            "rho": 0.9, "lr": 0.05, "steps": 4000, "batch": 256, "init_scale": 0.5, "init": "orthogonal", "seed": 0,
            "label_features": 3, "labels": [4, 8, 16, 32, 64, 128], "trials": 40, "probe_eta": 0.1, "ridge": 0.1}


def variance_threshold(eta: float) -> float:
    """Largest augmentation variance a feature can have and survive weight decay η: 1/(4η) − 1."""
    return float("inf") if eta <= 0 else 1 / (4 * eta) - 1


def steady_energy(aug_var: np.ndarray, eta: float, alpha: float, eps: float = 0.0) -> np.ndarray:
    """s_k* per feature (0 for discarded features) -- the closed form in the module docstring."""
    a = 1 + np.asarray(aug_var, float)
    disc = 1 - 4 * eta * a
    p_plus = (1 + np.sqrt(np.clip(disc, 0, None))) / (2 * a)
    energy = np.clip(p_plus - eps, 0, None) ** (1 / alpha) / a
    return np.where(disc >= 0, energy, 0.0)


def directset_predictor(f: torch.Tensor, alpha: float, eps: float) -> torch.Tensor:
    """Wp = F̂^α + εI for each cell's symmetric PSD F̂ (negative eigenvalues from rounding clamped to 0)."""
    lam, u = torch.linalg.eigh(f)
    return (u * lam.clamp(min=0).pow(alpha).unsqueeze(-2)) @ u.transpose(-1, -2) + eps * torch.eye(f.shape[-1], dtype=f.dtype)


def train_directset(aug_var: np.ndarray, etas: list[float], n: int, alpha: float, eps: float, rho: float, lr: float,
                    steps: int, batch: int, init_scale: float, seed: int, init: str = "orthogonal") -> np.ndarray:
    """SGD (autograd) on W for every η at once (shared data and initialisation); returns W per η, (len(etas), n, d)."""
    d = len(aug_var)
    g = torch.Generator().manual_seed(seed)
    if init == "orthogonal":  # orthogonal columns of norm init_scale: the aligned start of the closed form
        if n < d:
            raise ValueError(f"init=orthogonal needs n >= d (got n={n}, d={d})")
        w0 = torch.linalg.qr(torch.randn(n, d, generator=g, dtype=torch.float64))[0] * init_scale
    elif init == "random":
        w0 = torch.randn(n, d, generator=g, dtype=torch.float64) * init_scale / np.sqrt(d)
    else:
        raise ValueError(f"unknown init '{init}'; choose orthogonal or random")
    w = w0.expand(len(etas), n, d).clone().requires_grad_(True)
    eta = torch.tensor(etas, dtype=torch.float64).view(-1, 1, 1)
    noise = torch.sqrt(torch.as_tensor(aug_var, dtype=torch.float64))
    corr = None
    for _ in range(steps):
        x = torch.randn(batch, d, generator=g, dtype=torch.float64)
        x1 = x + noise * torch.randn(batch, d, generator=g, dtype=torch.float64)
        x2 = x + noise * torch.randn(batch, d, generator=g, dtype=torch.float64)
        f1 = x1 @ w.transpose(1, 2)
        with torch.no_grad():
            batch_corr = f1.transpose(1, 2) @ f1 / batch
            corr = batch_corr if corr is None else rho * corr + (1 - rho) * batch_corr
            wp = directset_predictor(corr, alpha, eps)
        target = (x2 @ w.transpose(1, 2)).detach()
        loss = 0.5 * (f1 @ wp.transpose(1, 2) - target).pow(2).sum(2).mean(1).sum()
        (grad,) = torch.autograd.grad(loss, (w,))
        with torch.no_grad():
            w -= lr * (grad + eta * w)
    return w.detach().numpy()


def probe_accuracy(features_of, label_dirs: np.ndarray, n_labels: int, trials: int, seed: int, ridge: float = 0.1,
                   test: int = 2000) -> float:
    """Mean test accuracy of a ridge-regression linear classifier (penalty ``ridge``, intercept free) trained on
    ``n_labels`` clean samples, labels sign(aᵀx) with a random a in the span of ``label_dirs``. The penalty
    matters: an invertible W leaves unregularised least squares unchanged, while with a penalty the
    directions W has shrunk (the discarded features) cost more to use -- the mechanism of the gain."""
    rng = np.random.default_rng(seed)
    d = label_dirs.shape[0]
    accs = []
    for _ in range(trials):
        a = label_dirs @ rng.normal(size=label_dirs.shape[1])
        x_tr, x_te = rng.normal(size=(n_labels, d)), rng.normal(size=(test, d))
        y_tr, y_te = np.sign(x_tr @ a), np.sign(x_te @ a)
        phi_tr, phi_te = features_of(x_tr), features_of(x_te)
        mean, y_mean = phi_tr.mean(0), y_tr.mean()
        a_tr = phi_tr - mean
        coef = np.linalg.solve(a_tr.T @ a_tr + ridge * np.eye(a_tr.shape[1]), a_tr.T @ (y_tr - y_mean))
        accs.append(float((np.sign((phi_te - mean) @ coef + y_mean) == y_te).mean()))
    return float(np.mean(accs))


def run_directset(prm: dict, out: Path) -> dict:
    """Train DirectSet(α) for each η; per-feature energy vs the closed form; probe accuracy with few labels."""
    aug_var = np.linspace(0.0, prm["aug_var_max"], prm["d"])
    etas = [float(e) for e in prm["eta"]]
    if prm["probe_eta"] not in etas:
        etas.append(float(prm["probe_eta"]))
    ws = train_directset(aug_var, etas, prm["n"], prm["alpha"], prm["eps"], prm["rho"], prm["lr"], prm["steps"],
                         prm["batch"], prm["init_scale"], prm["seed"], prm["init"])
    energy = (ws ** 2).sum(1)  # ‖W e_k‖² per feature, (len(etas), d)
    fig, (feat, probe) = panels(2, width=5.2)
    rows = []
    for i, eta in enumerate(etas):
        theory = steady_energy(aug_var, eta, prm["alpha"], prm["eps"])
        kept_sgd = energy[i] > 1e-3 * max(energy[i].max(), 1e-12)  # discarded features decay to 0
        rows.append({"eta": eta, "variance_threshold": variance_threshold(eta), "energy_sgd": energy[i].tolist(),
                     "energy_theory": theory.tolist(), "kept_sgd": kept_sgd.tolist(), "kept_theory": (theory > 0).tolist()})
        feat.plot(aug_var, energy[i], "o", color=f"C{i}", ms=4, label=f"η={eta}: SGD")
        feat.plot(aug_var, theory, "-", color=f"C{i}", lw=1)
        if np.isfinite(variance_threshold(eta)) and variance_threshold(eta) <= prm["aug_var_max"]:
            feat.axvline(variance_threshold(eta), color=f"C{i}", ls=":", lw=1)
    feat.set(xlabel="augmentation variance σ_k² of feature k", ylabel="‖W e_k‖² after training",
             title=f"DirectSet(α={prm['alpha']}): dots SGD, lines closed form, dotted 1/(4η) − 1")
    feat.legend(fontsize=7)
    # downstream: labels depend on the lowest-variance features only
    w_probe = ws[etas.index(float(prm["probe_eta"]))]
    dirs = np.eye(prm["d"])[:, : prm["label_features"]]
    curves = {"raw input": lambda x: x, "learned projection W x": lambda x: x @ w_probe.T}
    accuracy = {name: [probe_accuracy(fn, dirs, n, prm["trials"], prm["seed"], prm["ridge"]) for n in prm["labels"]]
                for name, fn in curves.items()}
    for name, accs in accuracy.items():
        probe.plot(prm["labels"], accs, "o-", label=name)
    probe.set(xscale="log", xlabel="labelled samples", ylabel="test accuracy",
              title=f"few-label probe (labels: {prm['label_features']} lowest-variance features, η={prm['probe_eta']})")
    probe.legend(fontsize=8)
    agree = [k1 == k2 for r in rows for k1, k2 in zip(r["kept_sgd"], r["kept_theory"])]
    return {"aug_var": aug_var.tolist(), "rows": rows, "kept_agreement": sum(agree) / len(agree),
            "labels": prm["labels"], "probe_accuracy": accuracy, "figures": [save(fig, out, "directset.png")]}
