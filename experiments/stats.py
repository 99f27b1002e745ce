"""Statistics over seeds: mean with a percentile-bootstrap 95% interval, and interval comparisons.

Every claim of ``gan-optim reproduce`` reports a quantity per seed, summarises
it as the mean over seeds with a percentile-bootstrap interval, and claims a
difference between two settings only when their intervals do not overlap.

The bootstrap: ``N_RESAMPLES`` (10 000) resamples of the seeds with
replacement, drawn from ``numpy.random.default_rng(SEED)`` (seed 0), so the
same values always give the same interval; the interval is the 2.5th and
97.5th percentiles (numpy's default linear interpolation) of the resampled
means. With few seeds the percentile interval is narrower than the true
coverage would need (it cannot extend beyond the observed range), which makes
non-overlap a lenient test at 5 seeds; we state it rather than correct it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["METRIC_TOLERANCE", "MODES_TOLERANCE", "SHARE_TOLERANCE", "metric_tolerance", "ALPHA", "LEVEL", "NO_DIFFERENCE", "N_RESAMPLES", "RULE_TEXT", "SEED", "Comparison", "Interval", "bootstrap_ci",
           "compare", "decide", "detectable_effect", "holm", "mean_difference", "min_rank_sum_p", "rank_sum_test",
           "sign_test", "versus_threshold"]

N_RESAMPLES = 10_000
SEED = 0
LEVEL = 0.95
#: per-seed values: a sequence of numbers or a 1-d array
Values = Sequence[float] | npt.NDArray[np.float64]


@dataclass(frozen=True)
class Interval:
    """Mean over seeds and its bootstrap interval ``[low, high]``; ``n`` finite values went in."""

    mean: float
    low: float
    high: float
    n: int

    def overlaps(self, other: "Interval") -> bool:
        """Whether the two closed intervals share a point (``False`` if either is empty)."""
        if self.n == 0 or other.n == 0:
            return False
        return self.low <= other.high and other.low <= self.high


def bootstrap_ci(values: Sequence[float], *, n_resamples: int = N_RESAMPLES, seed: int = SEED,
                 level: float = LEVEL) -> Interval:
    """Mean of the finite ``values`` and its percentile-bootstrap interval.

    Non-finite values (NaN, inf) are dropped and not counted in ``n``. No
    value: mean and bounds are NaN. One value: the interval is that point.
    """
    if not 0 < level < 1:
        raise ValueError(f"Invalid level: {level} (must be in (0, 1))")
    if n_resamples < 1:
        raise ValueError(f"Invalid n_resamples: {n_resamples} (must be >= 1)")
    x = np.asarray([float(v) for v in values], dtype=np.float64)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(np.mean(x))
    if n == 1 or bool(np.all(x == x[0])):
        return Interval(float(x[0]), float(x[0]), float(x[0]), n)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, n, size=(n_resamples, n))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(mean, float(low), float(high), n)


def compare(a: Interval, b: Interval) -> str:
    """``"higher"`` if ``a``'s interval lies wholly above ``b``'s, ``"lower"`` if wholly below, else
    ``"no difference"`` (overlapping intervals, or an empty one)."""
    if a.n == 0 or b.n == 0 or a.overlaps(b):
        return "no difference"
    return "higher" if a.low > b.high else "lower"


def versus_threshold(a: Interval, threshold: float) -> str:
    """``"above"`` if the whole interval is above ``threshold``, ``"below"`` if wholly below, else
    ``"undecided"`` (the interval contains the threshold, or is empty)."""
    if a.n == 0:
        return "undecided"
    if a.low > threshold:
        return "above"
    if a.high < threshold:
        return "below"
    return "undecided"


# ---------------------------------------------------------------------------------------------------------------
# The verdict rule: an exact rank test per comparison, Holm within a claim, an effect size with its interval and a
# minimum effect.
# ---------------------------------------------------------------------------------------------------------------

#: family-wise error rate of a claim's comparisons (Holm)
ALPHA = 0.05
#: the outcome of a comparison that the rule does not call a difference
NO_DIFFERENCE = "no difference shown"

RULE_TEXT = (
    "Each comparison of two settings is an exact two-sided Wilcoxon–Mann–Whitney rank-sum test over seeds (the "
    "permutation distribution of the rank sum, ties given mid-ranks, computed exactly: no normal approximation); "
    "a comparison with a fixed value (a threshold) is an exact two-sided sign test of the seeds against it. The "
    "p-values of one claim (or one summary) are Holm-corrected together (family-wise α = 0.05). The effect is "
    "the difference of the means over seeds (a − b, or a − threshold) with a percentile-bootstrap 95% interval "
    "(each group resampled on its own, 10 000 resamples, fixed random seed). A comparison says **lower** or "
    "**higher** only when the corrected p-value is below α *and* the effect is at least the stated minimum "
    "effect (one evaluation step for times to target, a stated tolerance for metrics); otherwise it says "
    "**no difference shown**. Where a seed count is too small for any difference to pass, the smallest "
    "detectable effect is infinite and is reported so.")


#: minimum effects of the rule for metrics: a tolerance relative to the reference setting's mean; mode counts
#: and shares of samples have absolute ones
METRIC_TOLERANCE = 0.05
MODES_TOLERANCE = 1.0
SHARE_TOLERANCE = 0.05
#: metrics counted in modes, and metrics that are shares in [0, 1]
MODE_METRICS = ("coverage", "modes", "modes_veegan", "modes_standard", "modes_ours")
SHARE_METRICS = ("hq", "share_min", "share_max")


def metric_tolerance(metric: str, reference: Values) -> float:
    """The minimum effect for ``metric``: one mode for mode counts, 0.05 for shares, else
    :data:`METRIC_TOLERANCE` times the magnitude of the reference setting's mean (0 when it has no value)."""
    if metric in MODE_METRICS:
        return MODES_TOLERANCE
    if metric in SHARE_METRICS:
        return SHARE_TOLERANCE
    x = _finite(reference)
    return METRIC_TOLERANCE * abs(float(x.mean())) if len(x) else 0.0


