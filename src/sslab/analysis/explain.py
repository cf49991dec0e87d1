"""The report's words: a one-paragraph reading of each run's verdict, and of a comparison.

Every sentence is filled from the run's numbers (final probe-set diagnostics, the trace over
training, summary, config); the theory it cites is the four papers' (spec §A.1, §C, §E).
"""

from __future__ import annotations

import math

from ..methods import FAMILIES, METHODS
from .run import Run


def config_differences(runs: list[Run]) -> list[dict[str, str]]:
    """Per run, the flattened config keys whose value differs from the first run's (``key: value``)."""
    def flat(d: dict, prefix: str = "") -> dict[str, object]:
        out: dict[str, object] = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out |= flat(v, f"{prefix}{k}.")
            else:
                out[f"{prefix}{k}"] = v
        return out

    base = flat(runs[0].config)
    diffs = []
    for run in runs:
        mine = flat(run.config)
        diffs.append({k: str(mine.get(k, "(default)")) for k in sorted(set(base) | set(mine))
                      if k not in ("data_root",) and mine.get(k) != base.get(k)})
    return diffs


def family(run: Run) -> str | None:
    """The family of the run's method, from its spec (None for a method this sslab does not know)."""
    spec = METHODS.get(run.config.get("method", ""))
    return spec.family if spec else None


def _likely_cause(run: Run) -> str:
    args = run.config.get("method_args", {}) or {}
    asymmetric = family(run) == "asymmetric"
    if asymmetric and args.get("predictor") == "none":
        return ("This is what the theory predicts for a Siamese network trained without a predictor: in Tian, Chen & "
                "Ganguli (2021) a learned predictor whose eigenvalues grow with those of the input correlation F is what "
                "moves the weights off the collapsed solution, and with Wp = I a non-collapsed fixed point needs an "
                "eigenvalue of exactly 1 in Σd Σs⁻¹ (their App. D), which real data do not have; Grill et al. (2020, "
                "Table 5b) report the same ablation of BYOL collapsing. In Jha et al.'s (2024) terms nothing keeps the "
                "center vector away from 1, so the cheapest way to make the two views agree is to make every "
                "embedding the same.")
    if asymmetric and args.get("stop_gradient") is False:
        return ("Without the stop-gradient the loss can be lowered by moving both branches together, and Tian et al. "
                "(2021, Theorem 2) prove that the weights then shrink towards the collapsed solution.")
    known = family(run)
    relies = (f" {run.config.get('method')} is {known}: what should keep it from collapsing is {FAMILIES[known]}."
              if known else "")
    return ("Nothing in this configuration held the center vector away from 1." + relies + " See docs/diagnostics.md "
            "for the term each method relies on (predictor and stop-gradient, a variance or redundancy term, "
            "negatives, centering).")


def _trend(run: Run) -> str:
    steps, values = run.series("center_norm")
    if len(steps) < 2:
        return ""
    thr = run.center_threshold
    if steps[0] == 0:
        text = f" The untrained network starts at center norm {values[0]:.3f}"
        if values[0] >= thr:
            text += " (randomly initialised networks map all images to similar embeddings)"
    else:
        text = f" At step {steps[0]} the center norm is {values[0]:.3f}"
    peak = max(range(len(values)), key=values.__getitem__)
    text += f"; by step {steps[-1]} it is {values[-1]:.3f}"
    if 0 < peak < len(values) - 1 and values[peak] > max(values[0], values[-1]) + 0.05:
        text += f", after peaking at {values[peak]:.3f} (step {steps[peak]})"
    collapsed = [r["step"] for r in run.trace if r.get("verdict") == "complete" and r["step"] > 0]
    if collapsed and run.final.get("verdict") == "complete":
        later = [st for st in steps if st >= collapsed[0]]
        text += (f", and every probe from step {collapsed[0]} on reads as completely collapsed" if later == collapsed
                 else f"; the probe set first read as completely collapsed at step {collapsed[0]}")
    elif collapsed:
        text += (f"; it read as collapsed at step{'s' if len(collapsed) > 1 else ''} "
                 f"{', '.join(map(str, collapsed[:5]))}{' …' if len(collapsed) > 5 else ''} and recovered")
    return text + "."


def _knn(run: Run) -> str:
    knn = run.summary.get("knn_top1")
    if knn is None:
        return ""
    base = run.summary.get("baselines", {}).get("random_init_knn_top1")
    if base is None:
        return f" kNN top-1 is {knn:.3f}."
    relation = "above" if knn > base else "below"
    text = f" kNN top-1 is {knn:.3f}, {relation} the {base:.3f} of a random, untrained encoder of the same shape"
    if run.final.get("verdict") == "complete" and knn > base:
        text += (" -- kNN reads the backbone's features, before the projector, which keep some of what the collapsed "
                 "embeddings have lost, but little more than an untrained network")
    return text + "."


