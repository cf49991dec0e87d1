"""The statistics of the claims study: paired intervals over seeds, one-sided tests, TOST, Holm, verdicts.

Every arm of a comparison is trained once per seed, and a seed fixes the initialisation, the data
order and the views, so arms are compared **paired by seed**: a prediction is a contrast
``d_s = Σ_arm w_arm · x_arm,s − offset`` computed per seed ``s`` (over the seeds every arm has), and
its mean gets a Student-t interval with ``n − 1`` degrees of freedom. The predicted direction is
``d > 0`` (a prediction "a beats b" is ``{a: 1, b: −1}``; "a below threshold t" is ``{a: −1}`` with
offset ``−t``).

Each prediction carries its smallest effect of interest ``δ`` (SESOI, ≥ 0). The verdicts, at one
level ``α = 0.025`` per side (the two-sided 95 % interval):

* ``effect`` (``d > 0`` predicted): **contradicted** when the 95 % interval lies below ``−δ``
  (excludes the SESOI on the other side) or inside ``(−δ, δ)`` (at most a negligible effect, where
  one was predicted -- even when it excludes 0); else **supported** when it lies above 0
  (one-sided p < α);
* ``equivalence`` (``|d| < δ``): **supported** when both one-sided tests of TOST reject at α
  (p = max of the two < α, i.e. the 95 % interval inside ``(−δ, δ)``); **contradicted** when the
  interval lies wholly outside it;
* ``noninferiority`` (``d > −δ``): **supported** when the one-sided test of ``d > −δ`` rejects at α
  (the interval's lower end above ``−δ``); **contradicted** when the interval lies below ``−δ``;
* **underpowered** otherwise (the interval is reported), and **not tested here** when a positive
  control the prediction leans on failed (see :mod:`.controls`) or an arm has fewer than 2 seeds.

Within a claim the "supported" p-values are Holm-adjusted (:func:`holm`): a prediction is supported
only when its adjusted p is below α as well. A claim's verdict follows from its predictions by
:func:`claim_verdict`. The t quantiles and tail probabilities are scipy's (``scipy.stats.t``);
tests/test_claims_stats.py checks every interval and p-value against ``scipy.stats.ttest_rel`` /
``ttest_1samp`` on hand-made cases.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from scipy import stats as _scipy

SUPPORTED, CONTRADICTED, UNDERPOWERED, NOT_TESTED = "supported", "contradicted", "underpowered", "not tested here"
VERDICTS = (SUPPORTED, CONTRADICTED, UNDERPOWERED, NOT_TESTED)
KINDS = ("effect", "equivalence", "noninferiority")
ALPHA = 0.025  # per side: the two-sided 95 % interval


@dataclass(frozen=True)
class Interval:
    """The mean of per-seed differences with its ``level`` Student-t interval (``n − 1`` df)."""

    mean: float
    low: float
    high: float
    sd: float  # sample standard deviation of the differences (n − 1)
    n: int
    level: float = 0.95

    @property
    def se(self) -> float:
        return self.sd / math.sqrt(self.n)

    def __str__(self) -> str:
        return f"{self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


def interval(diffs: Sequence[float], level: float = 0.95) -> Interval:
    """Mean and two-sided ``level`` t-interval of paired differences (at least 2 of them)."""
    xs = [float(v) for v in diffs]
    n = len(xs)
    if n < 2:
        raise ValueError(f"interval: need at least 2 paired differences, got {n}")
    mean = sum(xs) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(_scipy.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, sd, n, level)


def p_greater(iv: Interval, bound: float = 0.0) -> float:
    """One-sided p-value of ``H0: d ≤ bound`` against ``d > bound`` (Student's t, ``n − 1`` df)."""
    if iv.sd == 0:
        return 0.0 if iv.mean > bound else 1.0
    return float(_scipy.t.sf((iv.mean - bound) / iv.se, iv.n - 1))


def p_less(iv: Interval, bound: float = 0.0) -> float:
    """One-sided p-value of ``H0: d ≥ bound`` against ``d < bound``."""
    if iv.sd == 0:
        return 0.0 if iv.mean < bound else 1.0
    return float(_scipy.t.cdf((iv.mean - bound) / iv.se, iv.n - 1))


def tost(iv: Interval, sesoi: float) -> float:
    """Two one-sided tests (Schuirmann 1987) of ``−δ < d < δ``: the larger of the two p-values."""
    return max(p_greater(iv, -sesoi), p_less(iv, sesoi))


def p_value(kind: str, iv: Interval, sesoi: float) -> float:
    """The p-value whose rejection at α supports a prediction of ``kind`` (see the module docstring)."""
    if kind == "effect":
        return p_greater(iv, 0.0)
    if kind == "equivalence":
        return tost(iv, sesoi)
    if kind == "noninferiority":
        return p_greater(iv, -sesoi)
    raise ValueError(f"unknown prediction kind '{kind}'; valid choices: {', '.join(KINDS)}")


def verdict(kind: str, iv: Interval, sesoi: float, p_adjusted: float | None = None) -> str:
    """The verdict on a prediction of ``kind`` from its 95 % interval and SESOI (``p_adjusted``: its
    Holm-adjusted p within the claim; a support needs it below α too)."""
    if sesoi < 0:
        raise ValueError(f"the smallest effect of interest must be >= 0, got {sesoi}")
    p = p_value(kind, iv, sesoi) if p_adjusted is None else p_adjusted
    lo, hi = iv.low, iv.high
    if kind == "effect":  # an interval inside ±δ is at most a negligible effect: contradicted, even above 0
        if hi < -sesoi or (-sesoi < lo and hi < sesoi):
            return CONTRADICTED
        if lo > 0 and p < ALPHA:
            return SUPPORTED
    elif kind == "equivalence":
        if p < ALPHA:
            return SUPPORTED
        if lo > sesoi or hi < -sesoi:
            return CONTRADICTED
    elif kind == "noninferiority":
        if p < ALPHA:
            return SUPPORTED
        if hi < -sesoi:
            return CONTRADICTED
    else:
        raise ValueError(f"unknown prediction kind '{kind}'; valid choices: {', '.join(KINDS)}")
    return UNDERPOWERED


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979), in the input order:
    ``p̃_(k) = max_{j ≤ k} min(1, (m − j + 1) p_(j))`` over the ascending order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def claim_verdict(verdicts: Iterable[str]) -> str:
    """A claim from its predictions' verdicts, by this rule: **contradicted** when any prediction is
    contradicted; else **underpowered** when any is underpowered; else **supported** when at least one
    is supported (the rest not tested here: the report lists them); **not tested here** when none was."""
    vs = list(verdicts)
    if not vs:
        raise ValueError("claim_verdict: no predictions")
    unknown = [v for v in vs if v not in VERDICTS]
    if unknown:
        raise ValueError(f"unknown verdict '{unknown[0]}'; valid choices: {', '.join(VERDICTS)}")
    for v in (CONTRADICTED, UNDERPOWERED, SUPPORTED):
        if v in vs:
            return v
    return NOT_TESTED


