"""Figures of the controls study (notebook 06): accuracy with intervals beside cost, and how uniform the grids are."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["plot_controls", "plot_grid_entropy"]


def plot_controls(frame: pd.DataFrame, title: str = ""):
    """Left: R1 and mAP (%) of each control, mean over seeds with its 95% interval (markers, no lines: the
    controls are categories). Right: R1 against forward GFLOPs per image. ``frame``: ``controls_frame``."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 0.55 * len(frame) + 2.2), layout="constrained",
                                      gridspec_kw={"width_ratios": [3, 2]})
    y = np.arange(len(frame))
    for offset, column, colour in ((-0.12, "R1", "tab:blue"), (0.12, "mAP", "tab:orange")):
        mean = frame[column].to_numpy(float)
        low, high = frame[f"{column}_low"].to_numpy(float), frame[f"{column}_high"].to_numpy(float)
        err = np.vstack([mean - np.where(np.isnan(low), mean, low), np.where(np.isnan(high), mean, high) - mean])
        left.errorbar(mean, y + offset, xerr=err, fmt="o", color=colour, capsize=3, label=f"{column} (95% interval)")
    left.set_yticks(y, frame["control"])
    left.invert_yaxis()
    left.set_xlabel("accuracy (%)")
    left.grid(axis="x", alpha=0.3)
    left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=8, frameon=False)  # off the data
    if "gflops" in frame:
        right.scatter(frame["gflops"], frame["R1"], color="tab:blue")
        for i, (_, row) in enumerate(frame.sort_values("R1").iterrows()):  # neighbours' labels above and below
            right.annotate(row["control"], (row["gflops"], row["R1"]), textcoords="offset points",
                           xytext=(5, 4 if i % 2 else -9), fontsize=7)
        right.margins(x=0.25, y=0.1)  # room for the labels beside the points
        right.set_xlabel("forward GFLOPs per image")
        right.set_ylabel("R1 (%)")
        right.grid(alpha=0.3)
    else:
        right.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_grid_entropy(entropies: Mapping[str, list[float]], title: str = ""):
    """Distribution of the normalised grid entropy (1 = uniform) over test images, one box per SAG control."""
    import matplotlib.pyplot as plt

    labels = [label for label, values in entropies.items() if values]
    if not labels:
        raise ValueError("plot_grid_entropy needs at least one control with grid statistics")
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(labels) + 1.6), layout="constrained")
    ax.boxplot([entropies[label] for label in labels], vert=False, widths=0.5, showfliers=True)
    ax.set_yticks(np.arange(1, len(labels) + 1), labels)
    ax.invert_yaxis()
    ax.set_xlabel("normalised grid entropy per test image (1 = uniform grid)")
    ax.set_xlim(right=1.005)
    ax.grid(axis="x", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    return fig
