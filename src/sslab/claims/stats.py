"""The statistics of the claims study: mean ± std over seeds, standard errors and the verdict rule.

A claim predicts a difference ``d`` between arms (``a − b`` of a metric, or a contrast of several
arms). With ``n`` seeds per arm, ``SE(d) = sqrt(Σ_arms c² s²/n)`` (Welch: the arms are independent
runs, their variances are not pooled). The rule, the same for every claim:

* ``holds`` when the predicted difference exceeds twice its standard error, ``d > 2 SE``;
* ``does not hold`` when the opposite difference does, ``d < −2 SE``;
* ``inconclusive`` otherwise.

A claim that two arms *match* (``|a − b|`` small) is an equivalence: it holds when the whole
interval ``d ± 2 SE`` lies inside ``±margin``, does not hold when it lies wholly outside, and is
inconclusive otherwise. "Matches or beats" is the one-sided form: holds when ``d − 2 SE > −margin``,
does not hold when ``d + 2 SE < −margin``. The margin is the study's (``MATCH_MARGIN``), stated in
its report. A composite claim holds when every part holds, does not hold when any part does not,
and is inconclusive otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE)


@dataclass(frozen=True)
class Summary:
    """An arm's metric over its seeds."""

    mean: float
    std: float  # sample standard deviation (n − 1); 0 for one seed
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.3f} ± {self.std:.3f}"


def mean_std(values: Iterable[float] | None, digits: int = 3) -> str:
    """``"mean ± std"`` of the values (the mean alone for one value, ``-`` for none): a table cell."""
    xs = list(values or ())
    if not xs:
        return "-"
    s = summarize(xs)
    return f"{s.mean:.{digits}f} ± {s.std:.{digits}f}" if s.n > 1 else f"{s.mean:.{digits}f}"


def summarize(values: Iterable[float]) -> Summary:
    xs = [float(v) for v in values]
    if not xs:
        raise ValueError("summarize: no values (an arm without a finished run)")
    mean = sum(xs) / len(xs)
    var = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1) if len(xs) > 1 else 0.0
    return Summary(mean, math.sqrt(var), len(xs))


@dataclass(frozen=True)
class Difference:
    """A contrast ``Σ c_arm · mean_arm`` and its standard error."""

    value: float
    se: float

    def __str__(self) -> str:
        return f"{self.value:+.3f} ± {self.se:.3f} (SE)"


def contrast(arms: Mapping[str, Summary], weights: Mapping[str, float]) -> Difference:
    """``Σ w·mean`` and ``sqrt(Σ w² std²/n)`` over the arms named in ``weights``."""
    value = sum(w * arms[a].mean for a, w in weights.items())
    se = math.sqrt(sum(w * w * arms[a].std ** 2 / arms[a].n for a, w in weights.items()))
    return Difference(value, se)


def greater(d: Difference) -> str:
    """The verdict on the prediction ``d > 0``."""
    if d.value > 2 * d.se:
        return HOLDS
    if d.value < -2 * d.se:
        return FAILS
    return INCONCLUSIVE


def matches(d: Difference, margin: float) -> str:
    """The verdict on the prediction ``|d| < margin`` (the 2-SE interval inside or outside ±margin)."""
    lo, hi = d.value - 2 * d.se, d.value + 2 * d.se
    if -margin < lo and hi < margin:
        return HOLDS
    if lo >= margin or hi <= -margin:
        return FAILS
    return INCONCLUSIVE


def at_least(d: Difference, margin: float) -> str:
    """The verdict on "matches or beats": ``d > −margin``."""
    if d.value - 2 * d.se > -margin:
        return HOLDS
    if d.value + 2 * d.se < -margin:
        return FAILS
    return INCONCLUSIVE


def combine(verdicts: Iterable[str]) -> str:
    """A composite claim: every part holds -> holds; any part fails -> does not hold; else inconclusive."""
    vs = list(verdicts)
    if not vs:
        raise ValueError("combine: no verdicts")
    if any(v == FAILS for v in vs):
        return FAILS
    return HOLDS if all(v == HOLDS for v in vs) else INCONCLUSIVE


def pearson(x: Iterable[float], y: Iterable[float]) -> float:
    """Pearson's correlation of two equally long series (nan when one of them is constant)."""
    xs, ys = [float(v) for v in x], [float(v) for v in y]
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError(f"pearson: need two series of equal length >= 2, got {len(xs)} and {len(ys)}")
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxy = sum((a - mx) * (b - my) for a, b in zip(xs, ys))
    sxx, syy = sum((a - mx) ** 2 for a in xs), sum((b - my) ** 2 for b in ys)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else math.nan
