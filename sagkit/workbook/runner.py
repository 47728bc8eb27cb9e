"""The papermill runner: :func:`run_workbook` executes notebooks 01..05 in order (03 once per configuration),
each training what it needs or reusing finished runs, and logs one line per notebook."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sagkit.choices import DEFAULT_SEEDS, parse_seeds
from sagkit.tables import config_label

from .parameters import check_parameters, parse_depth_list, parse_depths, resolve_path, workbook_base

__all__ = ["DEFAULT_DEPTHS", "NOTEBOOKS", "last_ablation_copy", "notebooks_dir", "run_workbook", "workbook_plan"]

log = logging.getLogger("sagkit.workbook")

NOTEBOOKS = (
    "01_data_exploration",
    "02_baseline",
    "03_ablation",
    "04_sota_tables",
    "05_attention_heatmaps",
)
DEFAULT_DEPTHS = ((), (1,), (2,), (3,), (4,))
REPO_ROOT = Path(__file__).resolve().parents[2]


def notebooks_dir() -> Path:
    """The repository's ``notebooks/`` folder (sagkit is installed in editable mode)."""
    folder = REPO_ROOT / "notebooks"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} does not exist: run the workbook from a checkout of the sagkit repository "
            "(pip install -e .), where notebooks/ sits next to the sagkit package"
        )
    return folder


def workbook_plan(configs: Sequence[tuple[int, ...]] = DEFAULT_DEPTHS,
                  seeds: Sequence[int] = DEFAULT_SEEDS) -> list[tuple[str, dict, str]]:
    """(notebook, extra parameters, output stem) in execution order: 01, 02, 03 per config (each training
    every seed of ``seeds``), 04, 05."""
    plan: list[tuple[str, dict, str]] = [("01_data_exploration", {}, "01_data_exploration"),
                                         ("02_baseline", {}, "02_baseline")]
    for depths in configs:
        value: Any = depths[0] if len(depths) == 1 else (",".join(map(str, depths)) if depths else 0)
        plan.append(("03_ablation", {"depth": value, "seeds": ",".join(map(str, seeds))},
                     f"03_ablation_{config_label(depths).replace(',', '-')}"))
    plan.append(("04_sota_tables", {}, "04_sota_tables"))
    singles = [d[0] for d in configs if len(d) == 1]
    plan.append(("05_attention_heatmaps", {"depths": ",".join(map(str, singles or [4])), "interactive": False},
                 "05_attention_heatmaps"))
    return plan


def last_ablation_copy(configs: Sequence[tuple[int, ...]] = DEFAULT_DEPTHS) -> str:
    """The stem of notebook 03's last execution in :func:`workbook_plan` (e.g. '03_ablation_D4'): the copy
    whose Table 1 holds every configuration."""
    return [stem for name, _, stem in workbook_plan(configs) if name == "03_ablation"][-1]


@contextlib.contextmanager
def _environment(**values: str):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _ensure_log_handler() -> None:
    logger = logging.getLogger("sagkit")
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)}m{secs:04.1f}s" if minutes else f"{secs:.1f}s"


