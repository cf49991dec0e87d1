"""The claims study's statistics against scipy.stats and by hand: paired t-intervals, one-sided tests,
TOST, Holm's step-down, the verdict rule and the claim rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sp

from sslab.claims import stats

A = np.array([0.71, 0.74, 0.69, 0.73, 0.75])
B = np.array([0.66, 0.70, 0.67, 0.66, 0.71])


def test_interval_by_hand():
    """diffs 1, 2, 3: mean 2, sd 1, t_{0.975, 2} = 4.302653 -> half-width 4.302653 / sqrt(3) = 2.484138."""
    iv = stats.interval([1.0, 2.0, 3.0])
    assert (iv.mean, iv.sd, iv.n) == (2.0, 1.0, 3)
    assert iv.low == pytest.approx(2 - 2.484138, abs=1e-6) and iv.high == pytest.approx(2 + 2.484138, abs=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        stats.interval([1.0])


def test_interval_equals_ttest_rel():
    iv = stats.interval(list(A - B))
    ci = sp.ttest_rel(A, B).confidence_interval(0.95)
    assert (iv.low, iv.high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert iv.mean == pytest.approx(float(np.mean(A - B)))
    assert iv.high - iv.mean == pytest.approx(sp.t.ppf(0.975, 4) * np.std(A - B, ddof=1) / math.sqrt(5))


def test_one_sided_p_values_equal_ttest_rel():
    iv = stats.interval(list(A - B))
    assert stats.p_greater(iv) == pytest.approx(sp.ttest_rel(A, B, alternative="greater").pvalue)
    assert stats.p_less(iv) == pytest.approx(sp.ttest_rel(A, B, alternative="less").pvalue)
    d = A - B
    assert stats.p_greater(iv, 0.02) == pytest.approx(sp.ttest_1samp(d, 0.02, alternative="greater").pvalue)


def test_tost_equals_two_one_sided_scipy_tests():
    d = np.array([0.004, -0.006, 0.002, 0.001, -0.003])
    iv = stats.interval(list(d))
    lower = sp.ttest_1samp(d, -0.02, alternative="greater").pvalue
    upper = sp.ttest_1samp(d, 0.02, alternative="less").pvalue
    assert stats.tost(iv, 0.02) == pytest.approx(max(lower, upper))
    assert stats.tost(iv, 0.02) < stats.ALPHA


def test_an_arm_compared_with_itself_is_equivalent():
    """The old rule read "inconclusive" here; identical paired runs differ by exactly 0 on every seed."""
    iv = stats.interval([0.0, 0.0, 0.0])
    assert stats.verdict("equivalence", iv, 0.02) == stats.SUPPORTED
    assert stats.verdict("effect", iv, 0.02) == stats.CONTRADICTED  # no effect, where one was predicted


@pytest.mark.parametrize("diffs, sesoi, verdict", [
    ([0.05, 0.06, 0.07], 0.02, stats.SUPPORTED),            # interval above 0 and beyond the SESOI
    ([0.001, 0.002, 0.0015], 0.02, stats.CONTRADICTED),     # significant, but inside ±SESOI: negligible
    ([-0.05, -0.06, -0.07], 0.02, stats.CONTRADICTED),      # wholly below -SESOI
    ([-0.02, 0.05, 0.01], 0.02, stats.UNDERPOWERED),        # straddles
    ([-0.03, -0.025, -0.01], 0.02, stats.UNDERPOWERED),     # the wrong way, but not beyond -SESOI
])
def test_effect_verdicts(diffs, sesoi, verdict):
    assert stats.verdict("effect", stats.interval(diffs), sesoi) == verdict


@pytest.mark.parametrize("diffs, verdict", [
    ([0.004, -0.006, 0.002, 0.001, -0.003], stats.SUPPORTED),   # TOST passes at ±0.02
    ([0.05, 0.06, 0.055], stats.CONTRADICTED),                  # wholly outside
    ([0.0, 0.03, -0.02], stats.UNDERPOWERED),
])
def test_equivalence_verdicts(diffs, verdict):
    assert stats.verdict("equivalence", stats.interval(diffs), 0.02) == verdict


@pytest.mark.parametrize("diffs, verdict", [
    ([0.03, 0.05, 0.04], stats.SUPPORTED),       # beats
    ([-0.005, -0.01, 0.0], stats.SUPPORTED),     # within the margin, significantly
    ([-0.06, -0.05, -0.055], stats.CONTRADICTED),
    ([-0.04, 0.01, -0.02], stats.UNDERPOWERED),
])
def test_noninferiority_verdicts(diffs, verdict):
    assert stats.verdict("noninferiority", stats.interval(diffs), 0.02) == verdict


def test_a_holm_adjusted_p_can_withhold_support():
    iv = stats.interval([0.05, 0.06, 0.07])
    assert stats.verdict("effect", iv, 0.02, p_adjusted=0.03) == stats.UNDERPOWERED
    assert stats.verdict("effect", iv, 0.02, p_adjusted=0.01) == stats.SUPPORTED


def test_holm_by_hand():
    """p = (0.01, 0.04, 0.03): sorted 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04 -> running max 0.06."""
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5]) == [0.5]
    assert stats.holm([0.4, 0.6]) == pytest.approx([0.8, 0.8])  # capped at 1, monotone


def test_claim_rule():
    S, C, U, N = stats.SUPPORTED, stats.CONTRADICTED, stats.UNDERPOWERED, stats.NOT_TESTED
    assert stats.claim_verdict([S, S]) == S
    assert stats.claim_verdict([S, N]) == S
    assert stats.claim_verdict([S, U, N]) == U
    assert stats.claim_verdict([S, U, C]) == C
    assert stats.claim_verdict([N, N]) == N
    with pytest.raises(ValueError, match="unknown verdict 'holds'"):
        stats.claim_verdict(["holds"])


def test_contrast_by_seed_pairs_only_common_seeds():
    vals = {"a": {0: 0.7, 1: 0.8, 2: 0.9}, "b": {0: 0.5, 2: 0.6, 3: 0.1}}
    assert stats.contrast_by_seed(vals, {"a": 1.0, "b": -1.0}) == pytest.approx({0: 0.2, 2: 0.3})
    assert stats.contrast_by_seed(vals, {"a": 1.0}, offset=0.5) == pytest.approx({0: 0.2, 1: 0.3, 2: 0.4})


def test_bad_kind_and_sesoi():
    iv = stats.interval([1.0, 2.0])
    with pytest.raises(ValueError, match="unknown prediction kind 'bigger'; valid choices: effect"):
        stats.verdict("bigger", iv, 0.1)
    with pytest.raises(ValueError, match="must be >= 0"):
        stats.verdict("effect", iv, -0.1)


def test_pearson_equals_numpy():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=20), rng.normal(size=20)
    assert stats.pearson(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert math.isnan(stats.pearson([1, 1, 1], [1, 2, 3]))
