"""The paper's published numbers (Tables 1-5), kept as CSV data files beside this module.

Every table carries a ``citation`` column (reference number and short name from the paper's reference
list, or "SAG (this paper)") and a ``note`` column for anything odd in the printed table (e.g. Table 1's
"4876", read as 48.76). Missing entries ("-" in the paper) are NaN.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

REFERENCE_DIR = Path(__file__).resolve().parent

TABLE_FILES = {
    1: "table1_ablation.csv",
    2: "table2_datasets.csv",
    3: "table3_market1501.csv",
    4: "table4_cuhk03.csv",
    5: "table5_dukemtmc.csv",
}

# The dataset each comparison table (3, 4, 5) reports on.
SOTA_TABLE_DATASET = {3: "market1501", 4: "cuhk03", 5: "dukemtmc"}

# Datasets that appear in the paper's Table 1, in its column order.
PAPER_DATASETS = ("market1501", "cuhk03", "dukemtmc")

# Row order of the paper's Table 1.
TABLE1_ORDER = ("Baseline", "D1", "D2", "D3", "D4", "D1,2", "D1,2,3", "D1,2,3,4")


def load_table(number: int) -> pd.DataFrame:
    """Return paper table ``number`` (1-5) as a DataFrame, rows in the paper's order."""
    if number not in TABLE_FILES:
        raise ValueError(f"table number must be one of {sorted(TABLE_FILES)}; got {number!r}")
    frame = pd.read_csv(REFERENCE_DIR / TABLE_FILES[number], keep_default_na=True)
    if "note" in frame.columns:
        frame["note"] = frame["note"].fillna("")
    if "arxiv_only" in frame.columns:
        frame["arxiv_only"] = frame["arxiv_only"].astype(bool)
    return frame


def table1(dataset: str | None = None) -> pd.DataFrame:
    """Paper Table 1 (ablation over SAG depth) in long form: one row per configuration and dataset.

    With ``dataset`` (market1501, cuhk03 or dukemtmc) only that dataset's eight rows are returned.
    """
    frame = load_table(1)
    if dataset is None:
        return frame
    if dataset not in PAPER_DATASETS:
        raise ValueError(f"the paper's Table 1 has no column for {dataset!r}; it has {', '.join(PAPER_DATASETS)}")
    return frame[frame["dataset"] == dataset].reset_index(drop=True)


def sota_table(number: int) -> pd.DataFrame:
    """Paper comparison Table 3 (Market-1501), 4 (CUHK03) or 5 (DukeMTMC-reID)."""
    if number not in SOTA_TABLE_DATASET:
        raise ValueError(f"comparison tables are 3, 4 and 5; got {number!r}")
    return load_table(number)


__all__ = [
    "PAPER_DATASETS",
    "REFERENCE_DIR",
    "SOTA_TABLE_DATASET",
    "TABLE1_ORDER",
    "TABLE_FILES",
    "load_table",
    "sota_table",
    "table1",
]
