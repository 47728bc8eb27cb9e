"""Run folders: ``<runs_dir>/<run name>/`` holding what a training run produced, and readers for notebooks.

Layout: ``config.json`` (the config it ran with), ``metrics.csv`` (one row per epoch), ``checkpoint_last.pt``
(resume point), ``checkpoint_best.pt`` (selected on validation), ``results.json`` (written last: its presence
with ``"complete": true`` marks a finished run; ``sagkit.runs.record``), ``features/`` (test features of the best checkpoint,
``sagkit.engine.feature_cache``), ``tensorboard/`` (the metrics as TensorBoard event files when tensorboard
is installed, ``sagkit.engine.tb_log``), ``per_query.npz`` (the test's per-query results, written just before
``results.json``, ``sagkit.runs.per_query``). ``.lock`` exists while a process trains the run
(``sagkit.runs.lock``); the readers below refuse an unfinished run that is locked.
"""

from __future__ import annotations

import csv
import io
import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any, Optional

import sagkit
from sagkit.config import ExperimentConfig

from sagkit.engine.builders import build_model
from sagkit.engine.device import place_model
from sagkit.engine.checkpoint import MODEL_ENTRIES, atomic_write_text, load_checkpoint, load_weights
from sagkit.engine.feature_cache import FEATURES_DIR
from sagkit.runs.lock import check_not_training
from sagkit.runs.record import RESULTS_FILE, RunResults, is_complete, read_results

__all__ = [
    "CONFIG_FILE",
    "METRICS_FILE",
    "RESULTS_FILE",
    "PER_QUERY_FILE",
    "CHECKPOINT_BEST",
    "CHECKPOINT_LAST",
    "checkpoint_path",
    "TENSORBOARD_DIR",
    "code_version",
    "prepare_run_dir",
    "read_config",
    "read_metrics",
    "write_metrics",
    "read_results",
    "is_complete",
    "load_run",
    "find_runs",
    "load_model_from_run",
    "run_model",
    "model_from_checkpoint",
    "check_run_checkpoint",
    "differing_fields",
]

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
PER_QUERY_FILE = "per_query.npz"
CHECKPOINT_BEST = "checkpoint_best.pt"
CHECKPOINT_LAST = "checkpoint_last.pt"
TENSORBOARD_DIR = "tensorboard"
RUN_FILES = (CONFIG_FILE, METRICS_FILE, RESULTS_FILE, PER_QUERY_FILE, CHECKPOINT_BEST, CHECKPOINT_LAST)

log = logging.getLogger("sagkit.engine")


def code_version() -> dict:
    """``{"sagkit": __version__, "git_commit": sha or None, "git_dirty": bool or None}``."""
    info: dict[str, Any] = {"sagkit": getattr(sagkit, "__version__", None), "git_commit": None, "git_dirty": None}
    repo = Path(sagkit.__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=5
        )
        if commit.returncode == 0:
            info["git_commit"] = commit.stdout.strip()
            status = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=repo, capture_output=True, text=True, timeout=5,
            )
            info["git_dirty"] = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def read_config(run_dir: str | Path) -> ExperimentConfig:
    """The config a run was started with."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: {run_dir} is not a sagkit run folder")
    return ExperimentConfig.from_json(path, stored=True)


def prepare_run_dir(config: ExperimentConfig, retrain: bool = False) -> Path:
    """Create the run folder and write ``config.json``.

    ``retrain`` deletes what an earlier run left there. Otherwise a folder whose ``config.json`` describes a
    different experiment (same explicit ``name``, other settings) is refused rather than mixed up.
    """
    run_dir = config.run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    if retrain:
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
        shutil.rmtree(run_dir / FEATURES_DIR, ignore_errors=True)
        if (run_dir / TENSORBOARD_DIR).is_dir():
            shutil.rmtree(run_dir / TENSORBOARD_DIR)
    cfg_path = run_dir / CONFIG_FILE
    if cfg_path.is_file():
        changed = differing_fields(read_config(run_dir), config)
        if changed:
            raise ValueError(
                f"run folder {run_dir} holds a run with a different config (fields {changed} differ); "
                "choose another name, or pass retrain=True to replace it"
            )
    config.to_json(cfg_path)
    return run_dir


def differing_fields(a: ExperimentConfig, b: ExperimentConfig) -> list[str]:
    """Names of the result fields in which two configs differ (empty: the same experiment)."""
    fa, fb = a.result_fields(), b.result_fields()
    return sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k))


def read_metrics(run_dir: str | Path) -> list[dict]:
    """Rows of ``metrics.csv`` as dicts, numbers converted (empty cells become None). A file that is not such a
    table (binary, no ``epoch`` column, an epoch that is not a whole number >= 1) raises ValueError naming it."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    damaged = "restore it, or train the run again (retrain=True, sagkit train --retrain)"
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = [{k: _number(v) for k, v in row.items()} for row in reader]
    except (UnicodeDecodeError, csv.Error, TypeError) as err:  # TypeError: a row longer than the header
        raise ValueError(f"{path} is not a metrics table ({type(err).__name__}: {err}): {damaged}") from None
    if rows and "epoch" not in (reader.fieldnames or ()):
        raise ValueError(f"{path} has no 'epoch' column (columns: {reader.fieldnames}): {damaged}")
    for line, row in enumerate(rows, start=2):
        epoch = row["epoch"]
        if isinstance(epoch, float) and epoch.is_integer():
            row["epoch"] = epoch = int(epoch)  # "3.0", as another program may write it
        if not isinstance(epoch, int) or epoch < 1:
            raise ValueError(f"{path}, line {line}: epoch {epoch!r} is not a whole number >= 1: {damaged}")
    return rows


