"""The verdict rule of every claim and every compare summary: exact rank-sum and sign tests, Holm, effect sizes.

References are independent of the code under test: scipy's exact permutation test (every split enumerated),
scipy's exact Mann–Whitney test (no ties), scipy's binomial test, and small cases worked out by hand.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st
from scipy import stats as sps

from gan_optim_experiments.stats import (NO_DIFFERENCE, decide, detectable_effect, holm, mean_difference,
                                         min_rank_sum_p, rank_sum_test, sign_test)

# few distinct values, so that ties are common
tied = st.lists(st.integers(min_value=0, max_value=4).map(float), min_size=2, max_size=6)
finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)


def _permutation_reference(a, b):
    """scipy.stats.permutation_test over every split (n_resamples=inf), statistic: a's rank sum."""
    def stat(x, y, axis):
        pooled = np.concatenate([x, y], axis=axis)
        return sps.rankdata(pooled, axis=axis)[..., :x.shape[axis]].sum(axis=axis)

    res = sps.permutation_test((np.asarray(a, float), np.asarray(b, float)), stat, permutation_type="independent",
                               n_resamples=np.inf, vectorized=True, alternative="two-sided")
    return float(res.pvalue)


def _enumerated_reference(a, b):
    """Every choice of len(a) positions from the pooled values, mid-ranks by hand, two-sided as 2 x min tail."""
    pooled = list(a) + list(b)
    ranks = [sum(v < x for v in pooled) + (sum(v == x for v in pooled) + 1) / 2 for x in pooled]
    observed = sum(ranks[: len(a)])
    sums = [sum(ranks[i] for i in c) for c in itertools.combinations(range(len(pooled)), len(a))]
    upper = sum(s >= observed - 1e-9 for s in sums) / len(sums)
    lower = sum(s <= observed + 1e-9 for s in sums) / len(sums)
    return min(1.0, 2 * min(upper, lower))


@settings(deadline=None, max_examples=60)
@given(tied, tied)
def test_rank_sum_equals_exact_permutation_test_with_ties(a, b):
    assume(len(a) + len(b) <= 10)
    p = rank_sum_test(a, b)
    assert p == pytest.approx(_permutation_reference(a, b), rel=1e-9, abs=1e-12)
    assert p == pytest.approx(_enumerated_reference(a, b), rel=1e-9, abs=1e-12)


@settings(deadline=None, max_examples=40)
@given(st.lists(finite, min_size=2, max_size=9, unique=True), st.lists(finite, min_size=2, max_size=9, unique=True))
def test_rank_sum_equals_exact_mann_whitney_without_ties(a, b):
    assume(not set(a) & set(b))
    ref = sps.mannwhitneyu(a, b, method="exact", alternative="two-sided").pvalue
    assert rank_sum_test(a, b) == pytest.approx(ref, rel=1e-9, abs=1e-12)


def test_rank_sum_hand_worked():
    # 3 vs 3, a all below b: a's ranks {1,2,3} is 1 of C(6,3) = 20 splits; two-sided 2/20
    assert rank_sum_test([1, 2, 3], [4, 5, 6]) == pytest.approx(0.1)
    # 300 on 5 seeds vs {300, 300, 400, 400, 400}: mid-ranks 3 (x7 values 300) and 9 (x3 values 400); a's
    # sum is 15 (the smallest possible) in C(7,5) = 21 of C(10,5) = 252 splits: 2 x 21/252 = 1/6
    assert rank_sum_test([300] * 5, [300, 300, 400, 400, 400]) == pytest.approx(1 / 6)
    # all equal: no evidence
    assert rank_sum_test([1, 1], [1, 1, 1]) == 1.0
    assert math.isnan(rank_sum_test([], [1.0]))
    # non-finite values are dropped
    assert rank_sum_test([1, 2, 3, math.nan], [4, 5, 6]) == pytest.approx(0.1)


def test_rank_sum_at_ten_seeds_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=10), rng.normal(size=10) + 1.5
    assert rank_sum_test(a, b) == pytest.approx(sps.mannwhitneyu(a, b, method="exact").pvalue, rel=1e-9)
    # rounded to one evaluation step (ties), against the exact permutation distribution by enumeration
    ra, rb = np.round(a), np.round(b)
    assert rank_sum_test(ra, rb) == pytest.approx(_permutation_reference(ra, rb), rel=1e-9)


@settings(deadline=None, max_examples=60)
@given(st.lists(finite, min_size=0, max_size=15), finite)
def test_sign_test_equals_binomial_test(values, threshold):
    above = sum(v > threshold for v in values)
    below = sum(v < threshold for v in values)
    p = sign_test(values, threshold)
    if above + below == 0:
        assert math.isnan(p)
    else:
        assert p == pytest.approx(sps.binomtest(above, above + below, 0.5).pvalue, rel=1e-9)


def test_holm_hand_worked():
    # sorted 0.01, 0.03, 0.04, 0.5 -> 4 x 0.01, 3 x 0.03, max(0.09, 2 x 0.04), max(0.09, 0.5)
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([0.2]) == [0.2]
    assert holm([0.6, 0.6]) == [1.0, 1.0]
    out = holm([math.nan, 0.01, 0.02])  # NaN does not count in m
    assert math.isnan(out[0]) and out[1:] == pytest.approx([0.02, 0.02])
    with pytest.raises(ValueError, match="pvalues"):
        holm([1.5])


