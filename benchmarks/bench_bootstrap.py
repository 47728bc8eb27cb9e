"""Benchmark: the vectorised percentile bootstrap (sagkit.evaluation.bootstrap) against a per-resample loop.

What a final test adds to a run: ``run_intervals`` over the four evaluations (single, re-ranked, multi-query,
re-ranked multi-query) of a Market-1501-sized test (3,368 queries; the multi-query evaluations pool them to
750 x 6 cameras at most, taken here as 3,368 too), 2,000 resamples of R1/R5/R10/mAP each. And a 3-seed
interval of one Table 1 row on CUHK01's 972 queries. The loop draws the same resamples (same seed), so both
give the same interval; the difference is printed.

    python benchmarks/bench_bootstrap.py            # Market-sized run intervals + a 3-seed CUHK01 row
    python benchmarks/bench_bootstrap.py --quick    # 500 queries
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sagkit.evaluation.bootstrap import DEFAULT_RESAMPLES, bootstrap_interval, run_intervals  # noqa: E402
from sagkit.evaluation.query_scores import QueryScores  # noqa: E402


def fake_scores(num_queries: int, rng: np.random.Generator) -> QueryScores:
    """Per-query results shaped like a real test: first hits from a geometric law, AP in (0, 1]."""
    first = rng.geometric(0.35, size=num_queries)
    hits = np.stack([(first <= k).astype(np.float64) for k in (1, 5, 10)], axis=1)
    ap = np.clip(1.0 / first + rng.normal(0, 0.05, num_queries), 0.01, 1.0)
    return QueryScores(ap=ap, inp=ap * 0.7, first_hit=first.astype(np.int64), hits=hits,
                       valid=np.ones(num_queries, bool))


def loop_interval(values: np.ndarray, resamples: int, seed: int = 0) -> tuple[float, float]:
    """The same resampling, one resample at a time."""
    values = np.atleast_2d(values)
    num_seeds, num_queries = values.shape
    rng = np.random.default_rng(seed)
    seed_draws = rng.integers(0, num_seeds, size=(resamples, num_seeds))
    query_draws = rng.integers(0, num_queries, size=(resamples, num_queries))
    means = [np.mean([values[s, query_draws[b]].mean() for s in seed_draws[b]]) for b in range(resamples)]
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 queries instead of Market's 3,368")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    num_queries = 500 if args.quick else 3368
    scores = {name: fake_scores(num_queries, rng) for name in ("single", "single_rr", "multi", "multi_rr")}
    intervals, vector_s = timed(lambda: run_intervals(scores))
    loop, loop_s = timed(lambda: {name + metric: loop_interval(scores[name].values(metric), DEFAULT_RESAMPLES)
                                  for name in scores for metric in ("rank1", "rank5", "rank10", "mAP")})
    vector = [v / 100.0 for span in intervals.values() for v in span]
    looped = [v for span in loop.values() for v in span]
    print(f"run intervals, 4 evaluations x 4 metrics, {num_queries} queries, {DEFAULT_RESAMPLES} resamples:")
    print(f"  vectorised {vector_s:.2f} s, loop {loop_s:.2f} s ({loop_s / vector_s:.1f}x), "
          f"max |difference| {max(abs(a - b) for a, b in zip(vector, looped)):.1e}")
    seeds = np.stack([fake_scores(972, rng).values("mAP") for _ in range(3)])
    span, row_s = timed(lambda: bootstrap_interval(seeds))
    (loop_low, loop_high), row_loop_s = timed(lambda: loop_interval(seeds, DEFAULT_RESAMPLES))
    print(f"one Table 1 interval, 3 seeds x 972 queries: vectorised {row_s:.3f} s, loop {row_loop_s:.2f} s, "
          f"max |difference| {max(abs(span[0] - loop_low), abs(span[1] - loop_high)):.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
