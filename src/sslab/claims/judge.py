"""Verdicts: each registered prediction judged against the runs, with its positive controls and Holm's correction.

``values`` holds every run's metrics as ``{arm: {metric: {seed: value}}}`` (:func:`values_of`). A
prediction is judged in three steps:

1. its controls (:func:`control`): each arm it leans on must beat its same-seed random encoder by the
   registered margin; if one fails (or has fewer than 2 seeds) the prediction is **not tested here**;
2. its paired per-seed differences and their 95 % interval (:mod:`.stats`); a collapse prediction
   expands into the registered criteria (:func:`criteria`), each a threshold test (SESOI 0), and a
   correlation into one Spearman coefficient per seed;
3. within its claim, Holm's correction of the p-values that would support it, then the verdict.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from scipy import stats as _scipy

from . import stats
from .predictions import COLLAPSE_KINDS, Claim, Prediction, Registry

Values = dict[str, dict[str, dict[int, float]]]  # arm -> metric -> seed -> value


def values_of(records: Iterable[dict]) -> Values:
    """Every finished run's metrics (failed runs and NaNs left out)."""
    out: Values = defaultdict(lambda: defaultdict(dict))
    for r in records:
        if r.get("failed") or "metrics" not in r:
            continue
        for k, v in r["metrics"].items():
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                out[r["arm"]][k][int(r["seed"])] = float(v)
    return out


def control(arm: str, vals: Values, margin: float) -> dict[str, Any]:
    """The positive control of ``arm``: kNN minus its same-seed random encoder's, paired over seeds. It passes
    when the mean gain is at least ``margin`` and the 95 % interval of the gain lies above 0; it has *failed*
    when the mean gain is below ``margin`` (the status ``failed``, what gates arms), and is ``unclear`` when the
    mean clears the margin but the interval reaches 0 (more seeds may settle it: the rounds give them); ``missing``
    with fewer than 2 runs."""
    gains = vals.get(arm, {}).get("knn_gain", {})
    if len(gains) < 2:
        return {"arm": arm, "passed": False, "status": "missing", "n": len(gains),
                "reason": f"{arm} has {len(gains)} finished run(s)"}
    iv = stats.interval(list(gains.values()))
    passed = iv.mean >= margin and iv.low > 0
    status = "passed" if passed else "failed" if iv.mean < margin else "unclear"
    out = {"arm": arm, "passed": passed, "status": status, "n": iv.n, "mean": iv.mean, "low": iv.low, "high": iv.high}
    if not passed:
        out["reason"] = (f"{arm} beats its random encoder by {iv.mean:+.3f} [{iv.low:+.3f}, {iv.high:+.3f}] over "
                         f"{iv.n} seeds, " + (f"less than the {margin} required" if status == "failed" else
                                              "but the interval reaches 0"))
    return out


