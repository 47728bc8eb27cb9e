"""Why does D4 win? The controls the paper never ran (issue 22), as configurations and one table.

At D4 the upper branch runs the whole backbone on the image upsampled 2× and its final map, max-pooled and
weighted by the grid, replaces the baseline's map: D4 differs from the baseline in resolution, in the
two-branch max-pooled path and in the learned grid at once. Each control changes one of these:

- ``Baseline ×2 input`` (``input_scale=2``): one branch on exactly the tensor D4's upper branch sees;
- ``Baseline OS16`` (``last_stride=1``): a final map as fine as D4's upper one (10×4 at 160×64) without
  more input pixels;
- ``D4 uniform`` (``attention="uniform"``): D4 with G = 1/(h·w) and no parameters; only the learned grid
  is taken away. Under ``replace`` the lower branch then feeds nothing, so this is the ×2 baseline whose
  final map is max-pooled 2×2 before the average: with the ×2 baseline it also separates the max filter.
- ``D1 uniform``..``D3 uniform``: the same question at the shallow depths, where the upper branch stops
  early and the resolution argument differs.

:func:`controls_frame` gives each control's mean ± sd over seeds, 95% bootstrap interval, the paired
difference against the SAG run it controls and against the baseline (same seeds, same queries), the model's
parameters and forward GFLOPs, the measured training img/s and, for SAG runs, how uniform its grids are.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from sagkit.report import tables
from sagkit.config import ExperimentConfig
from sagkit.engine.builders import model_cost
from sagkit.runs.grids import read_grid_stats
from sagkit.runs.record import RunResults
from sagkit.report.results_folder import profile_runs, read_results_folder
from sagkit.report.seed_stats import COMPARED, seed_statistics
from sagkit.viz import save_figure
from sagkit.viz.controls_plot import plot_controls

__all__ = ["CONTROLS", "SHALLOW_CONTROLS", "Control", "control_by_label", "controls_frame", "controls_summary",
           "controls_conclusion", "controls_title", "kept_controls", "match_controls", "write_controls"]


@dataclass(frozen=True)
class Control:
    """One configuration of the study: Table 1 ``depths`` plus ExperimentConfig ``fields`` over the profile;
    ``against``: the label of the SAG configuration it is compared with ("" for none); ``question``: what it
    isolates."""

    label: str
    depths: tuple[int, ...]
    fields: Mapping[str, Any] = field(default_factory=dict)
    against: str = "D4"
    question: str = ""


CONTROLS = (
    Control("Baseline", (), {}, "D4", "the backbone alone, at the input size"),
    Control("Baseline ×2 input", (), {"input_scale": 2}, "D4", "resolution: the input D4's upper branch sees"),
    Control("Baseline OS16", (), {"last_stride": 1}, "D4", "a final map as fine as D4's upper one, same pixels"),
    Control("D4 uniform", (4,), {"attention": "uniform"}, "D4", "the grid: D4 with G = 1/(h·w), no parameters"),
    Control("D4", (4,), {}, "", "the paper's SAG after stage 4"),
)
SHALLOW_CONTROLS = (Control("Baseline", (), {}, "", "the backbone alone, at the input size"),) + tuple(
    item for depth in (1, 2, 3) for item in (
        Control(f"D{depth}", (depth,), {}, "", f"the paper's SAG after stage {depth}"),
        Control(f"D{depth} uniform", (depth,), {"attention": "uniform"}, f"D{depth}",
                f"the grid at D{depth}: G = 1/(h·w), no parameters"),
    ))


def control_by_label(label: str, controls: Iterable[Control] = CONTROLS + SHALLOW_CONTROLS) -> Control:
    """The control named ``label`` (ValueError listing the labels otherwise)."""
    found = {c.label: c for c in controls}
    if label not in found:
        raise ValueError(f"control {label!r} is unknown: use one of {list(found)}")
    return found[label]


def match_controls(runs: Iterable[tuple[RunResults, Any]], profile: str, controls: Iterable[Control],
                   overrides: Mapping[str, Any] | None = None) -> dict[str, dict[int, tuple[RunResults, Any]]]:
    """{control label: {seed: (RunResults, RunQueries)}} of the runs that ``profile`` with ``overrides`` and
    the control's fields trains (the rule of :func:`sagkit.report.results_folder.profile_runs`)."""
    runs = list(runs)
    out: dict[str, dict[int, tuple[RunResults, Any]]] = {}
    for control in controls:
        chosen = profile_runs(runs, profile, {**dict(overrides or {}), **dict(control.fields)})
        for results, queries in chosen:
            if results.depths == control.depths:
                out.setdefault(control.label, {})[results.seed] = (results, queries)
    return out