def contrast_by_seed(values: Mapping[str, Mapping[int, float]], weights: Mapping[str, float],
                     offset: float = 0.0) -> dict[int, float]:
    """``d_s = Σ w_arm · x_arm,s − offset`` for every seed that all the weighted arms have."""
    seeds = set.intersection(*(set(values.get(a, {})) for a in weights)) if weights else set()
    return {s: sum(w * values[a][s] for a, w in weights.items()) - offset for s in sorted(seeds)}


def mean_std(values: Iterable[float] | None, digits: int = 3) -> str:
    """``"mean ± std"`` of the values (the mean alone for one value, ``-`` for none): a table cell."""
    xs = [float(v) for v in values or ()]
    if not xs:
        return "-"
    mean = sum(xs) / len(xs)
    if len(xs) == 1:
        return f"{mean:.{digits}f}"
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def pearson(x: Iterable[float], y: Iterable[float]) -> float:
    """Pearson's correlation of two equally long series (nan when one of them is constant)."""
    xs, ys = [float(v) for v in x], [float(v) for v in y]
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError(f"pearson: need two series of equal length >= 2, got {len(xs)} and {len(ys)}")
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxy = sum((a - mx) * (b - my) for a, b in zip(xs, ys))
    sxx, syy = sum((a - mx) ** 2 for a in xs), sum((b - my) ** 2 for b in ys)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else math.nan
