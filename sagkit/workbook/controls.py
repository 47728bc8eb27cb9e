"""Notebook 06's steps: train or reuse D4's controls (``sagkit.report.controls``) for every seed, and read them back as
the controls table and the grid statistics, from the workbook's runs folder."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from sagkit.config import ExperimentConfig
from sagkit.report.controls import CONTROLS, SHALLOW_CONTROLS, Control, control_by_label, controls_frame, controls_title
from sagkit.runs import train
from sagkit.engine.builders import model_cost
from sagkit.runs.grids import ensure_grid_stats
from sagkit.report.results_folder import read_runs
from sagkit.viz import is_headless


__all__ = ["control_config", "controls_for", "controls_table", "grid_entropies", "train_controls"]


def controls_for(shallow: bool) -> tuple[Control, ...]:
    """D4 and its controls; with ``shallow`` also D1-D3 and their uniform-grid controls."""
    return CONTROLS + (SHALLOW_CONTROLS[1:] if shallow else ())


def control_config(wb, control: Control, seed: int) -> ExperimentConfig:
    """The config of ``control`` trained with ``seed`` under the workbook's profile, dataset and overrides."""
    return wb.config(control.depths, seed).replace(**dict(control.fields))


def train_controls(wb, controls: Iterable[Control] = CONTROLS) -> list[dict]:
    """Train (or reuse) every control for every seed of the workbook, seed by seed; their results dicts. The
    workbook's ``retrain`` retrains the controls proper (those with fields); the plain Baseline and Dk runs are
    notebook 03's, retrained there."""
    out = []
    for seed in wb.seeds:
        for control in controls:
            out.append(train(control_config(wb, control, seed), retrain=wb.params.retrain and bool(control.fields),
                             progress=not is_headless()))
    return out


def _workbook_runs(wb) -> list:
    return read_runs(wb.params.runs_dir) if wb.params.runs_dir.is_dir() else []


def controls_table(wb, controls: Sequence[Control] = CONTROLS) -> tuple[pd.DataFrame, str]:
    """(the controls frame of :func:`sagkit.report.controls.controls_frame` for the workbook's seeds, its title); grid
    statistics are computed once per SAG run and kept in its folder."""
    runs = [(r, q) for r, q in _workbook_runs(wb) if r.seed in wb.seeds]
    device = str(wb.device())
    frame = controls_frame(runs, wb.params.profile, controls, wb.params.overrides, cost=model_cost,
                           grid_stats=lambda results: ensure_grid_stats(wb.params.runs_dir / results.name, device))
    title = controls_title(wb.params.dataset, wb.params.profile, ",".join(map(str, wb.seeds)))
    return frame, title


def grid_entropies(wb, frame: pd.DataFrame) -> dict[str, list[float]]:
    """{control label: normalised grid entropy of every test image} of the SAG rows of ``frame`` (from
    :func:`controls_table`, whose ``runs`` column names each row's runs): the distribution behind its median."""
    out = {}
    for row in frame.to_dict("records"):
        control = control_by_label(row["control"])
        for name in row["runs"].split("; ") if control.depths else ():
            stats = ensure_grid_stats(wb.params.runs_dir / name, str(wb.device()))
            out.setdefault(control.label, []).extend(stats["depths"][f"D{control.depths[-1]}"]["entropy"])
    return out
