"""Percentile bootstrap intervals over queries (and seeds), and paired comparisons of two configurations.

A metric is the mean of per-query values (rank-k hits, AP) over the test queries. ``values`` is S x Q: the
per-query values of S training seeds on the same Q queries (a single run is 1 x Q). One resample draws S
seeds and Q queries with replacement (``numpy.random.default_rng(seed)``: first a B x S array of seed
indices, then B x Q query indices, in that order) and takes the mean over the drawn seeds of the mean over
the drawn queries; the interval is the percentiles of B such means. With one seed it is the usual bootstrap
over queries; with several it also carries the variation between seeds.

A paired comparison resamples the per-query differences ``a - b`` (same seeds, same queries, same draws for
both configurations), so what both runs get right or wrong alike cancels out. Its verdict: ``better`` when
the whole interval of the difference lies above 0, ``worse`` when below, else ``not distinguishable``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from sagkit.evaluation.query_scores import QueryScores

__all__ = ["DEFAULT_CONFIDENCE", "DEFAULT_RESAMPLES", "DEFAULT_SEED", "Difference", "INTERVAL_METRICS",
           "SUMMARY_PREFIXES", "bootstrap_interval", "bootstrap_means", "cmc_band", "interval_method",
           "paired_difference", "run_intervals", "verdict"]

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95
DEFAULT_SEED = 0
INTERVAL_METRICS = ("rank1", "rank5", "rank10", "mAP")
# results.json's key prefix of each evaluation of the retrieval pipeline (``Retrieval.summary``)
SUMMARY_PREFIXES = {"single": "", "single_rr": "rerank_", "multi": "multi_", "multi_rr": "multi_rerank_"}
_BLOCK = 1 << 22  # values gathered at once (elements of the S x block x Q array)


def _as_matrix(values) -> np.ndarray:
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    if matrix.ndim != 2 or matrix.shape[0] < 1 or matrix.shape[1] < 1:
        raise ValueError(f"values must be Q per-query values or S x Q (seeds x queries), at least one of each; "
                         f"got shape {np.shape(values)}")
    if not np.isfinite(matrix).all():
        raise ValueError("values hold NaN or infinity: pass the valid queries only (QueryScores.values)")
    return matrix


def _check(resamples: int, confidence: float) -> None:
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise ValueError(f"resamples must be a positive int (at least 1000 for a 95% interval); got {resamples!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95; got {confidence!r}")


def _stacked_means(stack: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """(M, resamples) bootstrap means of M metrics ``stack`` (M x S x Q), all from the same draws."""
    _, num_seeds, num_queries = stack.shape
    rng = np.random.default_rng(seed)
    seed_draws = rng.integers(0, num_seeds, size=(resamples, num_seeds))
    out = np.empty((stack.shape[0], resamples), dtype=np.float64)
    step = max(1, _BLOCK // (num_queries * num_seeds * stack.shape[0]))
    for start in range(0, resamples, step):
        rows = min(step, resamples - start)
        draws = rng.integers(0, num_queries, size=(rows, num_queries))
        per_seed = stack[:, :, draws].mean(axis=3)  # M x S x rows: each seed's mean over the drawn queries
        picked = seed_draws[start:start + rows].T  # S x rows: the seeds drawn in each resample
        out[:, start:start + rows] = np.take_along_axis(per_seed, picked[None], axis=1).mean(axis=1)
    return out


def bootstrap_means(values, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> np.ndarray:
    """(resamples,) bootstrap means of ``values`` (Q or S x Q), drawn as the module docstring says."""
    _check(resamples, 0.5)
    return _stacked_means(_as_matrix(values)[None], resamples, seed)[0]


def _percentiles(means: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(low), float(high)


def bootstrap_interval(values, resamples: int = DEFAULT_RESAMPLES, confidence: float = DEFAULT_CONFIDENCE,
                       seed: int = DEFAULT_SEED) -> tuple[float, float]:
    """(low, high) percentile interval of the mean of ``values`` (Q or S x Q), in the units of ``values``."""
    _check(resamples, confidence)
    return _percentiles(bootstrap_means(values, resamples, seed), confidence)


def cmc_band(per_query_cmc, resamples: int = DEFAULT_RESAMPLES, confidence: float = DEFAULT_CONFIDENCE,
             seed: int = DEFAULT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(low, high), each (R,): the percentile bootstrap band of a CMC curve over the queries, from the valid
    queries' per-query CMC (Q x R, ``QueryResults.cmc[valid]``), every rank from the same draws."""
    _check(resamples, confidence)
    curves = _as_matrix(np.asarray(per_query_cmc, dtype=np.float64).T)  # R x Q: one row per rank
    means = _stacked_means(curves[:, None, :], resamples, seed)  # R x resamples
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(means, [tail, 100.0 - tail], axis=1)
    return low, high


def verdict(low: float, high: float) -> str:
    """``better`` (interval above 0), ``worse`` (below 0) or ``not distinguishable`` (it holds 0)."""
    if low > 0.0:
        return "better"
    if high < 0.0:
        return "worse"
    return "not distinguishable"


@dataclass(frozen=True)
class Difference:
    """``a - b`` of a metric: the observed ``estimate`` and its interval, in the units of the values."""

    estimate: float
    low: float
    high: float

    @property
    def verdict(self) -> str:
        return verdict(self.low, self.high)


def paired_difference(a, b, resamples: int = DEFAULT_RESAMPLES, confidence: float = DEFAULT_CONFIDENCE,
                      seed: int = DEFAULT_SEED) -> Difference:
    """Paired bootstrap of mean(``a``) - mean(``b``): both Q or S x Q, seed s and query q of one paired with
    those of the other (the same test queries, in the same order)."""
    _check(resamples, confidence)
    a, b = _as_matrix(a), _as_matrix(b)
    if a.shape != b.shape:
        raise ValueError(f"paired values must have the same shape (seeds x queries, same queries in the same "
                         f"order); got {a.shape} and {b.shape}")
    diff = a - b
    low, high = _percentiles(bootstrap_means(diff, resamples, seed), confidence)
    return Difference(float(diff.mean()), low, high)


def interval_method(resamples: int = DEFAULT_RESAMPLES, confidence: float = DEFAULT_CONFIDENCE,
                    seed: int = DEFAULT_SEED) -> dict:
    """How the intervals next to it were computed (stored with them in results.json)."""
    return {"method": "percentile bootstrap over queries", "resamples": resamples, "confidence": confidence,
            "seed": seed}


def run_intervals(scores: Mapping[str, QueryScores], resamples: int = DEFAULT_RESAMPLES,
                  confidence: float = DEFAULT_CONFIDENCE, seed: int = DEFAULT_SEED) -> dict:
    """``{"rank1": [low, high], ..., "rerank_mAP": [...], ...}`` in percent for each evaluation in ``scores``
    (keys of :data:`SUMMARY_PREFIXES`), named like the metrics of results.json; one evaluation's metrics
    share their resamples (each equals :func:`bootstrap_interval` of that metric with the same seed)."""
    _check(resamples, confidence)
    out = {}
    for name, prefix in SUMMARY_PREFIXES.items():
        if name not in scores or not scores[name].valid.any():
            continue
        stack = np.stack([_as_matrix(scores[name].values(metric)) for metric in INTERVAL_METRICS])
        for metric, means in zip(INTERVAL_METRICS, _stacked_means(stack, resamples, seed)):
            low, high = _percentiles(means, confidence)
            out[prefix + metric] = [100.0 * low, 100.0 * high]
    return out
