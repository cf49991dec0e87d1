"""The claims study: the four papers' claims as arms (runs) and predictions (verdicts).

Every arm is a method's ``shifted_mnist`` recipe (``<method>_mnist5k@shifted_mnist``) with the
study's shared settings (:data:`SETTINGS`) and the options the arm changes. A claim is a list of
:class:`Part` predictions about the arms' metrics; :mod:`.stats` turns each into a verdict. The
metrics of a run (see :mod:`.runs`): ``knn`` (kNN top-1 on the test split), the final probe-set
diagnostics ``center_norm`` ‖E_x u‖, ``aug_mean_norm`` E_x‖E_ω u‖, ``effective_rank``, the Pearson
correlation ``lc_lnc_r`` of L_c and L_nc along training, the predictor's eigen-alignment
``pred_alignment_first/last/gain`` (linear predictors), and ``predictor_ms`` (timing arms).

Collapse is read from the center vector: an arm "collapses completely" when its center norm
exceeds :data:`COLLAPSE_CENTER` (0.9, the threshold of sslab's collapse verdict,
``DiagnosticsConfig.center_threshold``) by twice its standard error. Two arms "match" within
:data:`MATCH_MARGIN` kNN points (see :mod:`.stats`). Both are ours: no paper fixes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .stats import FAILS, HOLDS, INCONCLUSIVE

TIAN = "Tian et al. 2021"
WANG = "Wang et al. 2021"
GARRIDO = "Garrido et al. 2023"
JHA = "Jha et al. 2024"

#: shared by every arm: the shifted_mnist recipes (half-width ConvNet) for 8 epochs (312 steps of batch 128), kNN
#: only (no linear probe, no online probe), the diagnostics every 20 steps (the curves), the baselines on one arm
SETTINGS = ("epochs=8", "eval.linear=false", "eval.online_probe=false", "eval.knn_every=0",
            "eval.baselines=false", "diagnostics.every=20")
#: --quick: one seed of a few arms, 1 epoch, diagnostics every 10 steps (what the tests run; a later key wins)
QUICK_SETTINGS = (*SETTINGS, "epochs=1", "diagnostics.every=10", "diagnostics.probe_size=256")
SEEDS = (0, 1, 2)
COLLAPSE_CENTER = 0.9
MATCH_MARGIN = 0.02
#: the runs of the all-runs claim: "collapsed" when kNN is at least this far below the random encoder of the
#: same seed (the issue's collapse margin), "healthy" when it is at or above it
COLLAPSE_KNN_DROP = 0.10


@dataclass(frozen=True)
class Arm:
    """One setting of the study: ``method`` with ``set`` (config overrides, ``key: value``)."""

    method: str
    set: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    baselines: bool = False  # also measure raw pixels and the random encoder (once per seed)
    timing: bool = False  # not a training run: the per-step cost of the method's predictor


#: a learned linear predictor on DirectPred's heads (bias-free Wp, affine-free BN) at the common learning rate
#: (alpha_p = 1, as Tian et al.'s Tables 3 and 8; the byol recipe's predictor learns 10x faster)
LINEAR = {"predictor": "linear", "pred_bias": False, "bn_affine": False, "pred_lr_ratio": 1.0}


def _momentum(m: float) -> dict[str, Any]:
    return {"momentum": m, "momentum_final": m}


ARMS: dict[str, Arm] = {
    # the references (each method's shifted_mnist recipe as it is)
    "byol": Arm("byol", note="recipe (EMA 0.9 -> 1, MLP predictor at 10x lr, AdamW wd 1e-4)", baselines=True),
    "simsiam": Arm("simsiam", note="recipe"),
    "simclr": Arm("simclr", note="recipe (512-128 head, temperature 0.2)"),
    "vicreg": Arm("vicreg", note="recipe (512-512-512 head)"),
    # Tian et al.
    "byol_no_predictor": Arm("byol", {"predictor": "none"}),
    "simsiam_no_predictor": Arm("simsiam", {"predictor": "none"}),
    "byol_no_stop_gradient": Arm("byol", {"stop_gradient": False, **_momentum(0.0)},
                                 note="the target is the online network itself, gradient through both branches"),
    "simsiam_no_stop_gradient": Arm("simsiam", {"stop_gradient": False}),
    "byol_wd0": Arm("byol", {"optim.weight_decay": 0.0}, note="no weight decay"),
    "byol_wd_high": Arm("byol", {"optim.weight_decay": 5.0}, note="AdamW wd 5 (lr x wd = 1 % shrink per step)"),
    "linear": Arm("byol", LINEAR, note="learned linear predictor at the common lr, DirectPred's heads"),
    "linear_symmetric": Arm("byol", {**LINEAR, "symmetric_predictor": True}, note="symmetric Wp, EMA"),
    "linear_symmetric_no_ema": Arm("byol", {**LINEAR, "symmetric_predictor": True, **_momentum(0.0)},
                                   note="symmetric Wp, no EMA"),
    "directpred": Arm("directpred", note="recipe: rho 0.3, eps 0.1, freq 1"),
    "directpred_freq5": Arm("directpred", {"freq": 5}),
    "directpred_eps0": Arm("directpred", {"eps": 0.0}),
    "directpred_rho05": Arm("directpred", {"rho": 0.5}),
    "directpred_rho05_eps0": Arm("directpred", {"rho": 0.5, "eps": 0.0}),
    "predictor_cost_directpred": Arm("directpred", note="ms per step: F̂ update + eigendecomposition", timing=True),
    # Wang et al.
    "directcopy": Arm("directcopy", note="recipe: eps 0.3, spectral norm"),
    "predictor_cost_directcopy": Arm("directcopy", note="ms per step: F̂ update + F̂/‖F̂‖ + εI", timing=True),
    # Garrido et al.: SimCLR with VICReg's projector and temperature 0.15 (their "tuned"), the dimension sweep
    "simclr_tuned": Arm("simclr", {"proj_hidden_dim": 512, "proj_dim": 512, "proj_layers": 3, "temperature": 0.15},
                        note="VICReg's 512-512-512 head, temperature 0.15"),
    "simclr_tuned_d16": Arm("simclr", {"proj_hidden_dim": 512, "proj_dim": 16, "proj_layers": 3, "temperature": 0.15},
                            note="512-512-16 head"),
    "vicreg_d16": Arm("vicreg", {"proj_dim": 16}, note="512-512-16 head"),
    "vicreg_exp": Arm("vicreg_exp", note="recipe (512-512-512 head)"),
    "vicreg_ctr": Arm("vicreg_ctr", note="recipe (512-512-512 head)"),
    # Jha et al.
    "center": Arm("center", note="alignment + ‖E z‖² penalty, weight 1"),
    "barlow_twins": Arm("barlow_twins", note="recipe (512-512-512 head, lambda 0.0051)"),
    "barlow_twins_no_offdiag": Arm("barlow_twins", {"lambd": 0.0}, note="lambda 0: the diagonal term alone"),
    "swav": Arm("swav", note="recipe (300 prototypes)"),
    "swav_fixed_prototypes": Arm("swav", {"fixed_prototypes": True}, note="prototypes never trained"),
    "byol_m0": Arm("byol", _momentum(0.0), note="constant EMA 0 (target = online)"),
    "byol_m0.9": Arm("byol", _momentum(0.9), note="constant EMA 0.9"),
    "byol_m0.99": Arm("byol", _momentum(0.99), note="constant EMA 0.99"),
    "byol_m0.996": Arm("byol", _momentum(0.996), note="constant EMA 0.996"),
}

#: pseudo-arms read from the ``byol`` arm's baselines: kNN of raw pixels and of the encoder at initialisation
BASELINES = {"raw_pixels": "raw_pixel_knn_top1", "random_encoder": "random_init_knn_top1"}
#: pseudo-arms of the all-runs claim: every training run, grouped by its kNN against the random encoder
GROUPS = ("healthy_runs", "collapsed_runs")

QUICK_ARMS = ("byol", "byol_no_predictor", "center", "directpred", "directcopy", "predictor_cost_directpred",
              "predictor_cost_directcopy")


@dataclass(frozen=True)
class Part:
    """One prediction: the contrast ``Σ weight · mean(metric)`` over arms, judged by ``kind``:
    ``greater`` (> 0), ``matches`` (|·| < margin), ``at_least`` (> −margin), ``above``
    (> threshold), ``below`` (< threshold)."""

    text: str
    kind: str
    weights: dict[str, float]
    metric: str = "knn"
    threshold: float = 0.0


@dataclass(frozen=True)
class Claim:
    id: str
    paper: str
    claim: str  # one sentence
    parts: tuple[Part, ...]
    source: str  # where in the paper
    arms: tuple[str, ...] = ()  # shown in the table (default: the arms the parts name)
    plot: str = ""  # the figure that shows it

    def shown_arms(self) -> tuple[str, ...]:
        if self.arms:
            return self.arms
        seen: dict[str, None] = {}
        for p in self.parts:
            seen.update(dict.fromkeys(p.weights))
        return tuple(seen)


def gt(a: str, b: str, metric: str = "knn", text: str = "") -> Part:
    return Part(text or f"{a} > {b} ({metric})", "greater", {a: 1.0, b: -1.0}, metric)


def eq(a: str, b: str, metric: str = "knn") -> Part:
    return Part(f"{a} ≈ {b} ({metric}, within {MATCH_MARGIN})", "matches", {a: 1.0, b: -1.0}, metric)


def ge(a: str, b: str, metric: str = "knn") -> Part:
    return Part(f"{a} ≥ {b} − {MATCH_MARGIN} ({metric})", "at_least", {a: 1.0, b: -1.0}, metric)


def collapsed(arm: str) -> Part:
    return Part(f"{arm} collapses completely (center norm > {COLLAPSE_CENTER})", "above", {arm: 1.0}, "center_norm",
                COLLAPSE_CENTER)


def not_collapsed(arm: str) -> Part:
    return Part(f"{arm} does not collapse (center norm < {COLLAPSE_CENTER})", "below", {arm: 1.0}, "center_norm",
                COLLAPSE_CENTER)


CLAIMS: tuple[Claim, ...] = (
    # ---------------------------------------------------------------- Tian, Chen, Ganguli 2021
    Claim("tian-predictor", TIAN, "Without a predictor, BYOL and SimSiam collapse (Wp = I is a collapsing fixed point).",
          (gt("byol", "byol_no_predictor"), gt("simsiam", "simsiam_no_predictor"), collapsed("byol_no_predictor"),
           collapsed("simsiam_no_predictor")), "§3-4 (theory; no table)"),
    Claim("tian-stop-gradient", TIAN, "Without the stop-gradient, BYOL and SimSiam collapse.",
          (gt("byol", "byol_no_stop_gradient"), gt("simsiam", "simsiam_no_stop_gradient"),
           collapsed("byol_no_stop_gradient"), collapsed("simsiam_no_stop_gradient")), "§3 (Eqn 3 dynamics)"),
    Claim("tian-weight-decay", TIAN, "Weight decay matters: none hurts, a moderate amount works, too much collapses.",
          (gt("byol", "byol_wd0", text="moderate (1e-4) > none"), gt("byol", "byol_wd_high", text="moderate > too much (5)"),
           collapsed("byol_wd_high")), "§4.2, Table 2 and 5", arms=("byol_wd0", "byol", "byol_wd_high")),
    Claim("tian-symmetric-ema", TIAN, "A symmetric linear predictor fails without EMA and works with it (Table 3).",
          (gt("linear_symmetric", "linear_symmetric_no_ema"), collapsed("linear_symmetric_no_ema"),
           ge("linear_symmetric", "linear")), "Table 3"),
    Claim("tian-alignment", TIAN, "The learned linear predictor's eigenvectors align with those of F̂ during training.",
          (Part("alignment rises: last − first probe > 0", "greater", {"linear": 1.0}, "pred_alignment_gain"),
           Part("alignment ends above 0.5", "above", {"linear": 1.0}, "pred_alignment_last", 0.5)),
          "§5, Fig. 3", plot="alignment.png"),
    Claim("tian-directpred", TIAN, "DirectPred (Wp from F̂'s eigendecomposition) matches or beats a learned linear "
          "predictor, with freq 1 and 5.",
          (ge("directpred", "linear"), ge("directpred_freq5", "linear")), "Table 8"),
    Claim("tian-rho-eps", TIAN, "Table 6: the eigenvalue boost ε = 0.1 beats ε = 0 at ρ = 0.3 and 0.5; ρ matters less.",
          (gt("directpred", "directpred_eps0"), gt("directpred_rho05", "directpred_rho05_eps0"),
           # with E_ε, E_ρ the mean effects of ε 0 -> 0.1 and ρ 0.3 -> 0.5 over the 2x2 grid: E_ε − E_ρ and
           # E_ε + E_ρ reduce to these two differences; both > 0 is |E_ρ| < E_ε
           Part("ε's effect exceeds ρ's (E_ε − E_ρ = rho0.5 − eps0 > 0)", "greater",
                {"directpred_rho05": 1.0, "directpred_eps0": -1.0}),
           Part("ε's effect exceeds −ρ's (E_ε + E_ρ = directpred − rho0.5_eps0 > 0)", "greater",
                {"directpred": 1.0, "directpred_rho05_eps0": -1.0})), "Table 6"),
    # ---------------------------------------------------------------- Wang, Chen, Du, Tian 2021
    Claim("wang-directcopy", WANG, "DirectCopy (Wp = F̂/‖F̂‖ + εI) matches DirectPred without an eigendecomposition, "
          "at a lower per-step predictor cost.",
          (eq("directcopy", "directpred"),
           gt("predictor_cost_directpred", "predictor_cost_directcopy", "predictor_ms",
              text="per-step predictor cost: DirectPred > DirectCopy (ms)")), "§4, Table 1-3"),
    # ---------------------------------------------------------------- Garrido et al. 2023
    Claim("garrido-tuned", GARRIDO, "SimCLR with VICReg's projector and a tuned temperature matches VICReg.",
          (eq("simclr_tuned", "vicreg"),), "§5, Table S5", arms=("simclr", "simclr_tuned", "vicreg")),
    Claim("garrido-dimension", GARRIDO, "The sample-contrastive method is robust to a small embedding dimension; the "
          "dimension-contrastive one loses more there.",
          (Part("VICReg loses more than SimCLR-tuned from d = 512 to 16 (kNN)", "greater",
                {"vicreg": 1.0, "vicreg_d16": -1.0, "simclr_tuned": -1.0, "simclr_tuned_d16": 1.0}),
           eq("simclr_tuned_d16", "simclr_tuned")), "Fig. 3, Table S5 (8192-8192-d rows)"),
    Claim("garrido-duality", GARRIDO, "L_c and L_nc move together through training (Theorem 3.3).",
          (Part("Pearson r(L_c, L_nc) along SimCLR-tuned's training > 0.9", "above", {"simclr_tuned": 1.0}, "lc_lnc_r", 0.9),
           Part("Pearson r(L_c, L_nc) along VICReg's training > 0.9", "above", {"vicreg": 1.0}, "lc_lnc_r", 0.9)),
          "Theorem 3.3", plot="duality.png"),
    Claim("garrido-variants", GARRIDO, "VICReg-exp and VICReg-ctr land with VICReg (68.00 / 67.92 vs 68.13 at 8192-d).",
          (eq("vicreg_exp", "vicreg"), eq("vicreg_ctr", "vicreg")), "§4.2, Table S5"),
    # ---------------------------------------------------------------- Jha et al. 2024
    Claim("jha-center", JHA, "Healthy runs have a small center vector and a large augmentation mean; completely "
          "collapsed runs a center norm near 1 (all runs of the study).",
          (collapsed("collapsed_runs"),
           Part("healthy runs: the center norm falls during training (first probe − last > 0)", "greater",
                {"healthy_runs": 1.0}, "center_drop"),
           Part("healthy runs: ‖aug mean‖ > ‖center‖", "greater", {"healthy_runs": 1.0}, "invariance_gap"),
           gt("collapsed_runs", "healthy_runs", "center_norm"),
           gt("healthy_runs", "collapsed_runs", "invariance_gap",
              text="healthy_runs > collapsed_runs (‖aug mean‖ − ‖center‖)")),
          "§3, Fig. 1", plot="center.png"),
    Claim("jha-penalty", JHA, "Alignment plus an explicit center-vector penalty avoids collapse and learns a useful "
          "representation.",
          (not_collapsed("center"), gt("center", "random_encoder")), "§4 (L_Simple; tested on toy data in the paper)",
          arms=("center", "random_encoder", "raw_pixels", "byol_no_predictor")),
    Claim("jha-simsiam", JHA, "SimSiam without its predictor collapses completely: its center vector goes to norm 1.",
          (collapsed("simsiam_no_predictor"), gt("simsiam", "simsiam_no_predictor", "knn")), "ImageNet-100 ablation 1"),
    Claim("jha-barlow", JHA, "Barlow Twins without the off-diagonal term does not collapse completely (the per-dimension "
          "standardisation keeps the center small), at some cost in accuracy.",
          (not_collapsed("barlow_twins_no_offdiag"), gt("barlow_twins", "barlow_twins_no_offdiag")),
          "ImageNet-100 ablation 2"),
    Claim("jha-swav", JHA, "SwAV with fixed (random) prototypes still avoids collapse: the equipartition keeps the center "
          "small.", (not_collapsed("swav_fixed_prototypes"), ge("swav_fixed_prototypes", "swav")),
          "ImageNet-100 ablation 3"),
    Claim("jha-momentum", JHA, "BYOL's momentum is not what prevents collapse: EMA 0, 0.9, 0.99 and 0.996 all avoid it.",
          tuple(not_collapsed(f"byol_m{m}") for m in ("0", "0.9", "0.99", "0.996")), "ImageNet-100 ablation 4"),
)


def claims_for(arms: set[str]) -> tuple[Claim, ...]:
    """The claims whose every arm is in ``arms`` (the baselines and the groups, read from the arm that
    measures the baselines, count as present when one of ``arms`` does)."""
    have = set(arms)
    if any(ARMS[a].baselines for a in arms if a in ARMS):
        have |= set(BASELINES) | set(GROUPS)
    return tuple(c for c in CLAIMS if all(a in have for p in c.parts for a in p.weights))


#: (claim id, verdict) -> why, written after reading the runs of 2026-11-24 (docs/claims.md); shown only while the
#: computed verdict is that one, so a rerun that changes a verdict drops the text rather than contradicting it
_BN = ("SimSiam's projector ends in an affine-free BatchNorm (`proj_last_bn`, its official design), which gives every "
       "output dimension zero batch mean, so the center vector of the ℓ2-normalised embeddings cannot approach norm 1")
EXPLANATIONS: dict[tuple[str, str], str] = {
    ("tian-predictor", FAILS):
        "BYOL without its predictor collapses completely (center norm 1.00, effective rank 10 of 128, 7 kNN points "
        "lost). SimSiam without its predictor loses 5 points (just inside 2 SE) and its effective rank falls from 31 "
        f"to 6, but its center norm stays at 0.24: {_BN}. The collapse Tian et al. predict is there, in the rank; the "
        "center-norm test cannot see it behind that BatchNorm.",
    ("tian-stop-gradient", FAILS):
        "BYOL without the stop-gradient (the target is the online network, the gradient flows through both "
        "branches) collapses completely: center norm 1.00, effective rank 2, 21 kNN points lost. SimSiam without it "
        "loses 12 points and its effective rank falls from 31 to 5, but its output BatchNorm holds the center norm "
        "at 0.41 (as in tian-predictor): a dimensional collapse, not the complete one this test reads.",
    ("tian-weight-decay", FAILS):
        "Neither prediction shows, and too much decay does not collapse. The recipe's 'moderate' decay is AdamW's "
        "decoupled 1e-4, a per-step shrink lr·λ = 2e-7, about 60 times weaker than Tian et al.'s SGD η̄ = 4e-4 at "
        "lr 0.03, so 'moderate' and 'none' are nearly the same run here (0.655 vs 0.654). At 5 (a 1 % shrink per "
        "step) the BatchNorm after every convolution and hidden layer makes the loss blind to those weights' scale, "
        "so decay raises their effective learning rate instead of pulling them to zero: kNN is level (0.663) and the "
        "effective rank falls from 38 to 22. Tian et al. derive the collapse under strong decay for linear networks "
        "without normalisation; this study does not test that setting.",
    ("tian-symmetric-ema", INCONCLUSIVE):
        "All three linear-predictor arms train at the common learning rate (α_p = 1, as in Table 3), and all three "
        "are near collapse after 312 steps (center norm 0.85-0.89, kNN 0.55-0.58, below the random encoder's 0.65). "
        "That leaves EMA little to rescue, and the differences are within 2 SE. Tian et al.'s pattern appears after "
        "100 STL-10 epochs. Here the learned linear predictor does not get going (see tian-alignment), while the MLP "
        "predictor at 10x the learning rate (the byol arm) does.",
    ("tian-alignment", FAILS):
        "The alignment rises in every seed, but only from 0.00 to 0.03 (mean cos(u_j, Wp u_j) over all 128 modes) in "
        "312 steps. Tian et al.'s curves approach 1 over many epochs with η̄ = 4e-4 weight decay, the force their "
        "Theorem 3 credits with the alignment. Here the decay is AdamW's 2e-7 per step, and the linear-predictor run "
        "is itself near collapse (center norm 0.88). DirectPred, whose Wp is set in F̂'s eigenbasis and so aligned by "
        "construction, is the best asymmetric method of the study (tian-directpred).",
    ("tian-rho-eps", INCONCLUSIVE):
        "Three of the four predictions hold: ε = 0.1 beats ε = 0 by 3.8 points at ρ = 0.5, and ε's effect exceeds "
        "ρ's in both directions. At ρ = 0.3 the gain, 3.4 ± 1.7 points, sits exactly at 2 SE. The Table 6 pattern "
        "(ε = 0.1 best, ρ nearly irrelevant) is what these runs show, short of the rule's bar on one comparison.",
    ("wang-directcopy", INCONCLUSIVE):
        "The cost half holds: DirectCopy's predictor step takes 1.08 ms against DirectPred's 1.74 ms at D = 128. Its "
        "spectral norm needs only the eigenvalues (`eigvalsh`), where DirectPred also needs the eigenvectors; with "
        "`norm=fro` it would need no eigen-solver at all. On accuracy DirectCopy is 1.7 ± 1.4 points behind "
        "DirectPred: inside the 2-point margin on average, but its 2-SE interval reaches past the margin.",
    ("garrido-tuned", INCONCLUSIVE):
        "SimCLR with VICReg's 512-512-512 head and temperature 0.15 lands 4.0 ± 1.1 points below VICReg, and 1.5 "
        "points below SimCLR's own recipe (512-128 head, temperature 0.2). The paper's tuning (temperature 0.15 with "
        "base lr 0.5 under LARS) is for ResNet-50 on ImageNet and was not re-tuned here. The gap exceeds the 2-point "
        "margin, but its 2-SE interval is not wholly outside it.",
    ("garrido-dimension", INCONCLUSIVE):
        "The first prediction holds. Going from 512 to 16 output dimensions costs VICReg 7.7 points and SimCLR-tuned "
        "1.7 (difference 6.0 ± 1.5). Whether SimCLR is unaffected is inconclusive: its 1.7 ± 1.0-point loss is "
        "inside the 2-point margin on average, but not by 2 SE.",
    ("garrido-duality", HOLDS):
        "Pearson's r exceeds 0.998 in every one of the study's 99 runs, the collapsed ones included. Theorem 3.3 is "
        "an identity: L_nc − L_c depends only on the norms of the embedding matrix's rows and columns. So the two "
        "losses track each other whatever training does. The claim holds, and it says nothing about which runs are "
        "healthy.",
    ("garrido-variants", FAILS):
        "VICReg-exp lands 5.2 ± 1.1 points below VICReg, and VICReg-ctr 2.8 ± 0.8 above it. At this scale the three "
        "do not sit together, as they do in the paper's ImageNet Table S5 (within 0.2 points at 8192-d). "
        "VICReg-exp's effective rank is about a third of VICReg's (37 vs 106): its LogSumExp covariance term, at the "
        "temperature 0.1 we chose (the paper's is NOT FOUND), decorrelates less than VICReg's squared one. VICReg-ctr "
        "is the best method of the study.",
    ("jha-center", INCONCLUSIVE):
        "Four of the five predictions hold over the study's 99 runs. The healthy runs (kNN at or above the random "
        "encoder's, 66 runs) see their center norm fall during training and keep it well below their "
        "augmentation-mean norm, and both statistics separate them from the collapsed runs (kNN at least 10 points "
        "below the random encoder's, 8 runs). What does not hold across the board is 'completely collapsed runs "
        "have a center norm near 1'. The BYOL collapses reach 1.00 and the linear-predictor ones about 0.9, but the "
        "collapsed SimSiam runs without stop-gradient stay at 0.36-0.44 behind SimSiam's output BatchNorm (see "
        "tian-stop-gradient). The group's mean, 0.81 ± 0.26, is therefore not above 0.9 by 2 SE. The center vector "
        "detects collapse only where nothing normalises the batch mean away; the effective rank (7.6 collapsed vs 44 "
        "healthy) detects both kinds.",
    ("jha-penalty", INCONCLUSIVE):
        "The center penalty keeps the center vector small (0.26), and nothing collapses completely. But its kNN "
        "(0.656) is level with the untrained encoder's (0.652): in 312 steps it learns nothing better than the "
        "random features it starts from. Its effective rank is 8 of 128. Alignment plus a penalty on the mean alone "
        "leaves the embeddings free to crowd into a few dimensions (a dimensional collapse), which Jha et al.'s "
        "objective does not address and their toy experiments could not show.",
    ("jha-simsiam", FAILS):
        "As in tian-predictor, SimSiam without its predictor loses 5 points and collapses to effective rank 6, but "
        f"its center norm stays at 0.24: {_BN}.",
}
