"""The results folder, ``results/<dataset>/<run name>/``: the small summaries of measured runs (``results.json``,
``per_query.npz`` and ``grid_stats.json``; no images, no checkpoints) kept in the repository, so that the README's tables and
Figure 3 are regenerated from them rather than retyped, and a later change adds seeds or configurations
without rerunning what is there.

:func:`export_runs` copies finished runs in (a run that predates ``per_query.npz`` gets it once from its
kept features); :func:`write_tables` rebuilds Table 1, Figure 3 and Tables 3-5's measured rows from the
folder alone (``python -m sagkit results export|tables``); :func:`compare_variants` pairs the runs of one change (say
``bn_stats="shared"``) with those without it, configuration by configuration (``results compare``).
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from sagkit.report import measured, table_view

from sagkit.report import tables
from sagkit.atomic import atomic_write, check_folder
from sagkit.config import ExperimentConfig
from sagkit.runs.config import run_config
from sagkit.runs.evaluate import evaluate_run
from sagkit.runs.per_query import ensure_per_query, read_per_query
from sagkit.runs.folder import CHECKPOINT_BEST, PER_QUERY_FILE, find_runs
from sagkit.runs.grids import GRID_STATS_FILE, ensure_grid_stats
from sagkit.runs.record import RESULTS_FILE, RunResults, read_results
from sagkit.evaluation.bootstrap import run_intervals
from sagkit.report.seed_stats import COMPARED, seed_statistics
from sagkit.viz import save_figure
from sagkit.viz.plots import plot_depth_effect

__all__ = ["KEPT_FILES", "compare_variants", "export_runs", "profile_runs", "read_results_folder", "read_runs",
           "write_tables"]

KEPT_FILES = (RESULTS_FILE, PER_QUERY_FILE, GRID_STATS_FILE)


def _copy(source: Path, target: Path) -> None:
    atomic_write(target, lambda tmp: shutil.copyfile(source, tmp))


def export_runs(runs_dir: str | Path, results_dir: str | Path = "results", device: str = "cpu") -> list[Path]:
    """Copy every finished run of ``runs_dir`` into ``results_dir/<dataset>/<run name>/`` (KEPT_FILES, each
    atomically; an entry of the same name is replaced; per-query results and grid statistics are computed
    first where a run lacks them). Returns the folders written."""
    runs_dir, results_dir = Path(runs_dir), check_folder(results_dir, "results folder")
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"runs folder {runs_dir} does not exist: give the folder holding the run folders")
    written = []
    for results in find_runs(runs_dir):
        run = runs_dir / results.name if (runs_dir / results.name).is_dir() else Path(results.run_dir)
        ensure_per_query(run, lambda run=run: evaluate_run(run, device=device)[0])
        if (run / CHECKPOINT_BEST).is_file():
            ensure_grid_stats(run, device)
        target = results_dir / results.dataset / run.name
        for name in KEPT_FILES:
            if name != GRID_STATS_FILE or (run / name).is_file():
                _copy(run / name, target / name)
        written.append(target)
    return written


def read_runs(folder: str | Path) -> list[tuple[RunResults, object]]:
    """``(RunResults, RunQueries)`` of every finished run in ``folder`` (one sub-folder a run), by name."""
    found = []
    for run in sorted(p for p in Path(folder).iterdir() if (p / RESULTS_FILE).is_file()):
        results = read_results(run)
        if results.complete:
            found.append((results, read_per_query(run)))
    return found


def read_results_folder(results_dir: str | Path, dataset: str) -> list[tuple[RunResults, object]]:
    """``(RunResults, RunQueries)`` of every run kept in ``results_dir/<dataset>/``, by run name."""
    folder = Path(results_dir) / dataset
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist: export runs first (python -m sagkit results export "
                                f"RUNS_DIR --results-dir {results_dir})")
    return read_runs(folder)


def profile_runs(kept: Iterable[tuple[RunResults, object]], profile: str,
                 overrides: Mapping[str, Any] | None = None) -> list[tuple[RunResults, object]]:
    """The kept runs that profile ``profile`` with ``overrides`` (ExperimentConfig fields) trains, any depths and
    seed, as the workbook would train them."""
    chosen = []
    for results, queries in kept:
        config = ExperimentConfig.from_run(dict(results.config))
        wanted = run_config(profile, config.dataset, config.depths, config.seed, **dict(overrides or {}))
        if wanted.result_fields() == config.result_fields():
            chosen.append((results, queries))
    return sorted(chosen, key=lambda item: item[0].finished_at)


def write_tables(results_dir: str | Path, dataset: str, profile: str, out_dir: str | Path,
                 seeds: Iterable[int] | None = None, overrides: Mapping[str, Any] | None = None) -> dict:
    """Table 1 (csv, md; ``table1_summary`` the README's short form), Figure 3 (png, pdf) and Tables 3-5 of the
    runs of ``profile`` (with ``overrides``) kept for ``dataset``, in ``out_dir`` (``seeds``: only these;
    default all kept). Returns ``{"table1": DataFrame, "files": [...]}``."""
    check_folder(out_dir, "output folder")
    runs = profile_runs(read_results_folder(results_dir, dataset), profile, overrides)
    if seeds is not None:
        wanted = set(seeds)
        runs = [(r, q) for r, q in runs if r.seed in wanted]
    if not runs:
        raise FileNotFoundError(f"{Path(results_dir) / dataset} holds no finished run of profile {profile!r}"
                                + (f" with seeds {sorted(wanted)}" if seeds is not None else ""))
    table1 = measured.table1(runs, dataset)
    title = measured.table1_title(dataset)
    files = list(tables.write_table(table1, out_dir, "table1_ablation", title=title))
    files += tables.write_table(tables.table1_summary(table1), out_dir, "table1_summary", title=title)
    files += save_figure(plot_depth_effect(table1, title=f"Effect of the SAG position ({dataset})"), out_dir,
                         "fig3_depth_effect")
    first_seed = min(r.seed for r, _ in runs)
    sota = {r.depths: (r, q) for r, q in runs if r.seed == first_seed}
    measurements = {}
    for depths in (d for d in measured.SOTA_CONFIGS if d in sota):
        results, queries = sota[depths]
        measurements[depths] = (results, results.evaluations(), results.intervals or run_intervals(queries.scores))
    for number in tables.SOTA_NAMES:
        rows = measured.sota_rows(number, dataset, profile, measurements)
        files += table_view.write_sota_table(tables.assemble_sota_table(number, rows), out_dir, number, profile,
                                             seeds=(first_seed,))
    return {"table1": table1, "files": files}


def _rows_by_config(runs: Iterable[tuple[RunResults, object]]) -> dict[str, dict[int, dict]]:
    """{config label: {seed: Table 1 row with its single-query scores}}."""
    return tables.rows_by_config(tables.table1_row(results, queries.scores["single"]) for results, queries in runs)


def compare_variants(results_dir: str | Path, dataset: str, profile: str, overrides: Mapping[str, Any],
                     against: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Each configuration trained with ``overrides`` against the same configuration trained with ``against``
    (default: the profile as it is), on the seeds both have: mean R1 and mAP of each side (percent) and the
    paired difference (same seed, same queries) with its 95% bootstrap interval and verdict. Configurations
    the change leaves alone (the same runs on both sides, e.g. the baseline for ``bn_stats``) are left out."""
    kept = read_results_folder(results_dir, dataset)
    ours, theirs = _rows_by_config(profile_runs(kept, profile, overrides)), _rows_by_config(
        profile_runs(kept, profile, against))
    rows = []
    for label in sorted(set(ours) & set(theirs), key=tables.order_key):
        seeds = sorted(set(ours[label]) & set(theirs[label]))
        mine, other = {s: ours[label][s] for s in seeds}, {s: theirs[label][s] for s in seeds}
        if not seeds or [r["run"] for r in mine.values()] == [r["run"] for r in other.values()]:
            continue
        stats = seed_statistics(mine, other, tables.COLUMNS, label)
        item: dict[str, Any] = {"config": label, "seeds": ",".join(map(str, seeds))}
        for metric in COMPARED:
            column = tables.COLUMNS[metric]
            item[f"{column} with"] = sum(float(r[metric]) for r in mine.values()) / len(seeds)
            item[f"{column} without"] = sum(float(r[metric]) for r in other.values()) / len(seeds)
            d, low, high = (stats[f"d{column}{end}"] for end in ("", "_low", "_high"))
            item[f"d{column}"] = "-" if math.isnan(d) else f"{d:+.2f} [{low:+.2f}, {high:+.2f}]"
            item[f"verdict ({column})"] = stats[f"verdict_{column}"] or "-"
        rows.append(item)
    return pd.DataFrame(rows)