def rank_sum_test(a: Values, b: Values) -> float:
    """Two-sided exact p-value of the Wilcoxon–Mann–Whitney rank-sum test of ``a`` against ``b``.

    The statistic is the sum of ``a``'s mid-ranks in the pooled sample. Its null distribution is the
    permutation distribution: every way of choosing ``len(a)`` of the pooled values is equally likely,
    ties included (the conditional exact test). It is computed by counting subsets per rank sum (a
    dynamic programme over doubled mid-ranks, which are integers), so it is exact for any sizes.
    Two-sided: ``min(1, 2 * min(P(W >= w), P(W <= w)))``, the convention of
    ``scipy.stats.permutation_test``. Non-finite values are dropped; an empty side gives NaN.
    """
    x = _finite(a)
    y = _finite(b)
    n, m = len(x), len(y)
    if n == 0 or m == 0:
        return math.nan
    pooled = np.concatenate([x, y])
    ranks2 = _doubled_midranks(pooled)  # integers: 2 x mid-rank
    observed = int(ranks2[:n].sum())
    # ways[k, s]: subsets of size k of the values seen so far whose doubled ranks sum to s (floats: exact up to
    # 2**53, far above C(N, n) for any seed count used here; Python ints would be exact but slow)
    total = int(ranks2.sum())
    ways = np.zeros((n + 1, total + 1), dtype=np.float64)
    ways[0, 0] = 1.0
    for r in ranks2:
        r = int(r)
        ways[1:, r:] += ways[:-1, :total + 1 - r].copy()
    dist = ways[n]
    count = dist.sum()
    upper = dist[observed:].sum() / count
    lower = dist[:observed + 1].sum() / count
    return float(min(1.0, 2.0 * min(upper, lower)))


