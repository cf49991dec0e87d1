"""Theory lab: the closed forms of Tian et al., DirectSet's threshold, duality and the center toy -- each check able to fail."""

import json
import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from sslab.cli import main
from sslab.theory import run_experiment
from sslab.theory.directset import steady_energy, variance_threshold
from sslab.theory.duality import check
from sslab.theory.linear_net import AugmentedGaussian
from sslab.theory.tian import (
    FlowParams,
    ModeParams,
    balance_residual,
    collapse_threshold,
    commutator,
    fixed_points,
    integrate_flow,
    integrate_modes,
    mode_rhs,
    parabola,
    wp_fixed_point,
)


def test_fixed_points_hand_values():
    pm, pp = fixed_points(0.04, tau=1.0, sigma2=0.0)
    assert pm == pytest.approx((1 - math.sqrt(0.84)) / 2) and pp == pytest.approx((1 + math.sqrt(0.84)) / 2)
    assert fixed_points(0.0, tau=1.0, sigma2=0.25) == pytest.approx((0.0, 0.8))  # η = 0: 0 and τ/(1+σ²)
    assert collapse_threshold(1.0, 0.25) == pytest.approx(0.2)
    assert fixed_points(0.2001, 1.0, 0.25) is None and fixed_points(0.1999, 1.0, 0.25) is not None


def test_modes_converge_to_p_plus_or_collapse_from_below_p_minus():
    eta, sigma2 = 0.05, 0.2
    pm, pp = fixed_points(eta, 1.0, sigma2)
    p0 = np.array([0.9 * pm, 1.1 * pm, 0.5, 1.5])
    r = integrate_modes(p0, p0 ** 2, ModeParams(1.0, eta, sigma2), t_end=3000)  # on the invariant parabola
    p_end = r["p"][:, -1]
    assert abs(p_end[0]) < 1e-6  # below p*−: collapses
    assert np.all(np.abs(p_end[1:] - pp) < 1e-3)  # above: the stable fixed point p*+ within 1e-3
    # beyond the threshold η > τ²/(4(1+σ²)) every mode collapses, however large it starts
    r = integrate_modes([0.5, 2.0], [1.0, 4.0], ModeParams(1.0, 1.05 * collapse_threshold(1.0, sigma2), sigma2), t_end=3000)
    assert np.all(np.abs(r["p"][:, -1]) < 1e-3) and np.all(r["s"][:, -1] < 1e-3)


@pytest.mark.parametrize("beta", [None, 0.4])
def test_eqn14_integral_holds_and_a_wrong_sign_breaks_it(beta):
    prm = ModeParams(alpha_p=0.5, eta=0.03, sigma2=0.1, beta=beta)
    p0, s0 = np.array([0.05, 0.3, 0.8]), np.array([0.4, 0.1, 1.0])
    r = integrate_modes(p0, s0, prm, t_end=200, tau0=0.0 if beta else 1.0)
    res = max(np.abs(r["s"][j] - parabola(r["t"], r["p"][j], p0[j], s0[j], 0.5, 0.03)).max() for j in range(3))
    assert res < 1e-7
    # the same check on a flow with the weight-decay sign flipped in ṗ fails
    def wrong(_, y):
        d = mode_rhs(y, prm)
        k = y.size // 3
        d[:k] += 2 * prm.eta * y[:k]
        return d

    y0 = np.concatenate([p0, s0, np.full(3, 0.0 if beta else 1.0)])
    sol = solve_ivp(wrong, (0, 50), y0, t_eval=r["t"][r["t"] <= 50], rtol=1e-9, atol=1e-12)
    bad = max(np.abs(sol.y[3 + j] - parabola(sol.t, sol.y[j], p0[j], s0[j], 0.5, 0.03)).max() for j in range(3))
    assert bad > 1e-2


def _iso(n, sigma2):
    return np.eye(n), sigma2 * np.eye(n)


