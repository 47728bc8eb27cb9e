"""What a run's ``results.json`` must hold for its readers: checked when it is read, so that a damaged file (a
list, a string where a number belongs, an entry missing) is one error naming it, not a KeyError later."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from sagkit.evaluation.bootstrap import INTERVAL_METRICS, SUMMARY_PREFIXES

__all__ = ["KEPT_ENTRIES", "RESULTS_ADVICE", "check_results"]

RESULTS_ADVICE = "restore it (results export copies it again), or train the run again (sagkit train --retrain)"
# Entries of a finished run's results.json that the results folder reads, and their types.
KEPT_ENTRIES = {"name": str, "dataset": str, "config": dict}


def check_results(results: Any, path: str | Path, required: Sequence[str] = ()) -> None:
    """ValueError naming ``path`` unless ``results`` is a JSON object whose metrics are numbers and whose finished
    run has each ``required`` entry of :data:`KEPT_ENTRIES` with its type."""
    if not isinstance(results, dict):
        raise ValueError(f"{path} must hold a JSON object, not {type(results).__name__}: {RESULTS_ADVICE}")
    for prefix in SUMMARY_PREFIXES.values():
        for metric in INTERVAL_METRICS:
            value = results.get(prefix + metric)
            if prefix + metric in results and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"{path}: entry {prefix + metric!r} is {value!r}, not a number: {RESULTS_ADVICE}")
    if not results.get("complete"):
        return
    for key in required:
        kind = KEPT_ENTRIES[key]
        if not isinstance(results.get(key), kind):
            found = "missing" if key not in results else f"{results[key]!r}"
            raise ValueError(f"{path}: entry {key!r} is {found}, not a {'JSON object' if kind is dict else 'string'}: "
                             f"{RESULTS_ADVICE}")
