"""The per-query file of a run, ``<run>/per_query.npz``: :class:`QueryScores` of every evaluation of its final
test (single, single_rr, multi, multi_rr), written atomically with the test, read back without the model.

Arrays are named ``<evaluation>/<field>`` (``single/ap``, ``multi_rr/hits`` ...) beside ``query_pids`` and
``query_camids`` (the single-query records, so that paired comparisons can check that two runs were
scored on the same queries), ``run_key`` and ``run_name`` (the run it belongs to) and ``format``
(:data:`FORMAT_VERSION`). A run that predates the file gets it once through the retrieval pipeline from its
kept features (:func:`ensure_per_query`).

Reading checks that the file belongs to the folder it sits in: its ``run_key`` must be the folder's (from
``results.json``, else ``config.json``). A format-1 file (written before the identity was kept) is accepted
only when its single-query metrics and query count equal those of the folder's ``results.json``: a file
copied from another run is refused by name, never read as this run's intervals or paired test.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable

import numpy as np

from sagkit.atomic import atomic_write
from sagkit.evaluation.bootstrap import SUMMARY_PREFIXES
from sagkit.evaluation.query_scores import QueryScores

from sagkit.engine.retrieval import Retrieval
from sagkit.runs.folder import CONFIG_FILE, PER_QUERY_FILE, read_config
from sagkit.runs.record import RESULTS_FILE, read_results

__all__ = ["FORMAT_VERSION", "PER_QUERY_FILE", "RunQueries", "ensure_per_query", "read_per_query",
           "retrieval_queries", "write_per_query"]

FORMAT_VERSION = 2
_ANONYMOUS_FORMAT = 1  # the format before run_key/run_name were kept: checked against results.json instead
_OLD_TOLERANCE = 1e-4  # percent: the kept runs' mAP differs from their results.json by up to 1.4e-5
_FIELDS = tuple(f.name for f in fields(QueryScores))


@dataclass
class RunQueries:
    """Per-query results of one run's test: ``scores`` {evaluation: QueryScores}, the query records' ids, and
    the ``run_key`` and ``run_name`` of the run they belong to (None in a format-1 file)."""

    scores: dict
    query_pids: np.ndarray
    query_camids: np.ndarray
    run_key: str | None = None
    run_name: str | None = None

    def same_queries(self, other: "RunQueries") -> bool:
        """True when both runs were scored on the same query records, in the same order."""
        return (np.array_equal(self.query_pids, other.query_pids)
                and np.array_equal(self.query_camids, other.query_camids))


def retrieval_queries(retrieval: Retrieval, config=None) -> RunQueries:
    """The :class:`RunQueries` of one retrieval pipeline result (the evaluations it computed), of the run of
    ``config`` (an ExperimentConfig; None: not a run's test)."""
    scores = {name: QueryScores.from_results(getattr(retrieval, name).queries) for name in SUMMARY_PREFIXES
              if getattr(retrieval, name) is not None}
    return RunQueries(scores, np.array([r.pid for r in retrieval.query], np.int64),
                      np.array([r.camid for r in retrieval.query], np.int64),
                      config.run_key() if config is not None else None,
                      config.run_name() if config is not None else None)


def write_per_query(run_dir: str | Path, queries: RunQueries) -> Path:
    """Write ``<run_dir>/per_query.npz`` atomically (compressed, a few hundred KB for Market-1501); ``queries``
    must name its run (``run_key``, ``run_name``)."""
    if not queries.run_key or not queries.run_name:
        raise ValueError(f"per-query results written to {Path(run_dir) / PER_QUERY_FILE} must name their run "
                         "(run_key and run_name): build them with retrieval_queries(retrieval, config)")
    arrays = {"format": np.array(FORMAT_VERSION), "query_pids": queries.query_pids,
              "query_camids": queries.query_camids, "run_key": np.array(queries.run_key),
              "run_name": np.array(queries.run_name)}
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
                                "sagkit.runs.per_query.ensure_per_query computes it from the run's features")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path} is not a readable per-query file ({err}); delete it and it is computed again") from None
    if arrays.get("format") is None or int(arrays["format"]) not in (FORMAT_VERSION, _ANONYMOUS_FORMAT):
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
    identity = [str(arrays[key]) if key in arrays else None for key in ("run_key", "run_name")]
    queries = RunQueries(scores, arrays["query_pids"], arrays["query_camids"], *identity)
    _check_owner(path, queries)
    return queries


def _folder_identity(folder: Path) -> tuple[str | None, str | None]:
    """(run key, run name) of a run folder: from its results.json, else its config.json; (None, None) if neither."""
    results = read_results(folder)
    if results is not None and results.run_key:
        return results.run_key, results.name or folder.name
    if (folder / CONFIG_FILE).is_file():
        config = read_config(folder)
        return config.run_key(), config.run_name()
    return None, None


def _check_owner(path: Path, queries: RunQueries) -> None:
    """Raise ValueError naming ``path`` unless it belongs to the run folder it sits in (module docstring)."""
    folder = path.parent
    results = read_results(folder)
    key, _ = _folder_identity(folder)
    if queries.run_key is not None:
        if key is not None and queries.run_key != key:
            raise ValueError(f"{path} belongs to run {queries.run_name} (run key {queries.run_key}), not to the "
                             f"run in {folder} (run key {key}): copy that run's own {PER_QUERY_FILE}, or delete "
                             "this one and it is computed again from the run's features")
        return
    if results is None:
        raise ValueError(f"{path} does not say which run it belongs to (an old file) and {folder} has no "
                         "results.json to check it against: delete it and it is computed again")
    # the single-query metrics results.json has (older ones lack mINP; re-ranking was recomputed since)
    kept = results.metrics
    expected = {k: v for k, v in queries.scores["single"].metrics().items() if k in kept}
    differ = sorted(k for k, v in expected.items()
                    if not math.isclose(v, float(kept[k]), rel_tol=0.0, abs_tol=_OLD_TOLERANCE))
    if differ or results.num_query != len(queries.query_pids):
        raise ValueError(f"{path} does not say which run it belongs to (an old file) and its metrics differ from "
                         f"{folder / RESULTS_FILE} ({', '.join(differ) or 'num_query'}): it belongs to another "
                         "run; copy this run's own file, or delete it and it is computed again")


def ensure_per_query(run_dir: str | Path, evaluate: Callable[[], Retrieval]) -> RunQueries:
    """The run's per-query results: read from its file, or (a run that predates it) computed once with
    ``evaluate()`` (the run's test again, ``sagkit.runs.evaluate.evaluate_run``, from its kept features) and
    written."""
    if (Path(run_dir) / PER_QUERY_FILE).is_file():
        return read_per_query(run_dir)
    queries = retrieval_queries(evaluate())
    queries.run_key, queries.run_name = _folder_identity(Path(run_dir))
    write_per_query(run_dir, queries)
    return queries