def criteria(p: Prediction, rules: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The threshold tests a collapse of kind ``p.collapse`` of ``p.arm`` consists of (each predicted > 0)."""
    if p.collapse == "dimensional":
        rule = rules["dimensional"]
        frac = float(rule["rank_fraction"])
        out = [{"text": f"effective rank below {frac:.2f} x {p.reference}'s", "metric": "log_effective_rank",
                "contrast": {p.reference: 1.0, p.arm: -1.0}, "offset": -math.log(frac)}]
        if rule.get("below_random_encoder", True):
            out.append({"text": "kNN below its same-seed random encoder", "metric": "knn_gain",
                        "contrast": {p.arm: -1.0}, "offset": 0.0})
        return out
    rule = rules["complete"]
    return [{"text": f"center norm above {rule['center_norm_above']}", "metric": "center_norm",
             "contrast": {p.arm: 1.0}, "offset": float(rule["center_norm_above"])},
            {"text": f"RankMe below {rule['rankme_below']}", "metric": "rankme",
             "contrast": {p.arm: -1.0}, "offset": -float(rule["rankme_below"])}]


def _diffs(vals: Values, metric: str, contrast: Mapping[str, float], offset: float) -> dict[int, float]:
    return stats.contrast_by_seed({a: vals.get(a, {}).get(metric, {}) for a in contrast}, contrast, offset)


def _spearman_by_seed(p: Prediction, vals: Values) -> dict[int, float]:
    """Spearman's ρ across the arms, per seed (sign-adjusted so the prediction is ρ > 0), on the seeds where
    every arm that ran has both metrics: a later round re-runs only some arms, and a ρ over those few is not
    the same quantity."""
    have = {s: [a for a in p.arms if s in vals.get(a, {}).get(p.x, {}) and s in vals.get(a, {}).get(p.y, {})]
            for a0 in p.arms for s in vals.get(a0, {}).get(p.x, {})}
    full = max((len(arms) for arms in have.values()), default=0)
    out = {}
    for s in sorted(have):
        if len(have[s]) == full >= 3:
            rho = float(_scipy.spearmanr([vals[a][p.x][s] for a in have[s]], [vals[a][p.y][s] for a in have[s]]).statistic)
            out[s] = -rho if p.sign == "negative" else rho
    return out


def _interval(diffs: Mapping[int, float]) -> dict[str, Any] | None:
    if len(diffs) < 2:
        return None
    iv = stats.interval(list(diffs.values()))
    return {"mean": iv.mean, "low": iv.low, "high": iv.high, "sd": iv.sd, "n": iv.n, "by_seed": dict(diffs),
            "_iv": iv}


def measure(p: Prediction, vals: Values, rules: Mapping[str, Any]) -> dict[str, Any]:
    """A prediction's intervals and raw p-value (before the controls and Holm): ``{"interval", "p"}`` for a
    contrast or correlation, plus ``"criteria"`` for a collapse; ``"reason"`` where there is too little data."""
    if p.kind in COLLAPSE_KINDS:
        crits = []
        for c in criteria(p, rules):
            iv = _interval(_diffs(vals, c["metric"], c["contrast"], c["offset"]))
            if iv is None:
                return {"reason": f"fewer than 2 seeds for {c['text']}"}
            c = {**c, "interval": iv, "verdict": stats.verdict("effect", iv["_iv"], 0.0),
                 "p_collapse": stats.p_greater(iv["_iv"]), "p_no_collapse": stats.p_less(iv["_iv"])}
            crits.append(c)
        # collapsed: every criterion (intersection-union test: the largest p); escaped: some criterion lies on the
        # healthy side (union: Bonferroni over the criteria) -- the same two tests whichever way the prediction goes
        p_collapsed = max(c["p_collapse"] for c in crits)
        p_escaped = min(1.0, len(crits) * min(c["p_no_collapse"] for c in crits))
        return {"criteria": crits, "p": p_collapsed if p.kind == "collapse" else p_escaped,
                "p_collapsed": p_collapsed, "p_escaped": p_escaped}
    diffs = _spearman_by_seed(p, vals) if p.kind == "correlation" else _diffs(vals, p.metric, p.contrast, p.offset)
    iv = _interval(diffs)
    if iv is None:
        return {"reason": f"fewer than 2 seeds with every arm of the contrast ({len(diffs)})"}
    kind = "effect" if p.kind == "correlation" else p.kind
    return {"interval": iv, "p": stats.p_value(kind, iv["_iv"], p.sesoi)}


def _verdict(p: Prediction, m: dict[str, Any], p_adj: float) -> str:
    if p.kind in COLLAPSE_KINDS:
        collapsed, escaped = m["p_collapsed"] < stats.ALPHA, m["p_escaped"] < stats.ALPHA
        if p.kind == "collapse":
            return stats.SUPPORTED if collapsed and p_adj < stats.ALPHA else (
                stats.CONTRADICTED if escaped else stats.UNDERPOWERED)
        return stats.SUPPORTED if escaped and p_adj < stats.ALPHA else (
            stats.CONTRADICTED if collapsed else stats.UNDERPOWERED)
    kind = "effect" if p.kind == "correlation" else p.kind
    return stats.verdict(kind, m["interval"]["_iv"], p.sesoi, p_adj)


def judge_claim(claim: Claim, vals: Values, registry: Registry) -> dict[str, Any]:
    """Every prediction of ``claim`` judged (controls, intervals, Holm within the claim) and the claim's verdict."""
    margin = float(registry.controls.get("margin", 0.05))
    results, tested = [], []
    for p in claim.predictions:
        ctl = [control(a, vals, margin) for a in p.controls]
        res: dict[str, Any] = {"id": p.id, "kind": p.kind, "basis": p.basis, "note": p.note, "sesoi": p.sesoi,
                               "sesoi_why": p.sesoi_why, "metric": p.metric, "contrast": p.contrast,
                               "offset": p.offset, "collapse": p.collapse, "arm": p.arm, "reference": p.reference,
                               "controls": ctl}
        failed = [c for c in ctl if not c["passed"]]
        m = measure(p, vals, registry.collapse)
        res.update({k: v for k, v in m.items() if k != "p"})
        if failed:
            res.update(verdict=stats.NOT_TESTED, reason="positive control not passed: " + "; ".join(c["reason"] for c in failed))
        elif "reason" in m:
            res.update(verdict=stats.NOT_TESTED, reason=m["reason"])
        else:
            res["p"] = m["p"]
            tested.append((res, p, m))
        results.append(res)
    for (res, p, m), p_adj in zip(tested, stats.holm([m["p"] for _, _, m in tested])):
        res["p_holm"] = p_adj
        res["verdict"] = _verdict(p, m, p_adj)
    for res in results:  # the interval objects were for the verdicts; the report and JSON get plain numbers
        for iv in [res.get("interval"), *(c["interval"] for c in res.get("criteria", []))]:
            if iv:
                iv.pop("_iv", None)
    return {"id": claim.id, "paper": claim.paper, "where": claim.where, "words": claim.words, "summary": claim.summary,
            "predictions": results, "verdict": stats.claim_verdict(r["verdict"] for r in results),
            "arms": list(claim.arms())}


def judge(registry: Registry, records: Iterable[dict]) -> list[dict[str, Any]]:
    """Every claim of ``registry`` judged against ``records`` (the runs of :mod:`.runs`)."""
    vals = values_of(records)
    return [judge_claim(c, vals, registry) for c in registry.claims]


def underpowered_arms(results: list[dict[str, Any]], registry: Registry) -> set[str]:
    """What the stopping rule gives more seeds: the arms of every underpowered prediction (a correlation across
    all arms adds none: its arms are every run), and the control arms of predictions waiting on an unclear control
    (with the arms those predictions read)."""
    by_id = {p.id: p for p in registry.predictions()}
    out: set[str] = set()
    for c in results:
        for r in c["predictions"]:
            p = by_id[r["id"]]
            unclear = any(ctl.get("status") == "unclear" for ctl in r["controls"])
            if r["verdict"] == stats.UNDERPOWERED or (r["verdict"] == stats.NOT_TESTED and unclear and not any(
                    ctl.get("status") == "failed" for ctl in r["controls"])):
                out.update(p.plans())
    return out


__all__ = ["control", "criteria", "judge", "judge_claim", "measure", "underpowered_arms", "values_of"]
