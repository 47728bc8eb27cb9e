"""``sagkit results {export,tables,compare,controls}``: thin layers over ``sagkit.report``."""

from __future__ import annotations

import argparse
from pathlib import Path

from sagkit.choices import parse_seeds
from sagkit.cli.common import CLIError, parse_overrides
from sagkit.config import PROFILES
from sagkit.report.controls import controls_summary, kept_controls
from sagkit.report.results_folder import compare_variants, export_runs, write_tables
from sagkit.report.table_view import show_table1
from sagkit.report.tables import to_markdown, write_table
from sagkit.workbook.parameters import figures_dir_for


def run_export(args: argparse.Namespace) -> int:
    written = export_runs(args.runs_dir, args.results_dir, device=args.device)
    for folder in written:
        print(folder)
    print(f"{len(written)} runs kept in {args.results_dir}")
    return 0


def _check_profile(name: str) -> None:
    """CLIError unless ``name`` is a profile (the results commands take any, not only the workbook's)."""
    if name not in PROFILES:
        raise CLIError(f"--profile {name!r} is unknown: use one of {', '.join(PROFILES)}")


def run_tables(args: argparse.Namespace) -> int:
    _check_profile(args.profile)
    seeds = None if args.seeds is None else parse_seeds(args.seeds)

    out = Path(args.out) if args.out else figures_dir_for("figures", args.dataset)
    done = write_tables(args.results_dir, args.dataset, args.profile, out, seeds=seeds,
                        overrides=parse_overrides(args.overrides))
    print(show_table1(done["table1"], args.dataset, args.profile + "".join(f" --set {o}" for o in args.overrides)))
    print(f"{len(done['files'])} files written in {out}")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    _check_profile(args.profile)
    frame = compare_variants(args.results_dir, args.dataset, args.profile, parse_overrides(args.overrides),
                             parse_overrides(args.against))
    if frame.empty:
        raise CLIError(f"no configuration of {args.results_dir}/{args.dataset} was kept both with "
                       f"{' '.join(args.overrides)} and with {' '.join(args.against) or 'the profile as it is'}: "
                       "train and export both sides first")
    print(to_markdown(frame), end="")
    if args.out:
        out = Path(args.out)
        change = ", ".join(args.overrides)
        write_table(frame, out.parent, out.name, title=f"{args.dataset}: with {change} against "
                    f"{', '.join(args.against) or 'the profile as it is'} ({args.profile} profile)")
    return 0


def run_controls(args: argparse.Namespace) -> int:
    _check_profile(args.profile)
    out = Path(args.out) if args.out else Path(args.results_dir) / "tables" / args.dataset / args.profile
    done = kept_controls(args.results_dir, args.dataset, args.profile, out, parse_overrides(args.overrides))
    for name in ("controls", "controls_shallow"):
        if name in done:
            print(to_markdown(controls_summary(done[name])), end="")
    print(f"{len(done['files'])} files written in {out}")
    return 0
