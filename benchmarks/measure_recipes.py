"""Training recipes measured on CUHK01 (issue 12): the baseline and D4 under each recipe, one run per cell.

Recipes, each on top of the cpu profile (``--profile``) on CUHK01 split 0, seed 0:

- ``before``: the cpu profile before issue 12, stem and stages 1-3 frozen (``freeze_stages=3``);
- ``trainable``: everything trainable (``freeze_stages=-1``), cross-entropy, 15 epochs, ×0.1 after epoch 10;
- ``triplet``: ``trainable`` plus label smoothing 0.1, the BNNeck, P×K 8×4 batches and the batch-hard triplet
  loss (margin 0.3) on the feature before the neck, with the paper's SGD (it collapses on CUHK01);
- ``triplet_adam``: ``triplet`` with BoT's optimizer, Adam at 3.5e-4 for every layer, warmed up linearly from
  1% over 2 epochs;
- ``cpu``: the profile as it is (since issue 12, stem and stages 1-2 frozen);
- ``candidate``: the fields given with ``--candidate '{"field": value, ...}'`` (a proposed new cpu profile).

Prints one line per run as it finishes (rank-1 with its 95% Wilson interval over the queries), then the
issue's table: rows are recipes, columns baseline and D4, each cell R1 / R5 / R10 / mAP and the run's wall
time. Runs live in ``--runs-dir`` and are reused when finished (an interrupted one resumes), so the
measurement can be stopped and restarted; the ``cpu`` rows are the runs ``make workbook DATASET=cuhk01``
trains. ``--dataset synthetic --profile tiny --set epochs=2`` checks the script in a minute.

    python benchmarks/measure_recipes.py --data-root ../shared/data/cuhk01 [--only triplet] [--candidate '{...}']
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from measure_bn_stats import OLD_CPU, TRAINABLE, cpu_model

from sagkit.cli import parse_overrides
from sagkit.config import PROFILES, get_profile
from sagkit.runs import train
from sagkit.evaluation.intervals import rank_interval

TRIPLET = {**TRAINABLE, "label_smoothing": 0.1, "neck": "bnneck", "sampler": "identity", "num_instances": 4,
           "losses": {"ce": 1.0, "triplet": 1.0}, "triplet_margin": 0.3}
ADAM = {"optimizer": "adam", "lr_pretrained": 3.5e-4, "lr_new": 3.5e-4, "lr_sag": 3.5e-4, "warmup_epochs": 2,
        "warmup_factor": 0.01}
RECIPES = {
    "before": ("the {profile} profile before issue 12 (stages 1-3 frozen)", OLD_CPU),
    "trainable": ("everything trainable, CE", TRAINABLE),
    "triplet": ("+ label smoothing, BNNeck, P×K, triplet (SGD)", TRIPLET),
    "triplet_adam": ("+ label smoothing, BNNeck, P×K, triplet (Adam 3.5e-4)", {**TRIPLET, **ADAM}),
    "cpu": ("today's {profile} profile", {}),
}
CONFIGS = {"baseline": (), "D4": (4,)}


def row_config(base: str, dataset: str, data_root, runs_dir: str, threads: int, depths: tuple,
               recipe: dict, overrides: dict):
    """The config of one cell: the base profile on ``dataset``, the recipe's fields, then ``--set``'s."""
    return get_profile(base, dataset=dataset, data_root=data_root, runs_dir=runs_dir, depths=depths,
                       num_threads=threads, **{**recipe, **overrides})


def cell(r: dict) -> str:
    return f"{r['rank1']:.2f} / {r['rank5']:.2f} / {r['rank10']:.2f} / {r['mAP']:.2f} ({r['timings']['total_s']:.0f} s)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None, help="the dataset folder (CUHK01: the one holding campus/)")
    parser.add_argument("--dataset", default="cuhk01", help="dataset name (default cuhk01)")
    parser.add_argument("--profile", default="cpu", choices=sorted(PROFILES), help="base profile (default cpu)")
    parser.add_argument("--runs-dir", default="runs", help="where the runs are trained and reused")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per run")
    parser.add_argument("--only", action="append", default=[], choices=[*RECIPES, "candidate"],
                        help="train only this recipe's rows (repeatable)")
    parser.add_argument("--configs", default="baseline,D4", help="comma-separated columns (default baseline,D4)")
    parser.add_argument("--candidate", default=None, metavar="JSON",
                        help="fields of a proposed cpu profile, as a JSON object, measured as the last row")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a field for every row, after the recipe's (e.g. --set epochs=2 for a quick check)")
    args = parser.parse_args(argv)
    recipes = dict(RECIPES)
    if args.candidate is not None:
        try:
            fields = json.loads(args.candidate)
        except json.JSONDecodeError as err:
            parser.error(f"--candidate is not valid JSON: {err}")
        if not isinstance(fields, dict):
            parser.error('--candidate must be a JSON object, e.g. \'{"freeze_stages": -1, "epochs": 20}\'')
        recipes["candidate"] = ("your new cpu profile (--candidate)", fields)
    elif "candidate" in args.only:
        parser.error("--only candidate needs --candidate JSON")
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    if not configs or any(c not in CONFIGS for c in configs):
        parser.error(f"--configs takes a comma-separated subset of {list(CONFIGS)}, got {args.configs!r}")
    try:
        overrides = parse_overrides(args.overrides)
        plan = [(name, column, row_config(args.profile, args.dataset, args.data_root, args.runs_dir, args.threads,
                                          CONFIGS[column], recipes[name][1], overrides))
                for name in recipes if not args.only or name in args.only for column in configs]
    except ValueError as err:
        parser.error(str(err))

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    print(f"{args.dataset}, {args.profile} profile, seed 0, one run per cell, on {cpu_model()}:", flush=True)
    print("| recipe | config | R1 | R1 95% interval | R5 | R10 | mAP | run time | run |", flush=True)
    print("|---|---|---:|---:|---:|---:|---:|---:|---|", flush=True)
    results: dict[tuple[str, str], dict] = {}
    labels = {name: label.format(profile=args.profile) for name, (label, _) in recipes.items()}
    for name, column, config in plan:
        r = results[name, column] = train(config, progress=False)
        low, high = rank_interval(r["rank1"], r["num_query"])
        print(f"| {labels[name]} | {column} | {r['rank1']:.2f} | {low:.1f}-{high:.1f} | {r['rank5']:.2f} | "
              f"{r['rank10']:.2f} | {r['mAP']:.2f} | {r['timings']['total_s']:.0f} s | {r['name']} |", flush=True)
    print("\nR1 / R5 / R10 / mAP (wall time of the run):\n")
    print("| recipe | " + " | ".join(configs) + " |")
    print("|---|" + "---|" * len(configs))
    for name in dict.fromkeys(n for n, _, _ in plan):
        print(f"| {labels[name]} | " + " | ".join(cell(results[name, c]) for c in configs) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
