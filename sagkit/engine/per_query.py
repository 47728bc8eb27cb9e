"""The per-query file of a run, ``<run>/per_query.npz``: :class:`QueryScores` of every evaluation of its final
test (single, single_rr, multi, multi_rr), written atomically with the test, read back without the model.

Arrays are named ``<evaluation>/<field>`` (``single/ap``, ``multi_rr/hits`` ...) beside ``query_pids`` and
``query_camids`` (the single-query records, so that paired comparisons can check that two runs were
scored on the same queries) and ``format`` (:data:`FORMAT_VERSION`). A run that predates the file gets
it once through the retrieval pipeline from its kept features (:func:`ensure_per_query`).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable

import numpy as np

from sagkit.atomic import atomic_write
from sagkit.data import load_dataset
from sagkit.evaluation.bootstrap import SUMMARY_PREFIXES
from sagkit.evaluation.query_scores import QueryScores

from .device import resolve_device
from .feature_cache import FeatureCache
from .retrieval import Retrieval, retrieve_dataset
from .run_dir import CHECKPOINT_BEST, PER_QUERY_FILE, load_model_from_run, read_config

__all__ = ["FORMAT_VERSION", "PER_QUERY_FILE", "RunQueries", "ensure_per_query", "evaluate_run", "read_per_query",
           "retrieval_queries", "write_per_query"]

FORMAT_VERSION = 1
_FIELDS = tuple(f.name for f in fields(QueryScores))


@dataclass
class RunQueries:
    """Per-query results of one run's test: ``scores`` {evaluation: QueryScores}, and the query records' ids."""

    scores: dict
    query_pids: np.ndarray
    query_camids: np.ndarray

    def same_queries(self, other: "RunQueries") -> bool:
        """True when both runs were scored on the same query records, in the same order."""
        return (np.array_equal(self.query_pids, other.query_pids)
                and np.array_equal(self.query_camids, other.query_camids))


def retrieval_queries(retrieval: Retrieval) -> RunQueries:
    """The :class:`RunQueries` of one retrieval pipeline result (the evaluations it computed)."""
    scores = {name: QueryScores.from_results(getattr(retrieval, name).queries) for name in SUMMARY_PREFIXES
              if getattr(retrieval, name) is not None}
    return RunQueries(scores, np.array([r.pid for r in retrieval.query], np.int64),
                      np.array([r.camid for r in retrieval.query], np.int64))


def write_per_query(run_dir: str | Path, queries: RunQueries) -> Path:
    """Write ``<run_dir>/per_query.npz`` atomically (compressed, a few hundred KB for Market-1501)."""
    arrays = {"format": np.array(FORMAT_VERSION), "query_pids": queries.query_pids,
              "query_camids": queries.query_camids}
    for name, scores in queries.scores.items():
        arrays.update({f"{name}/{field}": getattr(scores, field) for field in _FIELDS})

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)

    return atomic_write(Path(run_dir) / PER_QUERY_FILE, write)


def read_per_query(run_dir: str | Path) -> RunQueries:
    """The :class:`RunQueries` in ``<run_dir>/per_query.npz`` (FileNotFoundError when absent, ValueError naming
    the file when it is not one sagkit wrote)."""
    path = Path(run_dir) / PER_QUERY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: the run predates per-query results; "
                                "sagkit.engine.per_query.ensure_per_query computes it from the run's features")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path} is not a readable per-query file ({err}); delete it and it is computed again") from None
    if arrays.get("format") is None or int(arrays["format"]) != FORMAT_VERSION:
        raise ValueError(f"{path} has format {arrays.get('format')!r}, not {FORMAT_VERSION}: delete it and it is "
                         "computed again")
    scores = {}
    for name in SUMMARY_PREFIXES:
        keys = [f"{name}/{field}" for field in _FIELDS]
        if all(key in arrays for key in keys):
            scores[name] = QueryScores(*(arrays[key] for key in keys))
        elif any(key in arrays for key in keys):
            raise ValueError(f"{path} lacks some of {keys}: delete it and it is computed again")
    if "single" not in scores:
        raise ValueError(f"{path} holds no single-query results: delete it and it is computed again")
    return RunQueries(scores, arrays["query_pids"], arrays["query_camids"])


def ensure_per_query(run_dir: str | Path, evaluate: Callable[[], Retrieval]) -> RunQueries:
    """The run's per-query results: read from its file, or (a run that predates it) computed once with
    ``evaluate()`` (the retrieval pipeline on the run's kept test features) and written."""
    if (Path(run_dir) / PER_QUERY_FILE).is_file():
        return read_per_query(run_dir)
    queries = retrieval_queries(evaluate())
    write_per_query(run_dir, queries)
    return queries



def evaluate_run(run_dir: str | Path, device: str = "cpu") -> Retrieval:
    """The final test of a finished run again, as the trainer ran it (its dataset, protocol, re-ranking
    setting, multi-query), from the features kept in the run folder (the model is loaded only if they are not)."""
    config = read_config(run_dir)
    dataset = load_dataset(config.dataset, config.data_root, **config.dataset_options)
    target = resolve_device(device, quiet=True)
    return retrieve_dataset(lambda: load_model_from_run(run_dir, device=target), dataset, config, device=target,
                            cache=FeatureCache(Path(run_dir) / CHECKPOINT_BEST), multi_query=True)