def run_workbook(
    dataset: str = "synthetic",
    data_root: str | os.PathLike | None = None,
    profile: str = "cpu",
    device: str = "auto",
    runs_dir: str | os.PathLike = "runs",
    figures_dir: str | os.PathLike | None = None,
    depths: Any = (0, 1, 2, 3, 4),
    retrain: bool = False,
    notebooks: Sequence[str] | None = None,
    output_dir: str | os.PathLike | None = None,
    kernel_name: str = "python3",
    parameters: Mapping[str, Any] | None = None,
    seeds: Any = DEFAULT_SEEDS,
) -> list[Path]:
    """Execute notebooks 01..05 with papermill, in order; 03 once per configuration in ``depths``.

    Each notebook trains what it needs or reuses finished runs (``retrain=True`` retrains each
    configuration once). ``seeds`` (e.g. "0,1,2"): notebook 03 trains every configuration once per seed, and
    Table 1 and Figure 3 give the seeds' means, spread and intervals; the other notebooks use seed 0.
    Executed notebooks go to ``output_dir`` (default ``<runs_dir>/notebooks/<dataset>/``), figures and
    tables to ``figures_dir`` (default ``<runs_dir>/figures/<dataset>/``, git-ignored; a given folder gets
    ``/<dataset>`` for real data), never to the committed figures unless asked.
    ``notebooks`` restricts to some of :data:`NOTEBOOKS`; ``parameters`` are passed to every notebook.
    Logs one line per notebook and the total time; returns the executed notebooks' paths.
    Stops at the first failing notebook (papermill's PapermillExecutionError, naming the output file).
    """
    import papermill  # here, not at the top: every notebook kernel imports sagkit.workbook, none needs papermill

    params = check_parameters(dataset, data_root, profile, device, runs_dir, figures_dir, retrain, seeds=seeds)
    configs = parse_depth_list(depths)
    if notebooks is not None:
        unknown = sorted(set(notebooks) - set(NOTEBOOKS))
        if unknown:
            raise ValueError(f"unknown notebook(s) {unknown}: choose from {', '.join(NOTEBOOKS)}")
    source = notebooks_dir()
    out_dir = resolve_path(output_dir) if output_dir is not None else params.runs_dir / "notebooks" / dataset
    out_dir.mkdir(parents=True, exist_ok=True)
    common = {
        "dataset": params.dataset,
        "data_root": str(params.data_root) if params.data_root else None,
        "profile": params.profile,
        "device": params.device,
        "runs_dir": str(params.runs_dir),
        "figures_dir": str(resolve_path(figures_dir)) if figures_dir else None,  # None: the same default there
        **dict(parameters or {}),
    }
    plan = [step for step in workbook_plan(configs, params.seeds) if notebooks is None or step[0] in notebooks]
    _ensure_log_handler()
    log.info("sagkit workbook: %d notebooks, dataset=%s profile=%s device=%s seeds=%s; runs in %s, figures in %s",
             len(plan), params.dataset, params.profile, params.device, ",".join(map(str, params.seeds)),
             params.runs_dir, params.figures_dir)
    retrained: set = set()
    executed = []
    start = time.perf_counter()
    for i, (name, extra, stem) in enumerate(plan, start=1):
        step_params = {**common, **extra}
        trains = _trained_runs(name, extra, DEFAULT_SEEDS[0])
        step_params["retrain"] = bool(retrain and trains and not trains <= retrained)
        retrained |= trains
        shown = {k: v for k, v in extra.items() if k != "interactive" and not (k == "seeds" and v == "0")}
        label = name + "".join(f" {k}={v}" for k, v in shown.items())
        output = out_dir / f"{stem}.ipynb"
        log.info("[%d/%d] %s ...", i, len(plan), label)
        t0 = time.perf_counter()
        with _environment(SAGKIT_HEADLESS="1"):
            papermill.execute_notebook(
                str(source / f"{name}.ipynb"), str(output), parameters=step_params, kernel_name=kernel_name,
                cwd=str(workbook_base()), progress_bar=False, log_output=False,
            )
        log.info("[%d/%d] %s done in %s -> %s", i, len(plan), label, _duration(time.perf_counter() - t0), output)
        executed.append(output)
    log.info("sagkit workbook: %d notebooks in %s; figures and tables in %s", len(plan),
             _duration(time.perf_counter() - start), params.figures_dir)
    return executed


def _trained_runs(name: str, extra: Mapping, other_seed: int) -> set:
    """The (depths, seed) runs a notebook of the plan trains; notebooks other than 03 train ``other_seed``."""
    if name == "02_baseline":
        return {((), other_seed)}
    if name == "03_ablation":
        return {(parse_depths(extra["depth"]), seed) for seed in parse_seeds(extra["seeds"])}
    if name == "04_sota_tables":
        return {((4,), other_seed)}
    if name == "05_attention_heatmaps":  # the baseline's activation maps stand beside the grids
        return {((), other_seed)} | {((d,), other_seed) for d in parse_depths(extra["depths"])}
    return set()