def test_balancing_theorem_1_holds_with_stop_gradient_not_without():
    rng = np.random.default_rng(0)
    w0, wp0 = rng.normal(size=(4, 5)) * 0.4, rng.normal(size=(4, 4)) * 0.4
    x = np.diag([1.5, 1.0, 0.7, 0.5, 0.3])
    xp = 0.2 * np.eye(5)
    for prm in (FlowParams(alpha_p=2.0, eta=0.05, beta=0.3, target="ema"), FlowParams(alpha_p=0.5, eta=0.02, target="simsiam")):
        fl = integrate_flow(w0, wp0, x, xp, prm, t_end=30, points=31)
        worst = max(balance_residual(w, wp, w0, wp0, t, prm.alpha_p, prm.eta) for w, wp, t in zip(fl["W"], fl["Wp"], fl["t"]))
        assert worst < 1e-6
    fl = integrate_flow(w0, wp0, x, xp, FlowParams(alpha_p=2.0, eta=0.05, target="none"), t_end=30, points=31)
    assert max(balance_residual(w, wp, w0, wp0, t, 2.0, 0.05) for w, wp, t in zip(fl["W"], fl["Wp"], fl["t"])) > 1e-2


def test_without_stop_gradient_w_goes_to_zero_theorem_2():
    rng = np.random.default_rng(1)
    w0, wp0 = rng.normal(size=(4, 4)) * 0.8, np.eye(4) + 0.3 * rng.normal(size=(4, 4))
    x, xp = _iso(4, 0.3)
    none = integrate_flow(w0, wp0, x, xp, FlowParams(alpha_p=1.0, eta=0.01, target="none"), t_end=300, points=3)
    kept = integrate_flow(w0, wp0, x, xp, FlowParams(alpha_p=1.0, eta=0.01, target="simsiam"), t_end=300, points=3)
    assert np.linalg.norm(none["W"][-1]) < 1e-3 * np.linalg.norm(w0)
    assert np.linalg.norm(kept["W"][-1]) > 0.3 * np.linalg.norm(w0)


def test_eigenspace_alignment_theorem_3_and_appendix_b_fixed_point():
    rng = np.random.default_rng(2)
    n, sigma2, eta, alpha_p = 4, 0.2, 0.01, 1.0
    w0 = rng.normal(size=(n, n)) * 0.6
    a = rng.normal(size=(n, n)) * 0.4
    wp0 = (a + a.T) / 2
    x, xp = _iso(n, sigma2)
    fl = integrate_flow(w0, wp0, x, xp, FlowParams(alpha_p, eta, target="simsiam", symmetric=True), t_end=400, points=401)
    rel = [commutator(w @ w.T, wp) / (np.linalg.norm(w @ w.T) * np.linalg.norm(wp)) for w, wp in zip(fl["W"], fl["Wp"])]
    assert rel[0] > 0.05 and rel[-1] < 1e-8
    f_end, wp_end = fl["W"][-1] @ fl["W"][-1].T, fl["Wp"][-1]
    assert np.linalg.norm(wp_end - wp_fixed_point(f_end, 1.0, sigma2, eta, alpha_p)) < 1e-6  # App. B
    surviving = np.linalg.eigvalsh(wp_end)
    surviving = surviving[surviving > 0.1]
    assert surviving.size > 0 and np.all(np.abs(surviving - fixed_points(eta, 1.0, sigma2)[1]) < 1e-3)


@pytest.mark.parametrize("augmentation,isotropic", [("additive", True), ("multiplicative", False)])
def test_sgd_on_a_linear_network_follows_the_matrix_flow(augmentation, isotropic, tmp_path):
    rec = run_experiment("tian-linear", [f"augmentation={augmentation}", f"isotropic={str(isotropic).lower()}", "n=4",
                                         "steps=1500", "lr=0.02", "batch=1024"], tmp_path)
    r = rec["result"]
    assert r["max_F_gap_flow_vs_sgd"] < 0.05  # relative to the largest eigenvalue of F
    assert r["max_balance_residual_flow"] < 1e-6
    assert (tmp_path / "tian_linear.png").is_file() and (tmp_path / "tian-linear.json").is_file()


def test_augmented_gaussian_statistics_match_samples():
    g = torch.Generator().manual_seed(0)
    for aug in ("additive", "multiplicative"):
        data = AugmentedGaussian(np.diag([2.0, 1.0, 0.5]), aug, sigma=0.7, keep=0.6)
        x1, x2 = data.sample(400000, g)
        big_x, big_xp = data.statistics()
        assert np.allclose((x1.T @ x2 / len(x1)).numpy(), big_x, atol=0.03)  # E[x1 x2ᵀ] = X
        assert np.allclose((x1.T @ x1 / len(x1)).numpy(), big_x + big_xp, atol=0.05)  # E[x1 x1ᵀ] = X + X'


