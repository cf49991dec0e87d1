"""The claims study's arms: every run it trains (the predictions about them live in ``predictions.yaml``).

Every arm is a method's ``shifted_mnist`` recipe (``<method>_mnist5k@shifted_mnist``) with the
study's shared settings (:data:`SETTINGS`), its block's length and optimiser, and the options the
arm changes. The blocks:

* ``recipe24`` -- the BYOL / SimSiam / center-penalty recipes, 24 epochs (the benchmark's length:
  at the old study's 8 epochs the BYOL reference scored level with its random encoder, 0.655 vs
  0.652, so nothing compared against it could be read);
* ``recipe8`` -- the recipes that pass their positive control at 8 epochs (the old study's runs are
  the pilot: SimCLR 0.79, VICReg 0.82, Barlow Twins 0.79, SwAV 0.73, DirectPred 0.74, DirectCopy
  0.73 against a random encoder's 0.65, every seed);
* ``tian`` -- Tian et al.'s own optimisation (luckmatters ``byol_config.yaml``; seeds_spec.md §A.3):
  SGD lr 0.03, momentum 0.9, weight decay η̄ = 4e-4 on every parameter, no schedule, constant EMA
  0.996, α_p = 1, the BYOL loss scale, a bias-free linear predictor on an affine-free BN projector;
* ``tuning`` -- one seed per grid value on a held-out part of the training split (``holdout``),
  never the test split; the tuned arms (``tune``) take the grid value with the best held-out kNN.

Each arm also measures its own same-seed random encoder and raw pixels (``eval.baselines``): the
positive controls and the "below the random encoder" half of a dimensional collapse read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: shared by every training arm: kNN only at the end (no linear probe, no online probe), the probe-set
#: diagnostics every 40 steps (the traces), the arm's own random encoder and raw pixels
SETTINGS = ("eval.linear=false", "eval.online_probe=false", "eval.knn_every=0", "eval.baselines=true",
            "diagnostics.every=40")
#: --quick: one seed of the quick arms, 1 epoch, 2 held-out tuning values (what the tests run; a later key wins)
QUICK_SETTINGS = (*SETTINGS, "diagnostics.every=10", "diagnostics.probe_size=256")
QUICK_EPOCHS = 1
#: the images of shifted_mnist's 4,000-image training split held out for tuning (the kNN bank is the rest)
HOLDOUT = 1000

#: Tian et al.'s optimisation (module docstring); the target starts as a copy of the online network
#: (the recipe's; luckmatters starts it from an independent random draw -- the pilot of 2026-12-07,
#: docs/claims.md, measured both)
TIAN_SGD = {"optim.name": "sgd", "optim.lr": 0.03, "optim.momentum": 0.9, "optim.weight_decay": 4e-4,
            "optim.exclude_bias_norm": False, "optim.warmup_epochs": 0, "optim.final_lr_ratio": 1.0,
            "momentum": 0.996, "momentum_final": 0.996, "loss_scale": "byol", "pred_lr_ratio": 1.0}
#: a learned bias-free linear predictor on DirectPred's heads (128-d, affine-free BN)
LINEAR = {"predictor": "linear", "pred_bias": False, "bn_affine": False}
NO_EMA = {"momentum": 0.0, "momentum_final": 0.0}


@dataclass(frozen=True)
class Arm:
    """One setting of the study: ``method`` with ``set`` (config overrides, ``key: value``) for ``epochs``."""

    method: str
    set: dict[str, Any] = field(default_factory=dict)
    epochs: int = 24
    block: str = "recipe24"
    note: str = ""
    #: a tuned arm: ``{key: [values]}``, each value trained once on the held-out split, the best kNN kept
    tune: dict[str, list[Any]] = field(default_factory=dict)
    #: a timing arm (no training): the per-step cost of the closed-form predictor at ``set["proj_dim"]``
    timing: bool = False
    #: a theory arm (no training): this ``sslab theory`` experiment with ``set`` as its options, one run per seed
    theory: str = ""


def _momentum(m: float) -> dict[str, Any]:
    return {"momentum": m, "momentum_final": m}


def _tian(**extra: Any) -> dict[str, Any]:
    return {**TIAN_SGD, **extra}


def _r8(method: str, set_: dict[str, Any] | None = None, note: str = "", **kw: Any) -> Arm:
    return Arm(method, set_ or {}, epochs=8, block="recipe8", note=note, **kw)


def _t(method: str, set_: dict[str, Any], note: str) -> Arm:
    return Arm(method, set_, epochs=24, block="tian", note=note)


#: the temperature grid of SimCLR and of VICReg-exp, and VICReg's invariance = variance coefficient grid:
#: four values each, the same budget (spec §D.2: SimCLR-tuned 0.15; VICReg 25; VICReg-exp's τ NOT FOUND)
SIMCLR_TEMPERATURES = [0.07, 0.1, 0.15, 0.3]
VICREG_COEFFS = [10.0, 15.0, 25.0, 50.0]
VICREG_EXP_TEMPERATURES = [0.05, 0.1, 0.3, 1.0]
#: VICReg's 512-512-512 head on SimCLR (Garrido et al.'s "tuned" SimCLR uses VICReg's projector)
VICREG_HEAD = {"proj_hidden_dim": 512, "proj_dim": 512, "proj_layers": 3}

ARMS: dict[str, Arm] = {
    # ------------------------------------------------ recipe24: BYOL, SimSiam, the center penalty (24 epochs)
    "byol": Arm("byol", note="recipe: EMA 0.9 -> 1, MLP predictor at 10x lr, AdamW 2e-3 wd 1e-4"),
    "simsiam": Arm("simsiam", note="recipe"),
    "byol_no_predictor": Arm("byol", {"predictor": "none"}),
    "simsiam_no_predictor": Arm("simsiam", {"predictor": "none"}),
    "byol_no_stop_gradient": Arm("byol", {"stop_gradient": False, **_momentum(0.0)},
                                 note="the target is the online network itself, gradient through both branches"),
    "simsiam_no_stop_gradient": Arm("simsiam", {"stop_gradient": False}),
    "byol_m0": Arm("byol", _momentum(0.0), note="constant EMA 0 (target = online, stop-gradient kept)"),
    "byol_m0.99": Arm("byol", _momentum(0.99), note="constant EMA 0.99"),
    "center": Arm("center", note="alignment + ‖E z‖² penalty, weight 1"),
    # ------------------------------------------------ tian: Tian et al.'s optimiser (24 epochs)
    "tian_linear": _t("byol", _tian(**LINEAR), "regular Wp, EMA 0.996 (Table 3's reference cell)"),
    "tian_linear_no_ema": _t("byol", _tian(**LINEAR, **NO_EMA), "regular Wp, no EMA"),
    "tian_symmetric": _t("byol", _tian(**LINEAR, symmetric_predictor=True), "symmetric Wp, EMA 0.996"),
    "tian_symmetric_no_ema": _t("byol", _tian(**LINEAR, symmetric_predictor=True, **NO_EMA), "symmetric Wp, no EMA"),
    "tian_symmetric_no_ema_ap10": _t("byol", _tian(**LINEAR, symmetric_predictor=True, **NO_EMA, pred_lr_ratio=10.0),
                                     "symmetric Wp, no EMA, α_p = 10 (Fig. 6)"),
    "tian_symmetric_no_ema_pred_wd": _t("byol", _tian(**LINEAR, symmetric_predictor=True, **NO_EMA,
                                                      weight_decay_on="predictor"),
                                        "symmetric Wp, no EMA, weight decay on the predictor only (Table 5)"),
    "tian_wd0": _t("byol", _tian(**LINEAR, **{"optim.weight_decay": 0.0}), "regular Wp, EMA, no weight decay"),
    "tian_wd_high": _t("byol", _tian(**LINEAR, **{"optim.weight_decay": 0.01}),
                       "regular Wp, EMA, η̄ = 1e-2: above the linear theory's collapse threshold α τ²/4 = 7.5e-3"),
    "tian_directpred": _t("directpred", _tian(freq=1), "ρ 0.3, ε 0.1, freq 1"),
    "tian_directpred_freq5": _t("directpred", _tian(freq=5), "ρ 0.3, ε 0.1, freq 5 (SGD between resets)"),
    # Table 8's longer training: twice the block's length
    "tian_directpred_long": Arm("directpred", _tian(freq=1), epochs=48, block="tian", note="freq 1, 48 epochs"),
    "tian_directpred_freq5_long": Arm("directpred", _tian(freq=5), epochs=48, block="tian", note="freq 5, 48 epochs"),
    # ------------------------------------------------ recipe8: the recipes that pass their control at 8 epochs
    "simclr": _r8("simclr", note="recipe (512-128 head, temperature 0.2)"),
    "simclr_abs": _r8("simclr_abs", note="recipe: |cos| of the negatives (Garrido et al. SimCLR-abs)"),
    "vicreg": _r8("vicreg", note="recipe (512-512-512 head, 25/25/1)"),
    "vicreg_ctr": _r8("vicreg_ctr", note="recipe"),
    "vicreg_d16": _r8("vicreg", {"proj_dim": 16}, note="512-512-16 head"),
    "vicreg_ddd16": _r8("vicreg", {"proj_hidden_dim": 16, "proj_dim": 16}, note="16-16-16 head (d-d-d)"),
    "barlow_twins": _r8("barlow_twins", note="recipe (512-512-512 head, λ 0.0051)"),
    "barlow_twins_no_offdiag": _r8("barlow_twins", {"lambd": 0.0}, note="λ 0: the diagonal term alone"),
    "swav": _r8("swav", note="recipe"),
    "swav_fixed_prototypes": _r8("swav", {"fixed_prototypes": True}, note="prototypes never trained"),
    "dino": _r8("dino", note="recipe"),
    "dino_no_centering": _r8("dino", {"center_momentum": 1.0}, note="the teacher's center stays 0: no centring"),
    "directpred": _r8("directpred", note="recipe: ρ 0.3, ε 0.1, freq 1, spectral norm"),
    "directpred_eps0": _r8("directpred", {"eps": 0.0}),
    "directpred_rho05": _r8("directpred", {"rho": 0.5}),
    "directpred_rho05_eps0": _r8("directpred", {"rho": 0.5, "eps": 0.0}),
    "directcopy": _r8("directcopy", note="recipe: ρ 0.5, ε 0.3, Wp = F̂/‖F̂‖₂ + εI"),
    "directcopy_fro": _r8("directcopy", {"norm": "fro"}, note="Wp = F̂/‖F̂‖_F + εI: no eigen-solver"),
    # ------------------------------------------------ tuned on the held-out split (recipe8 length), then seeded
    "simclr_tuned": _r8("simclr", VICREG_HEAD, note="VICReg's 512-512-512 head, temperature tuned",
                        tune={"temperature": SIMCLR_TEMPERATURES}),
    "simclr_tuned_d16": _r8("simclr", {**VICREG_HEAD, "proj_dim": 16}, note="512-512-16 head, simclr_tuned's temperature",
                            tune={"temperature": "simclr_tuned"}),
    "vicreg_tuned": _r8("vicreg", {}, note="recipe head, invariance = variance coefficient tuned",
                        tune={"sim_coeff": VICREG_COEFFS, "std_coeff": "sim_coeff"}),
    "vicreg_exp_tuned": _r8("vicreg_exp", {}, note="recipe head, LogSumExp temperature tuned",
                            tune={"temperature": VICREG_EXP_TEMPERATURES}),
    # ------------------------------------------------ timing (no training): the closed-form predictor's cost
    **{f"cost_{name}_d{d}": Arm(method, {"proj_dim": d, **extra}, epochs=1, block="timing", timing=True,
                                note=f"ms per step at D = {d}: F̂ update + Wp reset")
       for d in (128, 512, 2048)
       for name, method, extra in (("directpred", "directpred", {}), ("directcopy", "directcopy", {}),
                                   ("directcopy_fro", "directcopy", {"norm": "fro"}))},
}

#: the linear-network claims through ``sslab theory`` (seeds draw the initial weights / modes / data); each takes
#: seconds. tian-modes draws its initial (p_j, s_j) from the seed (sslab.claims.runs.theory_options).
THEORY_ARMS = {
    "theory_tian_linear": Arm("theory", {}, epochs=1, block="theory", theory="tian-linear",
                              note="matrix flow (Eqns 2-4) and SGD, EMA, η 0.01, α_p 1, 6 dims"),
    "theory_tian_modes": Arm("theory", {"t_end": 400.0}, epochs=1, block="theory", theory="tian-modes",
                             note="per-mode ODE (Eqns 11-13), 6 modes from seeded (p0, s0), η 0.04"),
    "theory_tian_phase": Arm("theory", {"resolution": [13, 7]}, epochs=1, block="theory", theory="tian-phase",
                             note="collapse over η x α_p: per-mode ODE and linear SGD (SimSiam, σ² 0.2)"),
    "theory_directset": Arm("theory", {}, epochs=1, block="theory", theory="directset",
                            note="DirectSet(α = 0.5), 24 features, η 0.03-0.16, few-label probe"),
}
ARMS.update(THEORY_ARMS)

#: what ``--quick`` trains (one seed, 1 epoch each): enough arms for every kind of prediction
QUICK_ARMS = ("byol", "byol_no_predictor", "directpred", "directcopy_fro", "simclr_tuned", "cost_directpred_d128",
              "cost_directcopy_fro_d128", "theory_tian_linear")
QUICK_TUNE_VALUES = 2  # --quick tunes over the first two grid values only


def tuned_keys(arm: Arm) -> dict[str, Any]:
    """The keys an arm tunes itself (``{key: grid}``): the others follow a tuned key or another arm."""
    return {k: v for k, v in arm.tune.items() if isinstance(v, list)}


__all__ = ["ARMS", "Arm", "HOLDOUT", "QUICK_ARMS", "SETTINGS", "TIAN_SGD"]
