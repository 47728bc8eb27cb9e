"""The metrics lines that ``sagkit train`` and ``sagkit eval`` print."""

from __future__ import annotations

from sagkit.evaluation.bootstrap import SUMMARY_PREFIXES
from sagkit.report.tables import COLUMNS

_EVALUATION_LABELS = {"single": "", "single_rr": "with re-ranking: ", "multi": "multi-query: ",
                      "multi_rr": "multi-query with re-ranking: "}


def format_metrics(m: dict) -> str:
    """The metrics of a results dict (``Retrieval.summary``), one line per evaluation that is there, each
    followed by its bootstrap interval ``[low, high]`` when ``m["intervals"]`` has it."""
    intervals = m.get("intervals") or {}
    lines = []
    for evaluation, prefix in SUMMARY_PREFIXES.items():
        if f"{prefix}rank1" in m:
            cells = []
            for key, name in COLUMNS.items():
                span = intervals.get(prefix + key)
                cells.append(f"{name} {m[prefix + key]:.2f}" + (f" [{span[0]:.2f}, {span[1]:.2f}]" if span else ""))
            lines.append(_EVALUATION_LABELS[evaluation] + "  ".join(cells))
    if intervals and m.get("interval_method"):
        method = m["interval_method"]
        lines.append(f"[low, high]: {100 * method['confidence']:g}% {method['method']} ({method['resamples']} "
                     f"resamples, seed {method['seed']})")
    return "\n".join(lines)
