"""Percentile bootstrap over queries (and seeds) and the paired comparison, checked against direct loops and
constructed cases whose answer is known."""
import numpy as np
import pytest

from sagkit.evaluation.bootstrap import bootstrap_interval, bootstrap_means, paired_difference, run_intervals, verdict
from sagkit.evaluation.query_scores import QueryScores


def _loop_means(values, resamples, seed):
    """The resampling of the module docstring, one resample at a time."""
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    num_seeds, num_queries = values.shape
    rng = np.random.default_rng(seed)
    seed_draws = rng.integers(0, num_seeds, size=(resamples, num_seeds))
    query_draws = rng.integers(0, num_queries, size=(resamples, num_queries))
    return np.array([np.mean([values[s, query_draws[b]].mean() for s in seed_draws[b]]) for b in range(resamples)])


@pytest.mark.parametrize("shape", [(37,), (3, 23)])
def test_vectorised_bootstrap_equals_a_direct_loop(shape):
    values = np.random.default_rng(5).random(shape)
    means = bootstrap_means(values, resamples=1000, seed=3)
    assert means == pytest.approx(_loop_means(values, 1000, 3), abs=1e-12)
    low, high = bootstrap_interval(values, resamples=1000, seed=3)
    loop_low, loop_high = np.percentile(_loop_means(values, 1000, 3), [2.5, 97.5])
    assert (low, high) == pytest.approx((loop_low, loop_high), abs=1e-12)
    assert low < values.mean() < high


def test_blocks_of_draws_do_not_change_the_draws(monkeypatch):
    import sagkit.evaluation.bootstrap as bootstrap

    values = np.random.default_rng(1).random(50)
    whole = bootstrap_means(values, resamples=1000, seed=9)
    monkeypatch.setattr(bootstrap, "_BLOCK", 50 * 7)  # 7 resamples per block, the last one short
    assert bootstrap_means(values, resamples=1000, seed=9) == pytest.approx(whole, abs=1e-12)
    monkeypatch.setattr(bootstrap, "_BLOCK", 1)  # one resample per block
    assert bootstrap_means(values, resamples=1000, seed=9) == pytest.approx(whole, abs=1e-12)


def test_same_seed_same_interval_other_seed_other_interval():
    values = np.random.default_rng(0).integers(0, 2, 150).astype(float)
    assert bootstrap_interval(values, seed=4) == bootstrap_interval(values, seed=4)
    assert bootstrap_interval(values, seed=4) != bootstrap_interval(values, seed=5)


def test_the_interval_of_a_constant_is_a_point():
    assert bootstrap_interval(np.ones(40)) == (1.0, 1.0)
    assert bootstrap_interval(np.zeros((3, 40))) == (0.0, 0.0)
    low, high = bootstrap_interval(np.full(40, 0.37))
    assert low == pytest.approx(0.37, abs=1e-12) and high == pytest.approx(0.37, abs=1e-12)


def test_more_seeds_that_disagree_widen_the_interval():
    rng = np.random.default_rng(2)
    base = rng.random(200)
    agree = np.stack([base, base, base])
    disagree = np.stack([base - 0.2, base, base + 0.2])
    narrow, wide = bootstrap_interval(agree), bootstrap_interval(disagree)
    assert wide[1] - wide[0] > 2 * (narrow[1] - narrow[0])


def test_identical_runs_are_not_distinguishable():
    values = np.random.default_rng(3).random((2, 120))
    diff = paired_difference(values, values.copy())
    assert (diff.estimate, diff.low, diff.high) == (0.0, 0.0, 0.0)
    assert diff.verdict == "not distinguishable"


def test_a_run_better_on_every_query_is_better_and_the_reverse_worse():
    rng = np.random.default_rng(4)
    base = rng.random((3, 80)) * 0.8
    better = base + rng.random((3, 80)) * 0.1 + 0.01  # strictly higher AP on every query of every seed
    up = paired_difference(better, base)
    assert up.verdict == "better" and 0.01 < up.low <= up.estimate <= up.high
    assert paired_difference(base, better).verdict == "worse"


def test_pairing_removes_what_both_runs_share():
    """Two runs differing by a small constant on wildly varying queries: unpaired intervals overlap, the
    paired difference is exact."""
    rng = np.random.default_rng(6)
    base = rng.random(60)
    other = base + 0.02
    low_a, high_a = bootstrap_interval(base)
    low_b, high_b = bootstrap_interval(other)
    assert low_b < high_a  # the two intervals overlap
    diff = paired_difference(other, base)
    assert diff.verdict == "better" and diff.low == pytest.approx(0.02) and diff.high == pytest.approx(0.02)


def test_noise_is_not_distinguishable():
    rng = np.random.default_rng(7)
    a, b = rng.integers(0, 2, 150).astype(float), rng.integers(0, 2, 150).astype(float)
    diff = paired_difference(a, b)
    assert diff.low < 0 < diff.high and diff.verdict == "not distinguishable"


def test_verdict_and_bad_inputs():
    assert verdict(0.1, 2.0) == "better" and verdict(-3.0, -0.5) == "worse"
    assert verdict(-1.0, 1.0) == verdict(0.0, 0.0) == "not distinguishable"
    with pytest.raises(ValueError, match="same shape"):
        paired_difference(np.ones((2, 5)), np.ones((2, 6)))
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_interval([0.5, np.nan])
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_interval([0.5, 1.0], resamples=0)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_interval([0.5, 1.0], confidence=95)
    with pytest.raises(ValueError, match="shape"):
        bootstrap_interval([])


def _scores(ap, hits):
    n = len(ap)
    ap = np.asarray(ap, float)
    return QueryScores(ap=ap, inp=ap / 2, first_hit=np.ones(n, np.int64), hits=np.asarray(hits, float),
                       valid=~np.isnan(ap))


def test_run_intervals_are_named_like_results_json_and_skip_invalid_queries():
    rng = np.random.default_rng(8)
    hits = (rng.random((30, 3)) < [0.4, 0.7, 0.9]).astype(float)
    hits = np.maximum.accumulate(hits, axis=1)
    ap = rng.random(30)
    ap[[3, 7]] = np.nan
    single = _scores(ap, hits)
    out = run_intervals({"single": single, "multi_rr": _scores(rng.random(10), np.ones((10, 3)))})
    assert sorted(out) == sorted(["rank1", "rank5", "rank10", "mAP", "multi_rerank_rank1", "multi_rerank_rank5",
                                  "multi_rerank_rank10", "multi_rerank_mAP"])
    valid = ~np.isnan(ap)
    assert out["mAP"] == pytest.approx([100 * v for v in bootstrap_interval(ap[valid])])
    assert out["rank1"] == pytest.approx([100 * v for v in bootstrap_interval(hits[valid, 0])])
    assert out["multi_rerank_rank1"] == [100.0, 100.0]
    assert single.metrics()["mAP"] == pytest.approx(100 * ap[valid].mean())
    with pytest.raises(ValueError, match="disagree in shape"):
        QueryScores(ap=np.ones(3), inp=np.ones(3), first_hit=np.ones(3, np.int64), hits=np.ones((2, 3)),
                    valid=np.ones(3, bool))
