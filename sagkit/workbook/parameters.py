"""Notebook parameters: checks that fail at once with a message naming what is allowed, and the path rules.

Paths: relative ``runs_dir``, ``figures_dir`` and ``data_root`` are resolved against the working
directory, except when that is the repository's ``notebooks/`` folder (where JupyterLab starts a
kernel): then against the repository root. With no ``figures_dir`` the workbook writes into
``<runs_dir>/figures/<dataset>/`` (git-ignored), so it never touches the committed figures, which ``make
figures`` regenerates from ``results/``. A ``figures_dir`` that is given gets ``/<dataset>`` added for any
dataset other than ``synthetic``.
"""

from __future__ import annotations

import ast
import difflib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sagkit.choices import DEFAULT_SEEDS, DEPTH_HELP, check_device, parse_depths, parse_seeds
from sagkit.config import PROFILES, get_profile
from sagkit.data.registry import DATASETS

__all__ = ["DATASETS", "DEPTH_HELP", "PROFILES", "WorkbookParameters", "check_notebook_parameters",
           "check_parameters", "default_figures_dir", "figures_dir_for", "injected_parameters",
           "parse_attention_depths", "parse_depth_list", "parse_depths", "resolve_path", "workbook_base"]


def parse_attention_depths(value: Any) -> tuple[int, ...]:
    """Notebook 05's ``depths``: single-depth runs whose grids are shown, e.g. 4, '1,2,3,4' or [2, 4]."""
    try:
        depths = parse_depths(value)
    except ValueError:
        depths = ()
    if not depths:
        raise ValueError(
            "depths (notebook 05) must name single-depth SAG runs to show: an integer 1..4 or a "
            f"comma-separated list such as '1,2,3,4' (the baseline has no attention grid); got {value!r}"
        )
    return depths


def parse_depth_list(value: Any) -> list[tuple[int, ...]]:
    """Several configurations: '0 1 2 3 4' or '0;1;1,2' or [0, 1, '1,2', (1, 2, 3)] → list of tuples."""
    if isinstance(value, str):
        value = [v for v in re.split(r"[;\s]+", value.strip()) if v]
    elif isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    configs = []
    for item in value:
        depths = parse_depths(item)
        if depths not in configs:
            configs.append(depths)
    if not configs:
        raise ValueError(f"give at least one configuration ({DEPTH_HELP})")
    return configs


def workbook_base(cwd: Path | None = None) -> Path:
    """The folder relative paths are resolved against (see the module docstring)."""
    cwd = Path.cwd() if cwd is None else Path(cwd)
    if cwd.name == "notebooks" and (cwd.parent / "pyproject.toml").is_file():
        return cwd.parent
    return cwd