def _row(results: RunResults, queries: Any) -> dict:
    return tables.table1_row(results, queries.scores["single"])


def _grid_columns(grid_stats: Iterable[Mapping | None], depth: int) -> dict:
    found = [g["depths"].get(f"D{depth}") for g in grid_stats if g is not None]
    found = [g for g in found if g is not None]
    if not found:
        return {"uniform_grids": math.nan, "grid_entropy": math.nan, "grid_peak": math.nan, "grid_runs": 0}
    weights = [g["num_images"] for g in found]
    share = sum(g["uniform_fraction"] * w for g, w in zip(found, weights)) / sum(weights)
    return {"uniform_grids": 100.0 * share, "grid_entropy": statistics.median(g["entropy_median"] for g in found),
            "grid_peak": statistics.median(g["peak_median"] for g in found), "grid_runs": len(found)}


def controls_frame(runs: Iterable[tuple[RunResults, Any]], profile: str, controls: Iterable[Control] = CONTROLS,
                   overrides: Mapping[str, Any] | None = None,
                   cost: Callable[[ExperimentConfig, int], Mapping[str, float]] | None = None,
                   grid_stats: Callable[[RunResults], Mapping | None] | None = None,
                   speeds: Mapping[str, float] | None = None) -> pd.DataFrame:
    """One row per control with finished runs: R1/R5/R10/mAP means over seeds (percent) with ``*_sd`` and the
    95% interval ``*_low``/``*_high``; ``d{R1,mAP}_ref*`` against the control's ``against`` configuration and
    ``d{R1,mAP}_base*`` against the baseline (paired, on the seeds both have, with verdicts); ``params_M`` and
    ``gflops`` from ``cost(config, num_classes)`` (e.g. ``sagkit.engine.builders.model_cost``);
    ``train_img_s`` the training speed: ``speeds[label]`` where given (one benchmark timing every control alike,
    ``benchmarks/bench_controls.py``), else the seeds' mean speed measured while training; for SAG runs ``uniform_grids`` (% of test images
    whose grid is exactly uniform), ``grid_entropy`` and ``grid_peak`` (medians) from ``grid_stats(results)``
    (``None`` where a run has none)."""
    controls = list(controls)
    matched = match_controls(runs, profile, controls, overrides)
    rows_of = {label: {seed: _row(*pair) for seed, pair in seeds.items()} for label, seeds in matched.items()}
    baseline = rows_of.get("Baseline", {})
    out = []
    for control in controls:
        if control.label not in matched:
            continue
        seeds = dict(sorted(rows_of[control.label].items()))
        pairs = [matched[control.label][s] for s in seeds]
        row: dict[str, Any] = {"control": control.label, "question": control.question,
                               "against": control.against or "-"}
        for metric in tables.METRICS:
            row[tables.COLUMNS[metric]] = statistics.fmean(float(r[metric]) for r in seeds.values())
        against_base = seed_statistics(seeds, baseline if control.label != "Baseline" else {}, tables.COLUMNS,
                                       control.label)  # the spread and interval too
        row.update({k: v for k, v in against_base.items() if not k.startswith(("dR1", "dmAP", "verdict_"))})
        against_ref = seed_statistics(seeds, rows_of.get(control.against, {}) if control.against else {},
                                      tables.COLUMNS, control.label)
        for prefix, paired in (("ref", against_ref), ("base", against_base)):
            for metric in COMPARED:
                column = tables.COLUMNS[metric]
                for end in ("", "_low", "_high"):
                    row[f"d{column}_{prefix}{end}"] = paired[f"d{column}{end}"]
                row[f"verdict_{column}_{prefix}"] = paired[f"verdict_{column}"]
        first = pairs[0][0]
        if cost is not None:
            row.update(cost(ExperimentConfig.from_run(dict(first.config)), first.num_classes))
        during = [float(r.timings["img_per_s_mean"]) for r, _ in pairs if r.timings.get("img_per_s_mean")]
        row["train_img_s"] = statistics.fmean(during) if during else math.nan
        if speeds is not None and control.label in speeds:
            row["train_img_s"] = float(speeds[control.label])
        if control.depths and grid_stats is not None:
            row.update(_grid_columns((grid_stats(r) for r, _ in pairs), control.depths[-1]))
        row["runs"] = "; ".join(r.name for r, _ in pairs)
        out.append(row)
    return pd.DataFrame(out)