def _number(text: Optional[str]) -> Any:
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def write_metrics(run_dir: str | Path, rows: list[dict]) -> Path:
    """Rewrite ``metrics.csv`` atomically with ``rows`` (columns in first-seen order)."""
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return atomic_write_text(Path(run_dir) / METRICS_FILE, buf.getvalue())


def load_run(run_dir: str | Path) -> dict:
    """Everything about one run for a notebook: ``{"name", "run_dir", "config": ExperimentConfig,
    "results": RunResults or None, "metrics": list of row dicts, "complete": bool}``.

    Raises ``RunLocked`` while another process is still training the run.
    """
    run_dir = Path(run_dir)
    results = read_results(run_dir)
    complete = results is not None and results.complete
    check_not_training(run_dir, complete)
    config = read_config(run_dir)
    return {
        "name": run_dir.name,
        "run_dir": str(run_dir),
        "config": config,
        "results": results,
        "metrics": read_metrics(run_dir),
        "complete": complete,
    }


def find_runs(runs_dir: str | Path = "runs") -> list[RunResults]:
    """The :class:`RunResults` of the finished runs under ``runs_dir``, by folder name (ValueError naming a
    damaged ``results.json``)."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    found = (read_results(sub) for sub in sorted(p for p in runs_dir.iterdir() if p.is_dir()))
    return [results for results in found if results is not None and results.complete]


def model_from_checkpoint(path: str | Path) -> tuple[Any, ExperimentConfig, dict]:
    """``(model on the CPU, its config, the checkpoint)`` rebuilt from a sagkit checkpoint file.

    No ImageNet weights are read (the checkpoint holds every weight). A file that is not a sagkit
    checkpoint, or whose weights do not fit its config, raises ValueError naming it."""
    ckpt = load_checkpoint(path, required=MODEL_ENTRIES)
    try:
        config = ExperimentConfig.from_run(ckpt["config"])
    except ValueError as err:
        raise ValueError(f"checkpoint {path} holds an invalid config: {err}") from None
    model = build_model(config, ckpt["num_classes"], pretrained=False)
    load_weights(model, ckpt["model"], path)
    return model, config, ckpt


def load_model_from_run(run_dir: str | Path, which: str = "best", device: Any = "cpu"):
    """The trained ``SAGNet`` of a run, weights from ``checkpoint_<which>.pt``, in eval mode on ``device`` (in the
    run's memory layout, :func:`~sagkit.engine.device.place_model`).

    ``which``: "best" or "last". A checkpoint of another experiment than the run's ``config.json`` (copied
    from another run folder) raises ValueError instead of returning a model the run did not train.
    Raises ``RunLocked`` while another process is still training the run.
    """
    model, config = run_model(run_dir, which)
    return place_model(model, config, device).eval()


def checkpoint_path(run_dir: str | Path, which: str = "best") -> Path:
    """``<run_dir>/checkpoint_<which>.pt`` for ``which`` "best" or "last" (ValueError otherwise)."""
    if which not in ("best", "last"):
        raise ValueError(f"which={which!r} is invalid: use 'best' or 'last'")
    return Path(run_dir) / (CHECKPOINT_BEST if which == "best" else CHECKPOINT_LAST)


def run_model(run_dir: str | Path, which: str = "best") -> tuple[Any, ExperimentConfig]:
    """``(model on the CPU, its config)`` from a run folder's ``checkpoint_<which>.pt``, with the checks of
    :func:`load_model_from_run` (the run is not being trained; the checkpoint is this run's)."""
    run_dir = Path(run_dir)
    ckpt_path = checkpoint_path(run_dir, which)
    check_not_training(run_dir, is_complete(run_dir))
    if not ckpt_path.is_file():
        raise FileNotFoundError(
            f"{ckpt_path} does not exist: the run in {run_dir} has not saved a {which} checkpoint yet"
        )
    model, config, _ = model_from_checkpoint(ckpt_path)
    check_run_checkpoint(run_dir, ckpt_path, config)
    return model, config


def check_run_checkpoint(run_dir: str | Path, ckpt_path: str | Path, config: ExperimentConfig) -> None:
    """Raise ValueError when the checkpoint in a run folder (whose config is ``config``) belongs to another
    experiment than the run's ``config.json``, e.g. one copied over from another run folder."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        return
    changed = differing_fields(read_config(run_dir), config)
    if changed:
        raise ValueError(f"{ckpt_path} was written by another experiment than the run in {run_dir} (fields "
                         f"{changed} differ from its {CONFIG_FILE}): put back this run's checkpoint, or train "
                         "the run again")
