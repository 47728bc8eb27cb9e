"""BatchNorm statistics shared between the two branches or kept per branch, measured on CUHK01.

Trains the cpu profile on CUHK01 split 0 (seed 0) with everything trainable for 15 epochs and the ×0.1
step after epoch 10 (baseline, D1, D4), and the cpu profile of the time, stem and stages 1-3 frozen
(``freeze_stages=3``; issue 12 later froze stages 1-2 only), for the baseline and D4. Each SAG row runs
with ``bn_stats="per_branch"`` and with "shared" (the authors' choice; cpu-profile D1 is left out). Prints
one markdown table, rank-1 with its 95% Wilson interval over the queries. Runs live in
``--runs-dir`` and are reused when finished, so an interrupted measurement resumes where it stopped.

    python benchmarks/measure_bn_stats.py --data-root ../shared/data/cuhk01 [--only trainable] [--bn-stats shared]
"""
from __future__ import annotations

import argparse
import logging
import platform
import sys

from sagkit.choices import BN_STATS
from sagkit.config import get_profile
from sagkit.runs import train
from sagkit.evaluation.intervals import rank_interval

# The CUHK01 studies' two recipes over the cpu profile, shared with measure_depths and measure_recipes:
# everything trainable for 15 epochs, and the cpu profile before issue 12 (stem and stages 1-3 frozen).
TRAINABLE = {"freeze_stages": -1, "epochs": 15, "lr_step": 10}
OLD_CPU = {"freeze_stages": 3}
# (recipe, depths, bn_stats): the SAG rows come in both variants, the baseline has no upper branch.
ROWS = (
    ("trainable", (), "per_branch"),
    ("trainable", (1,), "per_branch"),
    ("trainable", (4,), "per_branch"),
    ("cpu", (), "per_branch"),
    ("cpu", (4,), "per_branch"),
    ("trainable", (4,), "shared"),
    ("cpu", (4,), "shared"),
    ("trainable", (1,), "shared"),
)


def cpu_model() -> str:
    """The CPU's model name (as `lscpu` shows it), for the table's caption."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def row_config(recipe: str, depths: tuple, bn_stats: str, data_root: str, runs_dir: str, threads: int):
    overrides = dict(TRAINABLE) if recipe == "trainable" else dict(OLD_CPU)
    return get_profile("cpu", dataset="cuhk01", data_root=data_root, runs_dir=runs_dir, depths=depths,
                       bn_stats=bn_stats, num_threads=threads, **overrides)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True, help="the CUHK01 folder (holding campus/)")
    parser.add_argument("--runs-dir", default="runs", help="where the runs are trained and reused")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per run")
    parser.add_argument("--only", choices=("trainable", "cpu"), help="train only this recipe's rows")
    parser.add_argument("--bn-stats", choices=BN_STATS,
                        help="train only the rows with these statistics (the baseline counts as per_branch)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    lines = [f"CUHK01 split 0, seed 0, one run per row, on {cpu_model()}:", "",
             "| recipe | config | BN statistics | R1 | R1 95% interval | R5 | R10 | mAP | run time |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for recipe, depths, bn_stats in ROWS:
        if (args.only and recipe != args.only) or (args.bn_stats and bn_stats != args.bn_stats):
            continue
        config = row_config(recipe, depths, bn_stats, args.data_root, args.runs_dir, args.threads)
        r = train(config, progress=False)
        name = "D" + "-".join(map(str, depths)) if depths else "Baseline"
        stats = bn_stats if depths else "n/a"
        label = "cpu profile, stages 1-3 frozen" if recipe == "cpu" else "everything trainable, 15 epochs, step at 10"
        low, high = rank_interval(r["rank1"], r["num_query"])
        lines.append(f"| {label} | {name} | {stats} | {r['rank1']:.2f} | {low:.1f}-{high:.1f} | {r['rank5']:.2f} | "
                     f"{r['rank10']:.2f} | {r['mAP']:.2f} | {r['timings']['total_s']:.0f} s |")
        print(lines[-1], flush=True)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