def _predictor(run: Run) -> str:
    f = run.final
    if "pred_alignment" not in f:
        return ""
    return (f" The linear predictor's eigenvectors line up with those of F̂ (mean cos(u_j, Wp u_j) = "
            f"{f['pred_alignment']:.3f}, relative commutator {f['pred_commutator']:.2g}, asymmetry "
            f"{f['pred_asymmetry']:.2g}; Tian et al.'s Theorem 3 predicts 1, 0 and 0).")


def _residual(f: dict, er: float, d: int) -> str:
    if f.get("total_spread", 1.0) < 0.1:
        return (f"What still varies around that common point is small (total spread 1 − ‖s‖² = {f['total_spread']:.3f}); "
                f"its effective rank, {er:.2f} of {d}, describes only those residual wiggles.")
    return f"The embeddings span an effective rank of {er:.2f} of {d} dimensions: they lie on (nearly) one line."


def explain(run: Run) -> str:
    """One paragraph in plain words: what the verdict means for this run, with its numbers."""
    f = run.final
    d = run.embedding_dim or 0
    n = run.probe_size
    verdict = f.get("verdict", "unknown")
    cn, er = f.get("center_norm", float("nan")), f.get("effective_rank", float("nan"))
    threshold = run.center_threshold
    if verdict == "complete":
        text = (f"Complete collapse: the network maps every image to nearly the same embedding. On the {n} probe "
                f"images the center vector s (the mean of the unit-normalised embeddings) has norm {cn:.3f} -- 1 would "
                f"mean all embeddings are identical; healthy runs stay well below the {threshold} threshold. "
                f"{_residual(f, er, d)} The two views of an image agree "
                f"(mean positive cosine {f.get('aug_mean_sq', float('nan')):.3f}), but only because all images agree: "
                f"the part of that agreement that tells images apart, E‖μ(x) − s‖², is "
                f"{f.get('aug_mean_spread', float('nan')):.3f}. {_likely_cause(run)}")
    elif verdict == "dimensional":
        frac = run.dimensional_fraction
        text = (f"Dimensional collapse: the embeddings do not meet in one point (center norm {cn:.3f}), but they "
                f"occupy only about {er:.1f} of their {d} dimensions (effective rank; the verdict's threshold is "
                f"{frac} x min(D, N − 1) = {frac * min(d, n - 1):.1f}). Most directions of the embedding space carry "
                f"no information about the image, which limits what a linear or kNN classifier can read from them.")
    else:
        z_ref = 1 / math.sqrt(d) if d else float("nan")
        size = "small" if cn < 0.3 else "well below collapse"
        text = (f"Healthy: the center vector's norm is {size} ({cn:.3f}; complete collapse is declared at "
                f"{threshold}), so the unit-normalised embeddings spread over the sphere (total spread 1 − ‖s‖² = "
                f"{f.get('total_spread', float('nan')):.3f}). Two views of one image agree (mean positive cosine "
                f"{f.get('aug_mean_sq', float('nan')):.3f}) far more than two different images do (‖s‖² = "
                f"{f.get('center_sq', float('nan')):.3f}); the difference, E‖μ(x) − s‖² = "
                f"{f.get('aug_mean_spread', float('nan')):.3f}, is the invariance that still separates images. The "
                f"effective rank is {er:.1f} of {d} dimensions (RankMe {f.get('rankme', float('nan')):.1f}) and the "
                f"per-dimension std of z/‖z‖ is {f.get('z_std', float('nan')):.3f} against {z_ref:.3f} for "
                f"embeddings spread evenly.")
    return text + _trend(run) + _knn(run) + _predictor(run)


def compare(runs: list[Run]) -> str:
    """One paragraph on how the runs differ: configuration, verdicts and the key numbers."""
    diffs = config_differences(runs)
    parts = []
    for run, diff in zip(runs[1:], diffs[1:]):
        what = ", ".join(f"{k}={v}" for k, v in diff.items()) or "nothing in its configuration"
        parts.append(f"{run.name} differs from {runs[0].name} by {what}")
    def brief(r: Run) -> str:
        f = r.final
        knn = f", kNN {r.summary['knn_top1']:.3f}" if r.summary.get("knn_top1") is not None else ""
        return (f"{r.name}: {f.get('verdict', 'unknown')} (center norm {f.get('center_norm', float('nan')):.3f}, "
                f"effective rank {f.get('effective_rank', float('nan')):.1f}{knn})")

    verdicts = "; ".join(brief(r) for r in runs)
    text = ". ".join(parts) + f". Verdicts: {verdicts}."
    kinds = {r.final.get("verdict") for r in runs}
    if "healthy" in kinds and "complete" in kinds:
        text += (" The change decides between a spread-out representation and a collapsed one: in the center-vector "
                 "figure the collapsed run's center norm climbs towards 1 while its views' agreement that tells images "
                 "apart, E‖μ(x) − s‖², falls towards 0; the healthy run keeps both away from those limits.")
    return text
