"""Plots for the workbook: dataset distributions, training curves, CMC curves, the depth-effect figure.

Each function takes plain data (records, DataFrames, arrays) and returns a matplotlib Figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import PathLike

import numpy as np
import pandas as pd

from sagkit.choices import PAPER_DATASET_TITLES

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


SPLIT_ORDER = ("train", "query", "gallery")
SPLIT_COLORS = {"train": "tab:blue", "query": "tab:orange", "gallery": "tab:green"}


def _bars(ax, categories: Sequence, counts: Mapping[str, Sequence[float]]) -> None:
    """Grouped bars: one group per category, one bar per split (in SPLIT_ORDER), labelled on the x axis."""
    splits = [s for s in SPLIT_ORDER if s in counts] + [s for s in counts if s not in SPLIT_ORDER]
    width = 0.8 / max(len(splits), 1)
    x = np.arange(len(categories))
    for i, split in enumerate(splits):
        ax.bar(x + (i - (len(splits) - 1) / 2) * width, counts[split], width, label=split,
               color=SPLIT_COLORS.get(split))
    ax.set_xticks(x, [str(c) for c in categories])


def plot_dataset_distributions(splits: Mapping[str, Sequence], title: str | None = None,
                               distractor_pid: int | None = 0):
    """Three panels sharing one legend beside them: identities and images per split, images per camera, and
    how many identities have each number of images (only the counts that occur, so no empty bins).

    ``splits`` maps a split name (train, query, gallery) to its list of ImageRecord. Junk images (pid -1)
    and, outside ``train``, distractors (``distractor_pid``: Market's 0; None where every id is a person, as
    in MSMT17, whose ``ReIDDataset.distractor_pid`` is None) are left out.
    """
    import matplotlib.pyplot as plt

    frame = records_frame(splits)
    if frame.empty:
        raise ValueError("plot_dataset_distributions got no records")
    frame = person_rows(frame, distractor_pid)
    names = [s for s in SPLIT_ORDER if s in set(frame["split"])] + sorted(set(frame["split"]) - set(SPLIT_ORDER))
    per_id = frame.groupby(["split", "pid"]).size().rename("images").reset_index()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), layout="constrained")
    _bars(axes[0], ["identities", "images"], {s: [per_id["split"].eq(s).sum(), frame["split"].eq(s).sum()]
                                              for s in names})
    axes[0].set(title="identity distribution", ylabel="count")
    cameras = sorted(frame["camid"].unique())
    _bars(axes[1], cameras, {s: [int(((frame["split"] == s) & (frame["camid"] == c)).sum()) for c in cameras]
                             for s in names})
    axes[1].set(title="camera distribution", xlabel="camera id", ylabel="images")
    sizes = sorted(per_id["images"].unique())
    _bars(axes[2], sizes, {s: [int(((per_id["split"] == s) & (per_id["images"] == n)).sum()) for n in sizes]
                           for s in names})
    axes[2].set(title="images per identity", xlabel="images of one identity", ylabel="identities")
    for ax in axes:
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", title="split", frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def _as_frame(metrics) -> pd.DataFrame:
    """metrics.csv rows (a DataFrame, or dicts as ``sagkit.runs.folder.read_metrics`` returns) as a DataFrame."""
    if isinstance(metrics, pd.DataFrame):
        return metrics
    if isinstance(metrics, (str, PathLike)):
        raise TypeError("pass the rows of metrics.csv (sagkit.runs.folder.read_metrics(run_dir) or "
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


CURVE_LABELS = {"loss": "total loss", "loss_ce": "cross-entropy", "loss_triplet": "triplet", "loss_center": "center",
                "acc": "training accuracy", "lr": "new layers", "lr_pretrained": "pretrained layers",
                "lr_sag": "SAG modules", "val_rank1": "rank-1", "val_rank5": "rank-5", "val_rank10": "rank-10",
                "val_mAP": "mAP", "val_mINP": "mINP"}
PANEL_YLABELS = {"loss": "loss (mean over the epoch's batches)", "accuracy": "accuracy (%)",
                 "retrieval (%)": "validation score (%)", "learning rate": "learning rate (log scale)"}


def _distinct(frame: pd.DataFrame, columns: Sequence[str]) -> list[tuple[str, str]]:
    """(label, column) per distinct curve: columns with the same values everywhere (e.g. ``loss`` and
    ``loss_ce`` when cross-entropy is the only term) become one curve whose label names them all."""
    kept: list[tuple[list[str], str]] = []
    for column in columns:
        values = frame[column].astype(float).to_numpy()
        twin = next((names for names, col in kept
                     if np.allclose(frame[col].astype(float).to_numpy(), values, equal_nan=True)), None)
        label = CURVE_LABELS.get(column, column)
        if twin is None:
            kept.append(([label], column))
        else:
            twin.append(label)
    return [(" = ".join(names), column) for names, column in kept]


def plot_training_curves(metrics, title: str | None = None):
    """Training curves from metrics.csv, one panel each for losses, accuracies, validation scores and
    learning rates (2 columns), all on the same epoch axis.

    x is the ``epoch`` column when present (else ``step``/``iteration``, else the row number); metric
    columns are grouped by name (``*loss*``, ``*acc*``, rank/mAP, ``lr*``); identical columns are one
    curve. Validation scores, measured every few epochs, are points, not a joined line. Legends sit
    beside their panel, never over the data.
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
    rows = (len(groups) + 1) // 2
    fig, axes = plt.subplots(rows, 2, figsize=(10, 3.0 * rows), sharex=True, squeeze=False, layout="constrained")
    for ax in axes.flat[len(groups):]:
        fig.delaxes(ax)
    for ax, (name, cols) in zip(axes.flat, groups.items()):
        points = name == "retrieval (%)"
        for label, col in _distinct(frame, cols):
            values = frame[col].astype(float)
            if points and values.max(skipna=True) <= 1.0:
                values = values * 100.0
            mask = values.notna()
            if points:
                ax.plot(x[mask], values[mask], marker="o", linestyle="none", markersize=5, label=label)
            else:
                ax.plot(x[mask], values[mask], marker="o" if mask.sum() < 30 else None, markersize=3, label=label,
                        drawstyle="steps-post" if name == "learning rate" else "default")
        ax.set(title=name, ylabel=PANEL_YLABELS[name])
        ax.set_xlabel(xcol or "row")
        ax.xaxis.set_tick_params(labelbottom=True)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if name == "learning rate":
            ax.set_yscale("log")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        ax.grid(alpha=0.3)
    if len(x):
        axes.flat[0].set_xlim(float(x.min()) - 0.3, float(x.max()) + 0.3)
    if title:
        fig.suptitle(title)
    return fig


