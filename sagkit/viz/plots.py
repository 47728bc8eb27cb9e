"""Plots for the workbook: dataset distributions, training curves, CMC curves, the depth-effect figure.

Each function takes plain data (records, DataFrames, arrays) and returns a matplotlib Figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import PathLike

import numpy as np
import pandas as pd

SINGLE_DEPTH_ORDER = ("Baseline", "D1", "D2", "D3", "D4")


def records_frame(splits: Mapping[str, Sequence]) -> pd.DataFrame:
    """One row per image: split, pid, camid (from ImageRecord-like items with .pid and .camid)."""
    rows = [(split, int(r.pid), int(r.camid)) for split, records in splits.items() for r in records]
    return pd.DataFrame(rows, columns=["split", "pid", "camid"])


def person_rows(frame: pd.DataFrame, distractor_pid: int | None = 0) -> pd.DataFrame:
    """Rows of a ``records_frame`` that are people: junk (pid -1) left out everywhere, ``distractor_pid``
    (None: no distractors) left out of every split but ``train``."""
    person = frame["pid"] >= 0
    if distractor_pid is not None:
        person &= (frame["pid"] != distractor_pid) | (frame["split"] == "train")
    return frame[person]


def plot_dataset_distributions(splits: Mapping[str, Sequence], title: str | None = None,
                               distractor_pid: int | None = 0):
    """Three panels: images per identity (sorted), camera distribution, histogram of images per identity.

    ``splits`` maps a split name (train, query, gallery) to its list of ImageRecord. Junk images (pid -1)
    and, outside ``train``, distractors (``distractor_pid``: Market's 0; None where every id is a person, as
    in MSMT17, whose ``ReIDDataset.distractor_pid`` is None) are left out.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    frame = records_frame(splits)
    if frame.empty:
        raise ValueError("plot_dataset_distributions got no records")
    # junk (-1) everywhere, and distractors (pid 0 in the test splits, as in Market-1501) are no identity
    frame = person_rows(frame, distractor_pid)
    per_id = frame.groupby(["split", "pid"]).size().rename("images").reset_index()
    per_id["rank"] = per_id.groupby("split")["images"].rank(method="first", ascending=False)
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    sns.lineplot(data=per_id, x="rank", y="images", hue="split", ax=axes[0], drawstyle="steps-post")
    axes[0].set(title="identity distribution", xlabel="identity (sorted by image count)", ylabel="images")
    frame = frame.assign(camera=frame["camid"].astype(str))
    order = sorted(frame["camera"].unique(), key=int)
    sns.countplot(data=frame, x="camera", hue="split", order=order, ax=axes[1])
    axes[1].set(title="camera distribution", xlabel="camera id", ylabel="images")
    sns.histplot(data=per_id, x="images", hue="split", discrete=True, multiple="dodge", shrink=0.8, ax=axes[2])
    axes[2].set(title="images per identity", xlabel="images of one identity", ylabel="identities")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _as_frame(metrics) -> pd.DataFrame:
    """metrics.csv rows (a DataFrame, or dicts as ``sagkit.engine.run_dir.read_metrics`` returns) as a DataFrame."""
    if isinstance(metrics, pd.DataFrame):
        return metrics
    if isinstance(metrics, (str, PathLike)):
        raise TypeError("pass the rows of metrics.csv (sagkit.engine.run_dir.read_metrics(run_dir) or "
                        "Workbook.metrics(depths)), not a path")
    return pd.DataFrame(list(metrics))


