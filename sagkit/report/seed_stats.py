"""Statistics of one Table 1 configuration over its training seeds: the standard deviation of the seeds'
numbers, a 95% bootstrap interval of their mean (over seeds and queries, :mod:`sagkit.evaluation.bootstrap`),
and the paired comparison with the baseline on the seeds both have (same seed, same queries).

Rows are Table 1's measured items (``{"rank1": .., "mAP": .., "queries": QueryScores}``) keyed by seed; the
interval and the comparison need ``queries`` for every seed involved and are NaN without them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

import numpy as np

from sagkit.evaluation.bootstrap import bootstrap_interval, paired_difference

__all__ = ["COMPARED", "NO_COMPARISON", "seed_statistics", "stat_columns"]

COMPARED = ("rank1", "mAP")  # metrics compared with the baseline (difference, interval, verdict)
NO_COMPARISON = ""  # the verdict of the baseline itself, and of rows without per-query results


def stat_columns(columns: Mapping[str, str]) -> tuple[str, ...]:
    """Names of the columns :func:`seed_statistics` fills, for ``columns`` {metric: column name}."""
    names = ["seeds", "n_seeds"]
    for column in columns.values():
        names += [f"{column}_sd", f"{column}_low", f"{column}_high"]
    for metric in COMPARED:
        column = columns[metric]
        names += [f"d{column}", f"d{column}_low", f"d{column}_high", f"verdict_{column}"]
    return tuple(names)


def _matrix(items: Sequence[Mapping], metric: str) -> np.ndarray | None:
    """S x Q per-query values of ``metric`` (fractions), or None when a seed has no per-query results."""
    if not items or any(item.get("queries") is None for item in items):
        return None
    rows = [item["queries"].values(metric) for item in items]
    if len({len(r) for r in rows}) != 1:
        raise ValueError(f"the seeds of one configuration were scored on different numbers of queries "
                         f"({sorted({len(r) for r in rows})}): evaluate them on the same test split")
    return np.stack(rows)


def seed_statistics(seeds: Mapping[int, Mapping], baseline: Mapping[int, Mapping], columns: Mapping[str, str],
                    label: str = "") -> dict:
    """Columns of :func:`stat_columns` for one configuration: ``seeds`` {seed: row}; ``baseline`` the
    baseline's {seed: row} ({} for the baseline itself: no comparison). Values in percent."""
    out: dict = {"seeds": ",".join(str(s) for s in seeds), "n_seeds": len(seeds)}
    for metric, column in columns.items():
        values = [float(item[metric]) for item in seeds.values() if item.get(metric) is not None]
        out[f"{column}_sd"] = statistics.stdev(values) if len(values) > 1 else math.nan
        matrix = _matrix(list(seeds.values()), metric)
        low, high = bootstrap_interval(matrix) if matrix is not None else (math.nan, math.nan)
        out[f"{column}_low"], out[f"{column}_high"] = 100.0 * low, 100.0 * high
    shared = [s for s in seeds if s in baseline]
    for metric in COMPARED:
        column = columns[metric]
        ours = _matrix([seeds[s] for s in shared], metric)
        theirs = _matrix([baseline[s] for s in shared], metric)
        if ours is None or theirs is None:
            out.update({f"d{column}": math.nan, f"d{column}_low": math.nan, f"d{column}_high": math.nan,
                        f"verdict_{column}": NO_COMPARISON})
            continue
        if ours.shape != theirs.shape:
            raise ValueError(f"{label or 'a configuration'} and the baseline were scored on different numbers of "
                             f"queries ({ours.shape[1]} and {theirs.shape[1]}): compare runs of one test split")
        diff = paired_difference(ours, theirs)
        out.update({f"d{column}": 100.0 * diff.estimate, f"d{column}_low": 100.0 * diff.low,
                    f"d{column}_high": 100.0 * diff.high, f"verdict_{column}": diff.verdict})
    return out