def _as_percent(curve) -> np.ndarray:
    values = np.asarray(curve, dtype=np.float64).reshape(-1)
    return values * 100.0 if values.size and values.max() <= 1.0 else values


def plot_cmc(curves, max_rank: int = 20, title: str = "CMC curve", ax=None, bands=None):
    """Cumulative matching characteristic: identification rate (%) against rank 1..max_rank (integer ticks).

    ``curves``: one CMC array (fractions or percent), or a mapping label → array. ``bands``: label → (low,
    high) arrays in the same units (e.g. :func:`sagkit.evaluation.bootstrap.cmc_band`), drawn as a shaded
    95% band behind the curve.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if not isinstance(curves, Mapping):
        curves = {"": curves}
        bands = {"": bands} if bands is not None else None
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.8), layout="constrained")
    else:
        fig = ax.figure
    for label, curve in curves.items():
        values = _as_percent(curve)[:max_rank]
        ranks = np.arange(1, len(values) + 1)
        line, = ax.plot(ranks, values, marker="o", markersize=3, label=label or None)
        if bands and label in bands:
            scale = 100.0 if np.asarray(curve, dtype=np.float64).max() <= 1.0 else 1.0
            low, high = (np.asarray(b, dtype=np.float64)[:len(values)] * scale for b in bands[label])
            ax.fill_between(ranks, low, high, color=line.get_color(), alpha=0.2, linewidth=0,
                            label=f"{label + ': ' if label else ''}95% bootstrap band over queries")
    ax.set(title=title, xlabel="rank", ylabel="identification rate (%)", xlim=(0.5, max_rank + 0.5))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if any(curves) or bands:
        ax.legend(fontsize=8, loc="lower right")
    return fig




def _plot_measured(ax, x: np.ndarray, rows: pd.DataFrame, metric: str, marker: str, color: str) -> None:
    """Measured means as markers (no line: the positions are categories), with their interval as error bars
    where Table 1 has one."""
    y = rows[metric].astype(float).to_numpy()
    label = "R1" if metric == "R1" else metric
    low_col, high_col = f"{metric}_low", f"{metric}_high"
    if low_col in rows and high_col in rows and rows[low_col].notna().any():
        low = rows[low_col].astype(float).to_numpy()
        high = rows[high_col].astype(float).to_numpy()
        yerr = np.vstack([np.nan_to_num(y - low), np.nan_to_num(high - y)])
        ax.errorbar(x, y, yerr=yerr, fmt=marker, color=color, capsize=4, label=label + ", 95% interval")
    else:
        ax.plot(x, y, marker, color=color, linestyle="none", label=label)


def _seed_note(rows: pd.DataFrame) -> str:
    if "n_seeds" not in rows or not rows["n_seeds"].notna().any():
        return ""
    counts = sorted({int(n) for n in rows["n_seeds"].dropna()})
    return f" ({'/'.join(map(str, counts))} seed{'s' if counts != [1] else ''})"


def plot_depth_effect(table: pd.DataFrame, title: str | None = None):
    """Figure 3: rank-1 and mAP against the SAG position (Baseline, D1..D4); the measured numbers in one
    panel and the paper's in another, since they come from another dataset and recipe.

    ``table``: Table 1 as assembled by :func:`sagkit.report.tables.assemble_table1` (columns ``config``,
    ``R1``, ``mAP`` and optionally ``paper_R1``, ``paper_mAP``, ``paper_dataset``). When it has
    ``R1_low``/``R1_high`` (``mAP_low``/``mAP_high``), the measured points carry them as error bars (the 95%
    interval over seeds and queries); the panel title says how many seeds. Points are markers without
    lines, because the positions are categories.
    """
    import matplotlib.pyplot as plt

    rows = table.set_index("config").reindex(SINGLE_DEPTH_ORDER)
    positions = np.arange(len(SINGLE_DEPTH_ORDER))
    paper_cols = [c for c in ("paper_R1", "paper_mAP") if c in rows and rows[c].notna().any()]
    fig, axes = plt.subplots(1, 2 if paper_cols else 1, figsize=(10 if paper_cols else 5.5, 3.6), squeeze=False,
                             layout="constrained")
    panels = [(axes[0, 0], "measured here" + _seed_note(rows), "", 0.0)]
    if paper_cols:
        name = str(table["paper_dataset"].dropna().iloc[0]) if "paper_dataset" in table else ""
        panels.append((axes[0, 1], f"published: {PAPER_DATASET_TITLES.get(name, name)}, ResNet50, 200 epochs",
                       "paper_", 0.0))
    for ax, panel_title, prefix, _ in panels:
        for metric, marker, color, shift in (("R1", "o", "tab:blue", -0.08), ("mAP", "s", "tab:orange", 0.08)):
            column = prefix + metric
            values = rows[column].astype(float) if column in rows else pd.Series(np.nan, index=rows.index)
            mask = values.notna().to_numpy()
            if not mask.any():
                continue
            if prefix:
                ax.plot(positions[mask] + shift, values[mask], marker, color=color, linestyle="none", label=metric)
            else:
                _plot_measured(ax, positions[mask] + shift, rows[mask], metric, marker, color)
        ax.set_xticks(positions, SINGLE_DEPTH_ORDER)
        ax.set(title=panel_title, xlabel="position of the SAG module", ylabel="score (%)",
               xlim=(-0.5, len(SINGLE_DEPTH_ORDER) - 0.5))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if title:
        fig.suptitle(title)
    return fig