@settings(deadline=None, max_examples=100)
@given(st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=12))
def test_holm_properties(p):
    adj = holm(p)
    m = len(p)
    for raw, a in zip(p, adj):
        assert raw <= a + 1e-15 <= 1 + 1e-15
        assert a <= min(1.0, m * raw) + 1e-12  # never above Bonferroni
    # order-preserving: a smaller raw p-value never gets a larger adjusted one
    for (r1, a1), (r2, a2) in itertools.combinations(zip(p, adj), 2):
        if r1 < r2:
            assert a1 <= a2 + 1e-15
    # the smallest adjusted p-value is m x the smallest raw one (Bonferroni's first step)
    assert min(adj) == pytest.approx(min(1.0, m * min(p)))


@settings(deadline=None, max_examples=40)
@given(st.lists(finite, min_size=1, max_size=8), st.lists(finite, min_size=1, max_size=8))
def test_mean_difference_interval_contains_the_difference(a, b):
    d = mean_difference(a, b)
    assert d.mean == pytest.approx(np.mean(a) - np.mean(b), abs=1e-9)
    assert d.low <= d.mean <= d.high
    # the interval stays within the extreme resampled differences
    assert d.low >= min(a) - max(b) - 1e-9 and d.high <= max(a) - min(b) + 1e-9
    t = mean_difference(a, 0.5)
    assert t.mean == pytest.approx(np.mean(a) - 0.5, abs=1e-9) and t.n == len(a)


def test_decide_needs_both_the_corrected_test_and_the_minimum_effect():
    fast, slow = [100.0] * 10, [300.0] * 10  # p = 2 / C(20, 10)
    (c,) = decide([(fast, slow, 100.0)])
    assert c.outcome == "lower" and c.p == pytest.approx(2 / math.comb(20, 10)) and c.effect.mean == -200
    (c,) = decide([(fast, slow, 250.0)])  # significant, but below the minimum effect
    assert c.outcome == NO_DIFFERENCE
    (c,) = decide([(slow, fast, 0.0)])
    assert c.outcome == "higher"
    # 3 vs 3 seeds can never pass: smallest p 0.1
    (c,) = decide([([1.0, 2, 3], [10.0, 11, 12], 0.0)])
    assert c.outcome == NO_DIFFERENCE and c.p == pytest.approx(0.1) and c.detectable == math.inf
    # Holm: 5 vs 5 seeds fully separated (p = 2/252 = 0.0079) passes alone, not among 7 such tests
    a, b = [1.0] * 5, [2.0] * 5
    assert decide([(a, b, 0.0)])[0].outcome == "lower"
    fam = decide([(a, b, 0.0)] * 7)
    assert all(c.outcome == NO_DIFFERENCE for c in fam)
    assert fam[0].p_holm == pytest.approx(7 * 2 / 252)
    # a threshold: 10 of 10 seeds above is p = 2/1024
    (c,) = decide([([0.9] * 10, 0.8, 0.05)])
    assert c.outcome == "higher" and c.p == pytest.approx(2 / 1024) and c.b_n == 0
    with pytest.raises(ValueError, match="min_effect"):
        decide([(a, b, -1.0)])
    with pytest.raises(ValueError, match="alpha"):
        decide([(a, b, 0.0)], alpha=0.0)


@settings(deadline=None, max_examples=60)
@given(st.lists(finite, min_size=1, max_size=7), st.lists(finite, min_size=1, max_size=7),
       st.floats(min_value=0, max_value=100))
def test_decide_is_symmetric_and_never_calls_a_difference_below_the_minimum(a, b, min_effect):
    (ab,) = decide([(a, b, min_effect)])
    (ba,) = decide([(b, a, min_effect)])
    assert ab.p == pytest.approx(ba.p)
    flip = {"lower": "higher", "higher": "lower", NO_DIFFERENCE: NO_DIFFERENCE}
    if abs(abs(ab.effect.mean) - min_effect) > 1e-9:
        assert ba.outcome == flip[ab.outcome]
    if ab.outcome != NO_DIFFERENCE:
        assert abs(ab.effect.mean) >= min_effect and ab.p_holm < 0.05
        assert (ab.outcome == "lower") == (np.mean(a) < np.mean(b))


def test_detectable_effect():
    assert min_rank_sum_p(3, 3) == pytest.approx(0.1)
    assert detectable_effect(1.0, 3, 3) == math.inf
    assert detectable_effect(1.0, 4, None) == math.inf  # sign test on 4 seeds: smallest p 0.125
    # 10 vs 10, sd 1: (1.96 + 0.8416) * sqrt(0.2) / sqrt(3/pi)
    ref = (1.959964 + 0.841621) * math.sqrt(0.2) / math.sqrt(3 / math.pi)
    assert detectable_effect(1.0, 10, 10) == pytest.approx(ref, rel=1e-5)
    assert detectable_effect(2.0, 10, 10) == pytest.approx(2 * ref, rel=1e-5)
    assert detectable_effect(1.0, 20, 20) < detectable_effect(1.0, 10, 10)
