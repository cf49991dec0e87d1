"""The report's figures, one PNG each, every run of a comparison in its own colour.

Built on ``matplotlib.figure.Figure`` (no pyplot, so no display and no global state). Each
function returns the figure's file name, or None when no run has the data it needs (e.g. the
predictor figure for runs without a linear predictor).
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from ..figures import panels, save
from .run import Run

COLORS = ("tab:blue", "tab:red", "tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:gray")


def _color(i: int) -> str:
    return COLORS[i % len(COLORS)]


def _lines(ax, runs: list[Run], key: str, label_runs: bool = True, **kw) -> bool:
    drawn = False
    for i, run in enumerate(runs):
        steps, values = run.series(key)
        if steps:
            ax.plot(steps, values, color=_color(i), label=run.name if label_runs else None, **kw)
            drawn = True
    return drawn


def training(runs: list[Run], out: Path) -> str | None:
    """Loss by step; kNN top-1 by step, each run's random-encoder baseline dashed."""
    if not any(run.metrics for run in runs):
        return None
    fig, (loss, knn) = panels(2)
    drawn: set[float] = set()
    for i, run in enumerate(runs):
        key = "train/loss_step" if "train/loss_step" in run.metrics else "train/loss_epoch"
        steps, values = run.series(key)
        loss.plot(steps, values, color=_color(i), label=run.name, lw=1)
        steps, values = run.series("eval/knn_top1")
        if steps:
            knn.plot(steps, values, "o-", color=_color(i), label=run.name)
        base = run.summary.get("baselines", {}).get("random_init_knn_top1")
        if base is not None and base not in drawn:  # runs of the same shape share one baseline line
            drawn.add(base)
            knn.axhline(base, color=_color(i) if len(runs) > 1 else "k", ls="--", lw=1, label=f"random encoder ({run.name})")
    loss.set(title="training loss", xlabel="step", ylabel="loss")
    knn.set(title="kNN top-1 on the test split", xlabel="step", ylabel="accuracy")
    loss.legend(fontsize=8)
    knn.legend(fontsize=8)
    return save(fig, out, "training.png")


def center(runs: list[Run], out: Path) -> str | None:
    """Jha et al.'s picture: ‖s‖, E‖μ(x)‖ and the spread E‖μ − s‖² over training."""
    if not any(run.trace for run in runs):
        return None
    fig, (c, m, spread) = panels(3)
    _lines(c, runs, "center_norm", marker=".")
    thr = runs[0].center_threshold
    c.axhline(thr, color="k", ls=":", lw=1, label=f"collapse threshold {thr}")
    c.set(title="center vector norm ‖s‖ = ‖E z/‖z‖‖", xlabel="step", ylim=(-0.02, 1.02))
    _lines(m, runs, "aug_mean_norm", marker=".")
    m.set(title="augmentation mean norm E‖μ(x)‖", xlabel="step", ylim=(-0.02, 1.02))
    _lines(spread, runs, "aug_mean_spread", marker=".")
    spread.set(title="E‖μ(x) − s‖²: agreement that tells images apart", xlabel="step")
    c.legend(fontsize=8)
    return save(fig, out, "center.png")


def rank(runs: list[Run], out: Path) -> str | None:
    """Effective rank (solid) and RankMe (dotted) against D; per-dimension std against 1/√D."""
    if not any(run.trace for run in runs):
        return None
    fig, (r, s) = panels(2)
    _lines(r, runs, "effective_rank", marker=".")
    _lines(r, runs, "rankme", label_runs=False, ls=":")
    _lines(s, runs, "z_std", marker=".")
    for i, run in enumerate(runs):
        d = run.embedding_dim
        if d:
            s.axhline(1 / math.sqrt(d), color=_color(i), ls="--", lw=1, label=f"1/√D, D = {d}")
    r.set(title="effective rank (solid) and RankMe (dotted)", xlabel="step", ylabel="dimensions", ylim=(0, None))
    s.set(title="std of z/‖z‖ per dimension (0 = collapsed)", xlabel="step", ylim=(0, None))
    r.legend(fontsize=8)
    s.legend(fontsize=8)
    return save(fig, out, "rank.png")


