"""What one evaluation leaves per query, small enough to keep with every run: AP, mINP, first-hit rank and
the rank-1/5/10 hit values, so that intervals and paired comparisons never need the model or features again.

``QueryScores.values(metric)`` gives the per-query values (fractions) whose mean over the valid queries is
the run's metric; :meth:`QueryScores.metrics` gives those means in percent, equal to ``QueryResults.metrics``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sagkit.evaluation.metrics import QueryResults

__all__ = ["HIT_RANKS", "METRIC_NAMES", "QueryScores"]

HIT_RANKS = (1, 5, 10)
METRIC_NAMES = ("rank1", "rank5", "rank10", "mAP", "mINP")


@dataclass
class QueryScores:
    """Per-query results of one evaluation (Q queries): ``ap``/``inp`` (Q float64, NaN where the query has no
    valid match), ``first_hit`` (Q int64, 1-based, 0 when none), ``hits`` (Q x 3 float64: share of the
    protocol's draws with a true match within rank 1, 5, 10; 0/1 under the Market rule), ``valid`` (Q bool)."""

    ap: np.ndarray
    inp: np.ndarray
    first_hit: np.ndarray
    hits: np.ndarray
    valid: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.ap)
        shapes = {"inp": self.inp.shape, "first_hit": self.first_hit.shape, "valid": self.valid.shape,
                  "hits": self.hits.shape}
        expected = {"inp": (n,), "first_hit": (n,), "valid": (n,), "hits": (n, len(HIT_RANKS))}
        bad = [f"{k} {shapes[k]} (expected {expected[k]})" for k in shapes if shapes[k] != expected[k]]
        if bad:
            raise ValueError(f"per-query arrays of {n} queries disagree in shape: {', '.join(bad)}")

    def __len__(self) -> int:
        return int(self.ap.shape[0])

    @classmethod
    def from_results(cls, queries: QueryResults) -> "QueryScores":
        """The kept part of :class:`QueryResults` (its CMC columns at ranks 1, 5, 10, or the last rank)."""
        columns = [min(k, queries.cmc.shape[1]) - 1 for k in HIT_RANKS]
        return cls(ap=np.asarray(queries.ap, np.float64), inp=np.asarray(queries.inp, np.float64),
                   first_hit=np.asarray(queries.first_hit, np.int64),
                   hits=np.asarray(queries.cmc[:, columns], np.float64), valid=np.asarray(queries.valid, bool))

    def values(self, metric: str) -> np.ndarray:
        """Per-query values (fractions) of ``metric`` (rank1, rank5, rank10, mAP, mINP) over the valid queries."""
        if metric == "mAP":
            column = self.ap
        elif metric == "mINP":
            column = self.inp
        elif metric in ("rank1", "rank5", "rank10"):
            column = self.hits[:, HIT_RANKS.index(int(metric[4:]))]
        else:
            raise ValueError(f"unknown metric {metric!r}: use one of {', '.join(METRIC_NAMES)}")
        return column[self.valid]

    def metrics(self) -> dict:
        """``{rank1, rank5, rank10, mAP, mINP}`` in percent: the run's reported numbers."""
        return {name: 100.0 * float(self.values(name).mean()) for name in METRIC_NAMES}
