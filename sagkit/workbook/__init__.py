"""The workbook: what the notebooks call, in small modules.

``parameters`` (notebook parameter checks and path rules), ``session`` (the :class:`Workbook` object: runs,
tables, retrieval), ``pictures`` (ranked lists, attention grids, the explorer's data), ``runner``
(:func:`run_workbook`, notebooks 01..07 under papermill) and ``your_images`` (what notebook 07 gets there:
a folder copy of the test split, the run, the queries). Notebooks call :func:`open_workbook` with their
parameters, then ``wb.train(depths)``, ``wb.table1()``, ``wb.save_figure`` ...
"""

from sagkit.workbook.parameters import (DATASETS, DEPTH_HELP, PROFILES, WorkbookParameters, check_notebook_parameters,
                         check_parameters, default_figures_dir, figures_dir_for, parse_attention_depths,
                         parse_depth_list, parse_depths, resolve_path, workbook_base)
from sagkit.workbook.runner import DEFAULT_DEPTHS, NOTEBOOKS, last_ablation_copy, notebooks_dir, run_workbook, workbook_plan
from sagkit.workbook.session import Workbook, open_workbook

__all__ = [
    "DATASETS",
    "DEFAULT_DEPTHS",
    "DEPTH_HELP",
    "NOTEBOOKS",
    "PROFILES",
    "Workbook",
    "WorkbookParameters",
    "check_notebook_parameters",
    "check_parameters",
    "default_figures_dir",
    "figures_dir_for",
    "last_ablation_copy",
    "notebooks_dir",
    "open_workbook",
    "parse_attention_depths",
    "parse_depth_list",
    "parse_depths",
    "resolve_path",
    "run_workbook",
    "workbook_base",
    "workbook_plan",
]
