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

__all__ = ["LEVEL", "N_RESAMPLES", "SEED", "Interval", "bootstrap_ci", "compare", "versus_threshold"]

N_RESAMPLES = 10_000
SEED = 0
LEVEL = 0.95


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