def resolve_path(path: str | os.PathLike, base: Path | None = None) -> Path:
    """``path`` made absolute against :func:`workbook_base` (``~`` expanded)."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (workbook_base() if base is None else Path(base)) / p


def figures_dir_for(figures_dir: str | os.PathLike, dataset: str, base: Path | None = None) -> Path:
    """``figures_dir`` for the synthetic data, ``figures_dir/<dataset>`` for any other dataset."""
    root = resolve_path(figures_dir, base)
    return root if dataset == "synthetic" else root / dataset


def default_figures_dir(runs_dir: str | os.PathLike, dataset: str, base: Path | None = None) -> Path:
    """The workbook's figures folder when none is given: ``<runs_dir>/figures/<dataset>``, a working folder
    inside the git-ignored runs folder (never a committed path)."""
    return resolve_path(runs_dir, base) / "figures" / dataset


def _optional_text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return None if text in ("", "None", "none") else text


@dataclass(frozen=True)
class WorkbookParameters:
    """Checked notebook parameters; paths absolute; ``figures_dir`` already per dataset."""

    dataset: str
    data_root: Path | None
    profile: str
    device: str
    runs_dir: Path
    figures_dir: Path
    depths: tuple[int, ...] | None = None
    retrain: bool = False
    overrides: dict = field(default_factory=dict)
    attention_depths: tuple[int, ...] | None = None
    seeds: tuple[int, ...] = DEFAULT_SEEDS


def check_parameters(
    dataset: str = "synthetic",
    data_root: str | os.PathLike | None = None,
    profile: str = "cpu",
    device: str = "auto",
    runs_dir: str | os.PathLike = "runs",
    figures_dir: str | os.PathLike | None = None,
    retrain: bool = False,
    depth: Any = None,
    overrides: Mapping[str, Any] | None = None,
    base: Path | None = None,
    attention_depths: Any = None,
    seeds: Any = DEFAULT_SEEDS,
) -> WorkbookParameters:
    """Validate the common notebook parameters; raise ValueError/FileNotFoundError saying what is allowed.

    ``dataset``: one of :data:`DATASETS`. ``data_root``: required and must exist for the real datasets;
    optional for ``synthetic`` (default: the generator's cache folder). ``profile``: one of :data:`PROFILES`.
    ``device``: auto, cpu, cuda or cuda:N. ``figures_dir``: None (or empty) for :func:`default_figures_dir`.
    ``depth`` (notebook 03): see :func:`parse_depths`.
    ``attention_depths`` (notebook 05): see :func:`parse_attention_depths`.
    ``seeds`` (notebook 03): training seeds, e.g. 0 or "0,1,2" (each its own run; Table 1 uses these).
    ``overrides``: extra ExperimentConfig fields (e.g. ``{"epochs": 1}``).
    """
    if not isinstance(dataset, str) or dataset not in DATASETS:
        raise ValueError(f"dataset {dataset!r} is unknown: use one of {', '.join(DATASETS)}")
    if not isinstance(profile, str) or profile not in PROFILES:
        raise ValueError(f"profile {profile!r} is unknown: use one of {', '.join(PROFILES)}")
    check_device(device)
    if not isinstance(retrain, bool):
        raise ValueError(f"retrain must be True or False; got {retrain!r}")
    root_text = _optional_text(data_root)
    root = resolve_path(root_text, base) if root_text else None
    if dataset != "synthetic":
        if root is None:
            raise ValueError(
                f"dataset {dataset!r} needs data_root: the folder that holds the {dataset} files "
                "(see the README's data section), e.g. data_root='../shared/data/cuhk01'"
            )
        if not root.exists():
            raise FileNotFoundError(
                f"data_root {str(root)!r} does not exist: pass data_root=<the folder holding {dataset}> "
                f"(relative paths are resolved against {workbook_base() if base is None else base})"
            )
    if root is not None and root.is_file() and dataset != "cuhk03":  # cuhk03 may be given its .mat file
        raise NotADirectoryError(f"data_root {str(root)!r} is a file: pass the folder holding {dataset}")
    depths = None if depth is None else parse_depths(depth)
    shown = None if attention_depths is None else parse_attention_depths(attention_depths)
    seed_list = parse_seeds(seeds)
    if _optional_text(runs_dir) is None:
        raise ValueError(f"runs_dir must be a folder path; got {runs_dir!r}")
    given = _optional_text(figures_dir)
    figures = figures_dir_for(given, dataset, base) if given else default_figures_dir(runs_dir, dataset, base)
    for name, value in (("runs_dir", runs_dir), ("figures_dir", figures)):
        if _optional_text(value) is None:
            raise ValueError(f"{name} must be a folder path; got {value!r}")
        if resolve_path(value, base).is_file():
            raise NotADirectoryError(f"{name} {str(resolve_path(value, base))!r} is a file: pass a folder path")
    if overrides is not None and not isinstance(overrides, Mapping):
        raise ValueError(f"overrides must be a dict of ExperimentConfig fields, e.g. {{'epochs': 1}}; "
                         f"got {overrides!r}")
    try:
        get_profile(profile, **dict(overrides or {}))  # a bad field fails here, not in the middle of a notebook
    except (TypeError, ValueError) as err:
        raise ValueError(f"overrides: {err}") from None
    return WorkbookParameters(
        dataset=dataset,
        data_root=root,
        profile=profile,
        device=device,
        runs_dir=resolve_path(runs_dir, base),
        figures_dir=figures,
        depths=depths,
        retrain=retrain,
        overrides=dict(overrides or {}),
        attention_depths=shown,
        seeds=seed_list,
    )


# papermill -p NAME VALUE: papermill runs the notebook's cell tagged "parameters", then a cell it injects whose
# source starts with this comment and assigns every NAME, known to the notebook or not.
INJECTED_HEADER = "# Parameters"


def _assigned_names(source: str) -> list[str]:
    """Names a cell's source assigns at its top level (``name = ...``, ``name: type = ...``), in order."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names: list[str] = []
    for node in tree.body:
        targets = (node.targets if isinstance(node, ast.Assign)
                   else [node.target] if isinstance(node, ast.AnnAssign) else [])
        names += [t.id for t in targets if isinstance(t, ast.Name) and t.id not in names]
    return names


def injected_parameters(history: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(injected names, declared names)`` from a kernel's input history (IPython's ``In``): the last cell papermill
    injected and the ``parameters`` cell run just before it. Both empty when nothing was injected."""
    for index in range(len(history) - 1, 0, -1):
        if str(history[index]).lstrip().startswith(INJECTED_HEADER):
            return _assigned_names(history[index]), _assigned_names(history[index - 1])
    return [], []


def check_notebook_parameters(namespace: Mapping[str, Any]) -> None:
    """A notebook's first cell calls this with ``globals()``: ValueError naming each papermill parameter the
    notebook does not declare (a misspelt ``-p dept 1`` would otherwise run the default) and listing those it
    does. Outside papermill (no injected cell in ``In``) it does nothing."""
    history = namespace.get("In")
    if not isinstance(history, Sequence) or isinstance(history, str):
        return
    injected, declared = injected_parameters(history)
    unknown = [name for name in injected if name not in declared]
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, declared, n=1)
            hints.append(repr(name) + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValueError(f"unknown notebook parameter(s) {', '.join(hints)}: this notebook takes "
                         f"{', '.join(declared)}")
