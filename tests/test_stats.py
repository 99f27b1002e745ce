"""The statistics behind every verdict: bootstrap intervals over seeds and interval comparisons."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from gan_optim_experiments.stats import N_RESAMPLES, SEED, Interval, bootstrap_ci, compare, versus_threshold

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
samples = st.lists(finite, min_size=1, max_size=12)


def _reference(values, n_resamples=N_RESAMPLES, seed=SEED):
    """Resampled means written out one by one, percentiles by sorting (numpy's 'linear' rule)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_resamples, len(values)))
    means = sorted(math.fsum(values[j] for j in row) / len(values) for row in idx)

    def pct(q):
        pos = q / 100 * (len(means) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(means) - 1)
        return means[lo] + (means[hi] - means[lo]) * (pos - lo)

    return pct(2.5), pct(97.5)


def test_matches_written_out_resampling():
    values = [0.31, 0.12, 0.55, 0.47, 0.2, 0.9, 0.05]
    ci = bootstrap_ci(values)
    lo, hi = _reference(values)
    assert ci.mean == pytest.approx(sum(values) / len(values), rel=1e-12)
    assert ci.low == pytest.approx(lo, rel=1e-9) and ci.high == pytest.approx(hi, rel=1e-9)
    assert ci.n == 7
    # another seed gives another (close) interval: the seed is used
    other = bootstrap_ci(values, seed=1)
    assert (other.low, other.high) != (ci.low, ci.high)
    assert other.low == pytest.approx(ci.low, abs=0.02)


def test_exact_bootstrap_distributions():
    # [0, 1]: resampled means are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4
    assert (bootstrap_ci([0.0, 1.0]).low, bootstrap_ci([0.0, 1.0]).high) == (0.0, 1.0)
    # [0, 0, 3]: mean k with k ~ Binomial(3, 1/3); P(k <= 2) = 26/27 < 0.975, so the upper bound is 3
    ci = bootstrap_ci([0.0, 0.0, 3.0])
    assert (ci.mean, ci.low, ci.high) == (1.0, 0.0, 3.0)
    # 20 values 0..19: the interval is close to the normal one, mean +- 1.96 * sd / sqrt(n)
    v = list(range(20))
    ci = bootstrap_ci(v)
    half = 1.96 * np.std(v) / math.sqrt(20)
    assert ci.low == pytest.approx(9.5 - half, abs=0.15) and ci.high == pytest.approx(9.5 + half, abs=0.15)


def test_edge_cases():
    assert bootstrap_ci([2.5]) == Interval(2.5, 2.5, 2.5, 1)
    empty = bootstrap_ci([])
    assert empty.n == 0 and math.isnan(empty.mean)
    nan_dropped = bootstrap_ci([1.0, math.nan, 3.0, math.inf])
    assert nan_dropped.n == 2 and nan_dropped.mean == 2.0
    assert compare(empty, bootstrap_ci([1.0])) == "no difference"
    assert versus_threshold(empty, 0.0) == "undecided"
    with pytest.raises(ValueError):
        bootstrap_ci([1.0], level=1.0)


@settings(deadline=None)
@given(samples)
def test_interval_contains_mean(values):
    ci = bootstrap_ci(values)
    tol = 1e-9 * max(1.0, max(abs(v) for v in values))
    assert ci.low - tol <= ci.mean <= ci.high + tol
    assert min(values) - tol <= ci.low <= ci.high <= max(values) + tol


@settings(deadline=None)
@given(finite, st.integers(min_value=1, max_value=15))
def test_identical_values_give_a_point(value, n):
    ci = bootstrap_ci([value] * n)
    assert ci.low == ci.mean == ci.high == value


@settings(deadline=None)
@given(samples, samples)
def test_compare_is_antisymmetric_and_only_claims_separated_intervals(a_values, b_values):
    a, b = bootstrap_ci(a_values), bootstrap_ci(b_values)
    ab, ba = compare(a, b), compare(b, a)
    assert {ab, ba} in ({"no difference"}, {"higher", "lower"})
    if a.low <= b.high and b.low <= a.high:
        assert ab == "no difference"
    else:
        assert ab == ("higher" if a.mean > b.mean else "lower")


@settings(deadline=None)
@given(samples, samples)
def test_overlapping_intervals_never_differ(a_values, b_values):
    a, b = bootstrap_ci(a_values), bootstrap_ci(b_values)
    assume(a.low <= b.high and b.low <= a.high)
    assert compare(a, b) == compare(b, a) == "no difference"


@settings(deadline=None)
@given(samples, st.floats(min_value=1e-3, max_value=1e6))
def test_shifted_copy_is_higher_when_far_apart(values, gap):
    a = bootstrap_ci(values)
    shift = (max(values) - min(values)) + gap
    b = bootstrap_ci([v + shift for v in values])
    assume(b.low > a.high)  # rounding of huge values may close a tiny gap
    assert compare(b, a) == "higher" and compare(a, b) == "lower"


def test_versus_threshold():
    ci = bootstrap_ci([0.82, 0.85, 0.9, 0.88, 0.84])
    assert versus_threshold(ci, 0.8) == "above"
    assert versus_threshold(ci, 0.95) == "below"
    assert versus_threshold(ci, 0.86) == "undecided"