def _metric_groups(columns: Sequence[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {"loss": [], "accuracy": [], "retrieval (%)": [], "learning rate": []}
    for col in columns:
        low = col.lower()
        if "loss" in low:
            groups["loss"].append(col)
        elif low == "lr" or low.startswith("lr") or "learning_rate" in low:
            groups["learning rate"].append(col)
        elif "acc" in low:
            groups["accuracy"].append(col)
        elif any(key in low for key in ("rank", "map", "r1", "r5", "r10", "cmc", "minp")):
            groups["retrieval (%)"].append(col)
    return {name: cols for name, cols in groups.items() if cols}


def plot_training_curves(metrics, title: str | None = None):
    """Training curves from metrics.csv: one panel each for losses, accuracies, retrieval metrics, lr.

    x is the ``epoch`` column when present (else ``step``/``iteration``, else the row number); metric
    columns are grouped by name (``*loss*``, ``*acc*``, rank/mAP, ``lr*``). Rows where a metric is
    empty (e.g. validation run every few epochs) are skipped for that metric.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    frame = _as_frame(metrics)
    if frame.empty:
        raise ValueError("the metrics table is empty: has the run finished an epoch?")
    xcol = next((c for c in ("epoch", "step", "iteration") if c in frame.columns), None)
    x = frame[xcol] if xcol else pd.Series(np.arange(len(frame)))
    numeric = [c for c in frame.columns if c != xcol and pd.api.types.is_numeric_dtype(frame[c])]
    groups = _metric_groups(numeric)
    if not groups:
        raise ValueError(f"no loss/accuracy/rank/mAP/lr columns in the metrics table; columns: {list(frame.columns)}")
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.4), squeeze=False)
    for ax, (name, cols) in zip(axes[0], groups.items()):
        for col in cols:
            values = frame[col].astype(float)
            if name == "retrieval (%)" and values.max(skipna=True) <= 1.0:
                values = values * 100.0
            mask = values.notna()
            ax.plot(x[mask], values[mask], marker="o" if mask.sum() < 30 else None, markersize=3, label=col)
        ax.set(title=name, xlabel=xcol or "row")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if name == "learning rate":
            ax.set_yscale("log")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _as_percent(curve) -> np.ndarray:
    values = np.asarray(curve, dtype=np.float64).reshape(-1)
    return values * 100.0 if values.size and values.max() <= 1.0 else values


def plot_cmc(curves, max_rank: int = 20, title: str = "CMC curve", ax=None):
    """Cumulative matching characteristic: identification rate (%) against rank 1..max_rank.

    ``curves``: one CMC array (fractions or percent), or a mapping label → array.
    """
    import matplotlib.pyplot as plt

    if not isinstance(curves, Mapping):
        curves = {"": curves}
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.8))
    else:
        fig = ax.figure
    for label, curve in curves.items():
        values = _as_percent(curve)[:max_rank]
        ranks = np.arange(1, len(values) + 1)
        ax.plot(ranks, values, marker="o", markersize=3, label=label or None)
    ax.set(title=title, xlabel="rank", ylabel="identification rate (%)", xlim=(0.5, max_rank + 0.5))
    ax.grid(alpha=0.3)
    if any(curves):
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _plot_measured(ax, x: np.ndarray, rows: pd.DataFrame, metric: str) -> None:
    """Measured means as a line, with their interval as error bars where Table 1 has one."""
    y = rows[metric].astype(float).to_numpy()
    label = "measured"
    if "n_seeds" in rows and rows["n_seeds"].notna().any():
        counts = sorted({int(n) for n in rows["n_seeds"].dropna()})
        label += f" ({'/'.join(map(str, counts))} seed{'s' if counts != [1] else ''})"
    low_col, high_col = f"{metric}_low", f"{metric}_high"
    if low_col in rows and high_col in rows and rows[low_col].notna().any():
        low = rows[low_col].astype(float).to_numpy()
        high = rows[high_col].astype(float).to_numpy()
        yerr = np.vstack([np.nan_to_num(y - low), np.nan_to_num(high - y)])
        ax.errorbar(x, y, yerr=yerr, fmt="o-", color="tab:blue", capsize=4, label=label + ", 95% interval")
    else:
        ax.plot(x, y, "o-", color="tab:blue", label=label)


def plot_depth_effect(table: pd.DataFrame, title: str | None = None):
    """Figure 3: rank-1 and mAP against the SAG position (Baseline, D1..D4), measured beside paper.

    ``table``: Table 1 as assembled by :func:`sagkit.tables.assemble_table1` (columns ``config``,
    ``R1``, ``mAP`` and optionally ``paper_R1``, ``paper_mAP``, ``paper_dataset``). When it has
    ``R1_low``/``R1_high`` (``mAP_low``/``mAP_high``), the measured points carry them as error bars (the 95%
    interval over seeds and queries); the legend says how many seeds.
    """
    import matplotlib.pyplot as plt

    rows = table.set_index("config").reindex(SINGLE_DEPTH_ORDER)
    positions = np.arange(len(SINGLE_DEPTH_ORDER))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    paper_name = None
    if "paper_dataset" in table.columns and table["paper_dataset"].notna().any():
        paper_name = str(table["paper_dataset"].dropna().iloc[0])
    for ax, metric, label in ((axes[0], "R1", "rank-1 (%)"), (axes[1], "mAP", "mAP (%)")):
        measured = rows[metric].astype(float) if metric in rows else pd.Series(np.nan, index=rows.index)
        mask = measured.notna().to_numpy()
        if mask.any():
            _plot_measured(ax, positions[mask], rows[mask], metric)
        paper_col = f"paper_{metric}"
        if paper_col in rows:
            paper = rows[paper_col].astype(float).to_numpy()
            ok = ~np.isnan(paper)
            ax.plot(positions[ok], paper[ok], "s--", color="tab:red", label=f"paper ({paper_name})")
        ax.set_xticks(positions, SINGLE_DEPTH_ORDER)
        ax.set(xlabel="position of the SAG module", ylabel=label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
