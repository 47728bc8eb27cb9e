"""``sagkit train``: the config that the flags describe (:func:`config_from_args`), then ``sagkit.runs.train``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sagkit.atomic import check_folder
from sagkit.cli.common import CLIError, configure_logging, depths_flag, optional_path, parse_overrides
from sagkit.cli.flags.train import CONFIG_FLAGS
from sagkit.cli.metrics import format_metrics
from sagkit.config import PROFILE_COSTS, ExperimentConfig
from sagkit.runs import train
from sagkit.engine.distributed import env_dist_info
from sagkit.runs.config import run_config


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    """The ExperimentConfig that ``train`` arguments describe: ``--config`` or ``--profile``, then ``--set``,
    then the flags (:func:`sagkit.runs.config.run_config`'s rule)."""
    flags: dict[str, Any] = {}
    for dest, field_name in CONFIG_FLAGS.items():
        value = getattr(args, dest, None)
        if value is not None:
            flags[field_name] = optional_path(value) if dest == "data_root" else value
    if args.depths is not None:
        flags["depths"] = depths_flag(args.depths)
    set_values = parse_overrides(args.overrides)
    if args.config:
        base = ExperimentConfig.from_json(Path(args.config), stored=True)
        note_legacy_gaps(Path(args.config))
    elif args.profile is None:
        raise CLIError(no_profile_message())
    else:
        base = args.profile
    return run_config(base, **{**set_values, **flags})


def note_legacy_gaps(path: Path) -> None:
    """Say on stderr which fields a ``--config`` file lacks that take their value from before they existed."""
    gaps = ExperimentConfig.legacy_gaps(json.loads(path.read_text(encoding="utf-8")))
    if gaps:
        values = ", ".join(f"{k}={json.dumps(v)}" for k, v in gaps.items())
        print(f"sagkit train: note: config file {path} lacks {', '.join(gaps)}: they take the values runs had "
              f"before these fields existed ({values}), as the run key does; write them in the file for "
              "today's defaults", file=sys.stderr)


def no_profile_message() -> str:
    """`sagkit train` without --profile or --config: ask for one, saying what each profile costs."""
    choices = "; ".join(f"{name}: {cost}" for name, cost in PROFILE_COSTS.items())
    return f"give --profile NAME (or --config FILE): the profiles differ by hours of training. {choices}"


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if args.print_config:
        print(config.to_json())
        return 0
    check_folder(config.runs_dir, "--runs-dir")  # a --runs-dir that is a file: one line naming it
    configure_logging()
    results = train(config, resume=not args.no_resume, retrain=args.retrain, progress=not args.no_progress,
                    wait=not args.no_wait, any_world_size=args.any_world_size)
    if env_dist_info().is_main:
        print(f"run: {results.run_dir}")
        print(format_metrics(results.to_json()))
    return 0
