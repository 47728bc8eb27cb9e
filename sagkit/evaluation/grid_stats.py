"""How far attention grids are from uniform (issue 22): per-image statistics and their distribution.

A grid is N×1×h×w (any SAG attention). Each image's grid is read as a distribution p = G / ΣG over its
h·w cells, so that softmax, "area"-scaled and sigmoid grids are compared alike:

- ``uniform``: every cell equal (max − min ≤ 1e-6·max); a softmax grid is exactly uniform when ReLU
  zeroes every score;
- ``entropy``: −Σ p log p / log(h·w), 1 for a uniform grid, 0 for a one-hot grid;
- ``peak``: max / mean of the grid, 1 for a uniform grid, h·w for a one-hot grid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

__all__ = ["GRID_STAT_KEYS", "UNIFORM_TOLERANCE", "grid_statistics", "summarise_grid_statistics"]

UNIFORM_TOLERANCE = 1e-6
GRID_STAT_KEYS = ("num_images", "cells", "uniform_fraction", "entropy_median", "entropy_q10", "entropy_q90",
                  "peak_median", "peak_q90")


def grid_statistics(grids: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-image ``uniform`` (bool), ``entropy`` and ``peak`` (float64) arrays of N grids N×1×h×w (or N×h×w)."""
    if grids.dim() == 4:
        if grids.shape[1] != 1:
            raise ValueError(f"grids must be N×1×h×w; got shape {tuple(grids.shape)}")
        grids = grids[:, 0]
    if grids.dim() != 3 or grids.shape[0] == 0:
        raise ValueError(f"grids must be N×1×h×w or N×h×w with N ≥ 1; got shape {tuple(grids.shape)}")
    flat = grids.detach().double().cpu().flatten(1)
    if bool((flat < 0).any()) or not bool(torch.isfinite(flat).all()):
        raise ValueError("attention grids must be finite and non-negative")
    cells = flat.shape[1]
    high, low = flat.max(dim=1).values, flat.min(dim=1).values
    uniform = (high - low) <= UNIFORM_TOLERANCE * high.clamp_min(torch.finfo(torch.float64).tiny)
    total = flat.sum(dim=1, keepdim=True)
    p = flat / total.clamp_min(torch.finfo(torch.float64).tiny)
    plogp = torch.where(p > 0, p * p.clamp_min(1e-300).log(), torch.zeros_like(p))
    entropy = -plogp.sum(dim=1) / math.log(cells) if cells > 1 else torch.ones(flat.shape[0], dtype=torch.float64)
    peak = high / (total[:, 0] / cells).clamp_min(torch.finfo(torch.float64).tiny)
    return {"uniform": uniform.numpy(), "entropy": entropy.clamp(0.0, 1.0).numpy() + 0.0, "peak": peak.numpy()}


def summarise_grid_statistics(stats: Mapping[str, np.ndarray], cells: int) -> dict:
    """The distribution of :func:`grid_statistics` as plain numbers (:data:`GRID_STAT_KEYS`), JSON-ready."""
    entropy, peak = np.asarray(stats["entropy"]), np.asarray(stats["peak"])
    return {"num_images": int(entropy.size), "cells": int(cells),
            "uniform_fraction": float(np.mean(stats["uniform"])),
            "entropy_median": float(np.median(entropy)), "entropy_q10": float(np.quantile(entropy, 0.1)),
            "entropy_q90": float(np.quantile(entropy, 0.9)),
            "peak_median": float(np.median(peak)), "peak_q90": float(np.quantile(peak, 0.9))}
