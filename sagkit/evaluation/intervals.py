"""Confidence intervals for accuracies measured on a finite set of queries.

Rank-k accuracy is a proportion: k of n queries have a true match in the top k. Its Wilson score
interval is the set of true rates p for which the observed rate lies within z standard errors,
|k/n − p| ≤ z·√(p(1−p)/n). Unlike the normal approximation it stays inside [0, 1] and is sound near 0
and 1. It treats the queries as independent draws and says nothing of the variation between training
seeds or CPUs.
"""
from __future__ import annotations

import math
from statistics import NormalDist


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """(low, high) Wilson score interval, as fractions, for `successes` out of `n` trials."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int (the number of queries); got {n!r}")
    if isinstance(successes, bool) or not isinstance(successes, int) or not 0 <= successes <= n:
        raise ValueError(f"successes must be an int in 0..n={n}; got {successes!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1); got {confidence!r}")
    z = NormalDist().inv_cdf((1.0 + confidence) / 2.0)
    p = successes / n
    scale = 1.0 + z * z / n
    center = (p + z * z / (2 * n)) / scale
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4 * n * n)) / scale
    low = 0.0 if successes == 0 else max(0.0, center - half)  # exactly 0 and 1 at the edges, not rounding
    high = 1.0 if successes == n else min(1.0, center + half)
    return low, high


def rank_interval(percent: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson interval, in percent, of a rank-k accuracy `percent` measured on `n` queries."""
    successes = round(percent * n / 100.0)
    if abs(successes - percent * n / 100.0) > 1e-6 * n:
        raise ValueError(f"{percent}% of {n} queries is not a whole number of queries: give the query count "
                         "the accuracy was measured on")
    low, high = wilson_interval(successes, n, confidence)
    return 100.0 * low, 100.0 * high