def spectra(runs: list[Run], out: Path) -> str | None:
    """Normalised covariance eigenvalues λ_k/Σλ of the probe embeddings, one curve per logged step."""
    have = [run for run in runs if any(rec.get("spectrum") for rec in run.trace)]
    if not have:
        return None
    fig, axes = panels(len(have), width=5.0)
    for ax, run in zip(axes, have):
        records = [rec for rec in run.trace if rec.get("spectrum")]
        norm = Normalize(records[0]["step"], max(records[-1]["step"], records[0]["step"] + 1))
        for rec in records:
            total = sum(rec["spectrum"]) or 1.0
            values = [max(v / total, 1e-12) for v in rec["spectrum"]]
            last = rec is records[-1]
            color = "k" if last else ScalarMappable(norm, "viridis").to_rgba(rec["step"])
            ax.plot(range(1, len(values) + 1), values, color=color, lw=1.6 if last else 0.9,
                    label=f"step {rec['step']} (last)" if last else None)
        ax.set(yscale="log", xscale="log", title=f"{run.name}: spectrum over training", xlabel="eigenvalue index k",
               ylabel="λ_k / Σλ", ylim=(1e-7, 1.5))
        ax.legend(fontsize=8)
        fig.colorbar(ScalarMappable(norm, "viridis"), ax=ax, label="step")
    return save(fig, out, "spectra.png")


def duality(runs: list[Run], out: Path) -> str | None:
    """Σ‖rows‖⁴ between its Lemma 3.4 bounds, and the off-diagonal Gram statistics (Prop. 3.1)."""
    if not any(run.series("rows4_ratio")[0] for run in runs):
        return None
    fig, (rows, mean, var) = panels(3)
    _lines(rows, runs, "rows4_ratio", marker=".")
    rows.axhline(1, color="k", ls=":", lw=1, label="lower bound N²/M")
    rows.set(title="Σ‖rows‖⁴ / (N²/M)  (upper bound: M)", xlabel="step", yscale="log")
    _lines(mean, runs, "gram_offdiag_mean", marker=".")
    mean.set(title="mean off-diagonal cosine u_iᵀu_j (0 healthy, 1 collapsed)", xlabel="step")
    _lines(var, runs, "gram_offdiag_var_ratio", marker=".")
    var.axhline(1, color="k", ls=":", lw=1, label="random directions: 1")
    var.set(title="M · var(u_iᵀu_j), i ≠ j", xlabel="step", yscale="log")
    rows.legend(fontsize=8)
    var.legend(fontsize=8)
    return save(fig, out, "duality.png")


def predictor(runs: list[Run], out: Path, modes: int = 8) -> str | None:
    """For linear predictors (Tian et al.): per-mode eigen-alignment over time, commutator and
    asymmetry, and the final s_j against p_j² (the invariant parabola, scale-free)."""
    have = [run for run in runs if any("predictor" in rec for rec in run.trace)]
    if not have:
        return None
    fig = Figure(figsize=(14, 3.4 * len(have)), layout="constrained")
    grid = fig.subplots(len(have), 3, squeeze=False)
    for row, run in zip(grid, have):
        align, comm, parab = row
        records = [rec for rec in run.trace if "predictor" in rec]
        steps = [rec["step"] for rec in records]
        k = min(modes, len(records[-1]["predictor"]["alignment"]))
        for j in range(k):
            align.plot(steps, [rec["predictor"]["alignment"][j] for rec in records],
                       color=ScalarMappable(Normalize(0, k), "plasma").to_rgba(j), lw=1, label=f"mode {j + 1}" if j < 4 else None)
        align.set(title=f"{run.name}: cos(u_j, Wp u_j), top {k} modes of F̂", xlabel="step", ylim=(-1.05, 1.05))
        align.legend(fontsize=7)
        for key, style in (("pred_commutator", "-"), ("pred_asymmetry", "--")):
            s, v = run.series(key)
            comm.plot(s, v, style, color="k", label=key.removeprefix("pred_"))
        comm.set(title="relative ‖[F̂, Wp]‖ and ‖antisym(Wp)‖", xlabel="step", yscale="log")
        comm.legend(fontsize=8)
        last = records[-1]["predictor"]
        s_max, p_max = max(max(last["s"]), 1e-30), max(max(abs(p) for p in last["p"]), 1e-30)
        x = [(p / p_max) ** 2 for p in last["p"]]
        y = [s / s_max for s in last["s"]]
        parab.scatter(x, y, s=10, color="tab:blue")
        parab.plot([0, 1], [0, 1], "k:", lw=1, label="s_j ∝ p_j² (Eqn 14)")
        parab.set(title=f"step {records[-1]['step']}: s_j/s_1 against (p_j/p_max)²", xlabel="(p_j / p_max)²",
                  ylabel="s_j / s_1")
        parab.legend(fontsize=8)
        for ax in row:
            ax.grid(alpha=0.3)
    return save(fig, out, "predictor.png")


FIGURES = (training, center, rank, spectra, duality, predictor)
