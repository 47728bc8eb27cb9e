"""Wilson score intervals for rank-k accuracies."""
import math

import pytest

from sagkit.evaluation.intervals import rank_interval, wilson_interval


def test_known_value_and_the_defining_equation():
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.23659, abs=1e-5) and high == pytest.approx(0.76341, abs=1e-5)
    z = 1.959963984540054
    for k, n in ((5, 10), (1, 150), (59, 150), (326, 972)):
        for p in wilson_interval(k, n):
            # each end is a true rate p at exactly z standard errors from the observed rate
            assert abs(k / n - p) == pytest.approx(z * math.sqrt(p * (1 - p) / n), rel=1e-9)


def test_edges_stay_inside_zero_and_one_and_narrow_with_n():
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == 1.0
    assert 0.0 < wilson_interval(0, 20)[1] < 0.2
    wide, narrow = wilson_interval(30, 100), wilson_interval(300, 1000)
    assert narrow[0] > wide[0] and narrow[1] < wide[1]
    ninety = wilson_interval(30, 100, confidence=0.9)
    assert ninety[0] > wide[0] and ninety[1] < wide[1]


def test_rank_interval_in_percent_and_bad_inputs():
    low, high = rank_interval(39.333333333333336, 150)  # 59 of 150 queries
    assert (low, high) == pytest.approx(tuple(100 * v for v in wilson_interval(59, 150)))
    with pytest.raises(ValueError, match="whole number of queries"):
        rank_interval(39.5, 150)
    for bad in ((11, 10), (-1, 10), (1, 0), (1.0, 10)):
        with pytest.raises(ValueError, match="successes|n must"):
            wilson_interval(*bad)
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 10, confidence=1.0)