def test_phase_diagram_ode_and_sgd_agree(tmp_path):
    rec = run_experiment("tian-phase", ["eta=[0.0,0.12,0.3]", "alpha_p=[0.2,2.0]", "t_end=40", "resolution=[7,5]"], tmp_path)
    r = rec["result"]
    assert r["sgd_ode_agreement"] >= 5 / 6
    beyond = [c for c in r["grid"] if c["eta"] > r["collapse_threshold_eta"]]
    assert beyond and all(c["ode_collapsed"] and c["sgd_collapsed"] for c in beyond)
    assert any(not c["ode_collapsed"] for c in r["grid"])


def test_directset_weight_decay_threshold_and_few_label_gain(tmp_path):
    assert variance_threshold(0.1) == pytest.approx(1.5)
    energy = steady_energy(np.array([0.0, 1.0, 1.6]), eta=0.1, alpha=0.5)
    p_plus = (1 + math.sqrt(1 - 0.4)) / 2
    assert energy[0] == pytest.approx(p_plus ** 2) and energy[1] > 0 and energy[2] == 0
    rec = run_experiment("directset", ["eta=[0.06,0.16]", "probe_eta=0.1", "steps=2500", "trials=20", "labels=[4,16]"],
                         tmp_path)
    r = rec["result"]
    assert r["kept_agreement"] >= 0.9  # SGD keeps exactly the features the threshold 1/(4η) − 1 keeps (up to slow edges)
    for row in r["rows"]:
        sgd, theory = np.array(row["energy_sgd"]), np.array(row["energy_theory"])
        clear = theory > 0.05 * theory.max()
        assert np.allclose(sgd[clear], theory[clear], rtol=0.15)
        assert np.all(sgd[np.array(r["aug_var"]) > row["variance_threshold"] + 0.3] < 1e-3 * sgd.max())
    acc = r["probe_accuracy"]
    assert acc["learned projection W x"][0] > acc["raw input"][0] + 0.1  # 4 labels: the projection helps


def test_duality_theorem_and_corollary_on_any_matrix(tmp_path):
    z = torch.randn(50, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.3
    r = check(z)
    assert r["theorem_3_3"]["relative_residual"] < 1e-12
    assert r["normalised_embeddings"]["holds"] and r["normalised_dimensions"]["holds"]
    np.save(tmp_path / "z.npy", z.numpy())
    rec = run_experiment("duality", [f"embeddings={tmp_path / 'z.npy'}"], tmp_path / "out")
    assert rec["result"]["theorem_3_3"]["l_c"] == pytest.approx(r["theorem_3_3"]["l_c"])
    assert (tmp_path / "out" / "duality.png").is_file()


def test_center_toy_alignment_collapses_center_penalty_does_not(tmp_path):
    rec = run_experiment("center-toy", ["steps=300"], tmp_path)
    r = rec["result"]
    assert r["alignment"]["final_center_norm"] > 0.95
    assert r["center"]["final_center_norm"] < 0.3 and r["center"]["final_aug_mean_norm"] > 0.8


def test_theory_cli_list_run_and_errors(tmp_path, capsys):
    assert main(["theory", "list"]) == 0
    listed = capsys.readouterr().out
    for name in ("tian-modes", "tian-linear", "tian-phase", "directset", "duality", "center-toy"):
        assert name in listed
    assert main(["theory", "tian-modes", "eta=0.05", "sigma2=0.2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    pm, pp = fixed_points(0.05, 1.0, 0.2)
    assert f"p_minus: {pm:.6g}" in out and f"p_plus: {pp:.6g}" in out
    data = json.loads((tmp_path / "tian-modes.json").read_text())
    assert data["result"]["p_plus"] == pytest.approx(pp) and (tmp_path / "tian_modes.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["theory", "tian-modes", "gamma=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "gamma" in err and "eta" in err
    assert main(["theory", "nope"]) == 2
    assert "tian-modes" in capsys.readouterr().err
