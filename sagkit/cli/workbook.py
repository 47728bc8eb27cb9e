"""``sagkit workbook``: run the notebooks (``sagkit.workbook.run_workbook``)."""

from __future__ import annotations

import argparse

from sagkit.cli.common import configure_logging, optional_path
from sagkit.workbook import run_workbook


def run(args: argparse.Namespace) -> int:
    configure_logging()
    result = run_workbook(
        dataset=args.dataset, data_root=optional_path(args.data_root), profile=args.profile,
        device=args.device, runs_dir=args.runs_dir, figures_dir=args.figures_dir, seeds=args.seeds,
    )
    return int(result) if isinstance(result, int) else 0