def controls_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """The controls table as people read it: R1 and mAP as ``mean ± sd [95% interval]``, the paired R1 and mAP
    differences (control minus the configuration in "compared with", then minus the baseline) with their
    95% intervals and verdicts, cost, and how uniform the grids are."""
    out = []
    for row in frame.to_dict("records"):
        item = {"control": row["control"], "seeds": row["seeds"]}
        for column in ("R1", "mAP"):
            item[column] = tables.spread(row[column], row[f"{column}_sd"], row[f"{column}_low"], row[f"{column}_high"])
        item["compared with"] = row["against"]
        for prefix, name in (("ref", "difference"), ("base", "vs Baseline")):
            for column in ("R1", "mAP"):
                d = row[f"d{column}_{prefix}"]
                item[f"{column} {name}"] = (tables.spread(d, math.nan, row[f"d{column}_{prefix}_low"],
                                                          row[f"d{column}_{prefix}_high"], "+")
                                            + (f" ({row[f'verdict_{column}_{prefix}']})" if not math.isnan(d) else ""))
        item["params (M)"] = f"{row['params_M']:.2f}" if "params_M" in row else "-"
        item["GFLOPs"] = f"{row['gflops']:.3f}" if "gflops" in row else "-"
        item["train img/s"] = "-" if math.isnan(row["train_img_s"]) else f"{row['train_img_s']:.1f}"
        uniform = row.get("uniform_grids", math.nan)
        partial = row.get("grid_runs", 0) < row["n_seeds"]  # grids only of the runs whose checkpoint was at hand
        item["uniform grids"] = "-" if uniform is None or math.isnan(uniform) else f"{uniform:.1f} %" + (
            f" ({int(row['grid_runs'])} of {int(row['n_seeds'])} seeds)" if partial else "")
        entropy = row.get("grid_entropy", math.nan)
        item["grid entropy"] = "-" if entropy is None or math.isnan(entropy) else f"{entropy:.4f}"
        out.append(item)
    return pd.DataFrame(out)


def controls_title(dataset: str, profile: str, seeds: str) -> str:
    """The heading every printed controls table carries."""
    return f"Why does D4 win? Controls on {dataset}, profile {profile}, seeds {seeds} (single query, no re-ranking)"


def write_controls(frame: pd.DataFrame, out_dir: str | Path, name: str, title: str) -> list[Path]:
    """``name.csv``/``.md`` (the full frame) and ``name_summary.csv``/``.md`` in ``out_dir``, atomically."""
    files = list(tables.write_table(frame, out_dir, name, title=title))
    files += tables.write_table(controls_summary(frame), out_dir, f"{name}_summary", title=title)
    return files


SPEED_FILE = Path("bench") / "controls_speed.json"