def sign_test(values: Values, threshold: float) -> float:
    """Two-sided exact sign test of the finite ``values`` against ``threshold``: seeds above vs below it
    (seeds equal to it are dropped), ``min(1, 2 * P(Binomial(k, 1/2) <= min(above, below)))``. NaN with no
    seed off the threshold."""
    x = _finite(values)
    above, below = int((x > threshold).sum()), int((x < threshold).sum())
    k = above + below
    if k == 0:
        return math.nan
    tail = sum(math.comb(k, i) for i in range(min(above, below) + 1)) / 2.0 ** k
    return float(min(1.0, 2.0 * tail))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order.

    Sorted ascending, the i-th (from 0) of m finite p-values becomes ``min(1, max_{j <= i} (m - j) p_(j))``.
    NaN p-values (comparisons that could not be tested) stay NaN and do not count in m.
    """
    p = [float(v) for v in pvalues]
    idx = sorted((i for i, v in enumerate(p) if not math.isnan(v)), key=lambda i: p[i])
    m = len(idx)
    out = [math.nan] * len(p)
    running = 0.0
    for rank, i in enumerate(idx):
        if not 0.0 <= p[i] <= 1.0:
            raise ValueError(f"Invalid pvalues: {p[i]} is not in [0, 1]")
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def mean_difference(a: Values, b: Values | float, *, n_resamples: int = N_RESAMPLES,
                    seed: int = SEED, level: float = LEVEL) -> Interval:
    """``mean(a) - mean(b)`` (``b`` a sequence, or a number: a threshold) with a percentile-bootstrap interval,
    each sequence resampled with replacement on its own. ``n`` is ``len(a) + len(b)`` finite values (``len(a)``
    against a number). NaN when a side is empty."""
    x = _finite(a)
    y = np.asarray([float(b)]) if isinstance(b, (int, float)) else _finite(b)
    fixed = isinstance(b, (int, float))
    n = len(x) + (0 if fixed else len(y))
    if len(x) == 0 or len(y) == 0:
        return Interval(math.nan, math.nan, math.nan, n)
    diff = float(x.mean() - y.mean())
    rng = np.random.default_rng(seed)
    mx = x[rng.integers(0, len(x), size=(n_resamples, len(x)))].mean(axis=1)
    my = y[rng.integers(0, len(y), size=(n_resamples, len(y)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(mx - my, [tail, 100 - tail])
    return Interval(diff, float(min(low, diff)), float(max(high, diff)), n)


def min_rank_sum_p(n_a: int, n_b: int) -> float:
    """The smallest two-sided p-value the rank-sum test can give with ``n_a`` and ``n_b`` seeds (no ties):
    ``2 / C(n_a + n_b, n_a)``."""
    if n_a < 1 or n_b < 1:
        return math.nan
    return min(1.0, 2.0 / math.comb(n_a + n_b, n_a))


def detectable_effect(sd: float, n_a: int, n_b: int | None = None, *, alpha: float = ALPHA,
                      power: float = 0.8) -> float:
    """The smallest difference of means that ``n_a`` vs ``n_b`` seeds (``n_b=None``: against a threshold) could
    have shown, at level ``alpha`` with probability ``power``, for seed-to-seed standard deviation ``sd``.

    Normal approximation with the rank test's efficiency 3/π relative to the t-test (sign test: 2/π):
    ``(z_{1-α/2} + z_power) * sd * sqrt(1/n_a + 1/n_b) / sqrt(efficiency)``. Infinite when no outcome of
    the exact test can reach ``alpha`` with these seed counts (e.g. 3 vs 3 seeds: the smallest p is 0.1).
    """
    from statistics import NormalDist

    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError(f"Invalid alpha/power: {alpha}, {power}")
    if n_b is None:
        smallest = min(1.0, 2.0 * 0.5 ** n_a) if n_a >= 1 else math.nan
        scale, efficiency = math.sqrt(1.0 / max(n_a, 1)), 2.0 / math.pi
    else:
        smallest = min_rank_sum_p(n_a, n_b)
        scale, efficiency = math.sqrt(1.0 / max(n_a, 1) + 1.0 / max(n_b, 1)), 3.0 / math.pi
    if math.isnan(smallest) or smallest >= alpha:
        return math.inf
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    return float(z * sd * scale / math.sqrt(efficiency))


@dataclass(frozen=True)
class Comparison:
    """One tested comparison: ``a`` against ``b`` (another group, or a threshold when ``b_n == 0``).

    ``effect`` is the interval of ``mean(a) - mean(b)``; ``p`` the exact two-sided p-value, ``p_holm`` after
    Holm within its family; ``outcome`` ``"lower"``, ``"higher"`` or :data:`NO_DIFFERENCE`;
    ``detectable`` the smallest difference of means these seed counts could have shown (see
    :func:`detectable_effect`)."""

    a_n: int
    b_n: int
    effect: Interval
    p: float
    p_holm: float
    min_effect: float
    outcome: str
    detectable: float


def _pooled_sd(x: np.ndarray, y: np.ndarray | None) -> float:
    parts = [v for v in (x, y) if v is not None and len(v) > 1]
    if not parts:
        return math.nan
    ss = sum(float(((v - v.mean()) ** 2).sum()) for v in parts)
    dof = sum(len(v) - 1 for v in parts)
    return math.sqrt(ss / dof)


def decide(tests: Sequence[tuple[Values, Values | float, float]], *, alpha: float = ALPHA
           ) -> list[Comparison]:
    """The verdict rule over one family of comparisons (one claim, or one summary).

    Each test is ``(a, b, min_effect)``: ``b`` a sequence (rank-sum test) or a number (sign test against a
    threshold). p-values are Holm-corrected over the family; a comparison is ``"lower"``/``"higher"``
    (``a`` than ``b``) only when its corrected p-value is below ``alpha`` and ``|mean(a) - mean(b)| >=
    min_effect``, else :data:`NO_DIFFERENCE`.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"Invalid alpha: {alpha} (must be in (0, 1))")
    raw, effects, sizes, sds = [], [], [], []
    for a, b, min_effect in tests:
        if not (isinstance(min_effect, (int, float)) and min_effect >= 0 and math.isfinite(min_effect)):
            raise ValueError(f"Invalid min_effect: {min_effect} (must be a finite number >= 0)")
        x = _finite(a)
        if isinstance(b, (int, float)):
            raw.append(sign_test(x, float(b)))
            sizes.append((len(x), 0))
            sds.append(_pooled_sd(x, None))
        else:
            y = _finite(b)
            raw.append(rank_sum_test(x, y))
            sizes.append((len(x), len(y)))
            sds.append(_pooled_sd(x, y))
        effects.append(mean_difference(x, b if isinstance(b, (int, float)) else _finite(b)))
    adjusted = holm(raw)
    out = []
    for (a, b, min_effect), p, p_adj, eff, (na, nb), sd in zip(tests, raw, adjusted, effects, sizes, sds):
        shown = (not math.isnan(p_adj)) and p_adj < alpha and abs(eff.mean) >= min_effect and eff.mean != 0
        outcome = ("lower" if eff.mean < 0 else "higher") if shown else NO_DIFFERENCE
        m = max(1, sum(not math.isnan(v) for v in raw))
        # the first Holm step is the strictest: alpha / m
        det = detectable_effect(sd if math.isfinite(sd) else 0.0, na, nb if nb else None, alpha=alpha / m)
        out.append(Comparison(na, nb, eff, p, p_adj, float(min_effect), outcome, max(det, float(min_effect))))
    return out


def _finite(values: Values) -> np.ndarray:
    x = np.asarray([float(v) for v in values], dtype=np.float64)
    return x[np.isfinite(x)]


def _doubled_midranks(x: np.ndarray) -> np.ndarray:
    """2 x the mid-ranks (1-based) of ``x``: integers."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    ranks2 = np.empty(len(x), dtype=np.int64)
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks2[order[i:j + 1]] = (i + 1) + (j + 1)  # 2 x mean of ranks i+1..j+1
        i = j + 1
    return ranks2
