"""Table 1 and the measured rows of Tables 3-5 from finished runs: the one builder that the workbook (runs in its
runs folder) and the results folder (runs kept in ``results/``) both call, so their tables cannot drift apart."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from sagkit.report import tables
from sagkit.runs.record import RunResults

__all__ = ["SOTA_CONFIGS", "sota_rows", "table1", "table1_title"]

SOTA_CONFIGS = ((), (4,))  # the paper's tables compare the baseline and SAG at D4


def table1_title(dataset: str) -> str:
    """The caption Table 1's files carry."""
    return f"Table 1. Impact of the SAG depth ({dataset}, no re-ranking)"


def table1(runs: Iterable[tuple[RunResults, object]], dataset: str, paper_dataset: str | None = None) -> pd.DataFrame:
    """Table 1 (:func:`sagkit.report.tables.assemble_table1`) from ``(RunResults, RunQueries)`` pairs, one
    a finished run, oldest first (a later run of the same configuration and seed replaces an earlier one)."""
    rows = [tables.table1_row(results, queries.scores["single"]) for results, queries in runs]
    return tables.assemble_table1(rows, dataset, paper_dataset=paper_dataset)


def sota_rows(number: int, dataset: str, profile: str,
              runs: Mapping[tuple[int, ...], tuple[RunResults, Mapping, Mapping]]) -> list[dict]:
    """Measured rows of comparison table ``number`` (3-5), in the order of ``runs``: ``{depths: (RunResults,
    evaluations, intervals)}`` with the evaluations as ``Retrieval.evaluations()`` gives them and the bootstrap
    intervals named as in results.json. Each row's note names the backbone, the profile and the run."""
    rows = []
    for depths, (results, evaluations, intervals) in runs.items():
        method = "Baseline" if not depths else f"SAG {tables.config_label(depths)}"
        note = f"{results.backbone}, profile {profile}, run {results.name}"
        rows += tables.measured_sota_rows(number, method, dataset, evaluations, note=note, intervals=intervals)
    return rows