def kept_speeds(results_dir: str | Path, profile: str) -> tuple[dict[str, float] | None, str]:
    """({control label: training img/s}, where they come from) of ``<results_dir>/bench/controls_speed.json``
    (written by ``benchmarks/bench_controls.py``) when it was measured for ``profile``; (None, note) otherwise."""
    path = Path(results_dir) / SPEED_FILE
    if not path.is_file():
        return None, "train img/s: measured while training"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        speeds = {label: float(row["img_per_s"]) for label, row in data["controls"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{path} is not a controls speed file of benchmarks/bench_controls.py ({err}): run it "
                         "again or delete the file") from None
    if data.get("profile") != profile:
        return None, "train img/s: measured while training"
    return speeds, (f"train img/s: benchmarks/bench_controls.py on {data.get('cpu')}, {data.get('threads')} thread, "
                    f"batch {data.get('batch')}, median of {data.get('rounds')} interleaved rounds")


def kept_controls(results_dir: str | Path, dataset: str, profile: str, out_dir: str | Path,
                  overrides: Mapping[str, Any] | None = None) -> dict:
    """The controls tables of the runs kept in ``results_dir/<dataset>/`` (``results controls``): ``controls``
    (D4 and its controls) and, where D1-D3 runs are kept, ``controls_shallow``, each with its summary, in
    ``out_dir``; training speeds from :func:`kept_speeds`. Returns ``{"controls": frame, "controls_shallow":
    frame, "files": [...], "speed_note": text}``."""
    kept = read_results_folder(results_dir, dataset)
    speeds, note = kept_speeds(results_dir, profile)
    folder = Path(results_dir) / dataset
    done: dict[str, Any] = {"files": [], "speed_note": note}
    for name, controls in (("controls", CONTROLS), ("controls_shallow", SHALLOW_CONTROLS)):
        frame = controls_frame(kept, profile, controls, overrides, cost=model_cost,
                               grid_stats=lambda results: read_grid_stats(folder / results.name),
                               speeds=speeds)
        if frame.empty or (name == "controls_shallow" and not frame["control"].str.contains("uniform").any()):
            continue
        seeds = sorted({int(s) for text in frame["seeds"] for s in str(text).split(",")})
        title = controls_title(dataset, profile, ",".join(map(str, seeds))) + f"; {note}"
        done[name] = frame
        done["files"] += write_controls(frame, out_dir, name, title)
        done["files"] += save_figure(plot_controls(frame, title=controls_title(dataset, profile, ",".join(map(
            str, seeds)))), out_dir, name, formats=("png",))
    if "controls" not in done:
        raise FileNotFoundError(f"{folder} holds no run of profile {profile!r} that is D4 or one of its controls")
    return done


def _verdict(frame: pd.DataFrame, label: str, column: str = "R1") -> tuple[str, str] | None:
    rows = frame[frame["control"] == label]
    if rows.empty or math.isnan(rows.iloc[0][f"d{column}_ref"]):
        return None
    row = rows.iloc[0]
    text = tables.spread(row[f"d{column}_ref"], math.nan, row[f"d{column}_ref_low"], row[f"d{column}_ref_high"], "+")
    return text, row[f"verdict_{column}_ref"]


def controls_conclusion(frame: pd.DataFrame) -> list[str]:
    """One sentence per control measured against D4, read off the paired R1 differences and their verdicts
    (what the table says, nothing more; "not distinguishable" means the 95% interval holds 0)."""
    meaning = {
        "Baseline ×2 input": ("the baseline fed the 2× input", "resolution alone"),
        "Baseline OS16": ("the baseline at output stride 16", "a finer final map alone"),
        "D4 uniform": ("D4 with a uniform grid", "everything but the learned grid"),
        "Baseline": ("the baseline", "the backbone alone"),
    }
    out = []
    for label, (who, what) in meaning.items():
        found = _verdict(frame, label)
        if found is None:
            continue
        text, verdict = found
        if verdict == "not distinguishable":
            out.append(f"{who[0].upper() + who[1:]} is not distinguishable from D4 in rank-1 ({text} points, "
                       f"paired): {what} matches D4 within this interval.")
        elif verdict == "worse":
            out.append(f"{who[0].upper() + who[1:]} is below D4 in rank-1 ({text} points): {what} does not "
                       "explain all of D4's gain.")
        else:
            out.append(f"{who[0].upper() + who[1:]} is above D4 in rank-1 ({text} points).")
    return out
