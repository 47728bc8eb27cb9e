"""The depth question on real pedestrians (issue 13): baseline and D1..D4 on CUHK01 with several seeds, and the
variants that say why a depth helps or not.

Every run is the cpu profile on CUHK01 split 0 with one change per variant:

- ``cpu``: the profile as it is (stem and stages 1-2 frozen, 6 epochs), per-branch BatchNorm statistics; the
  three-seed study kept in ``results/cuhk01/`` was trained before issue 12, with ``--set freeze_stages=3``;
- ``shared``: one set of BatchNorm running statistics for both branches (the authors' code);
- ``residual``: ``sag_output="residual"``, the lower map plus the attended map flows on after a SAG module;
- ``trainable``: everything trainable for 15 epochs (×0.1 after epoch 10), so that the stages after a D1-D3
  module can adapt to the attended map (4-8× the cost of a ``cpu`` run);
- ``scale2``, ``stride16``, ``uniform``: the controls of issue 22 (``sagkit.report.controls``): the baseline on the
  input upsampled 2× (``input_scale=2``), the baseline at output stride 16 (``last_stride=1``), and D1-D4
  with a uniform grid (``attention="uniform"``).

Runs live in ``--runs-dir`` and are reused when finished (an interrupted one resumes), so the measurement can
be stopped, restarted, or split over processes: ``--shard 0/2`` and ``--shard 1/2`` train alternate runs of the
plan, one process per core. Each finished run prints one line; the tables with seeds, intervals and the
paired comparison come from the results folder (``python -m sagkit results export`` then ``tables``; the
README section "The depth question on CUHK01" gives the commands).

    python benchmarks/measure_depths.py --data-root ../shared/data/cuhk01 [--variants cpu,residual] [--seeds 0,1,2]

``--dataset synthetic --profile tiny --set epochs=1`` checks the script in a minute.
"""
from __future__ import annotations

import argparse
import logging
import sys

from measure_bn_stats import TRAINABLE, cpu_model

from sagkit.choices import parse_seeds
from sagkit.cli import parse_overrides
from sagkit.config import PROFILES, get_profile
from sagkit.runs import train
from sagkit.evaluation.intervals import rank_interval
from sagkit.report.tables import config_label

# Variant -> (depth configurations, fields over the cpu profile).
VARIANTS = {
    "cpu": (((), (1,), (2,), (3,), (4,)), {}),
    "shared": (((1,), (2,), (3,), (4,)), {"bn_stats": "shared"}),
    "residual": (((1,), (4,)), {"sag_output": "residual"}),
    "trainable": (((), (1,), (2,), (3,), (4,)), TRAINABLE),
    # The controls of issue 22 (sagkit.report.controls): what D4 changes besides the grid.
    "scale2": (((),), {"input_scale": 2}),
    "stride16": (((),), {"last_stride": 1}),
    "uniform": (((4,), (1,), (2,), (3,)), {"attention": "uniform"}),
}


def plan(variants: list[str], seeds: list[int], configs: list[str] | None = None) -> list[tuple[str, tuple, int]]:
    """(variant, depths, seed) in the order they are trained: seed by seed within a variant, so that an
    interrupted measurement has whole seeds; ``configs`` (labels such as "Baseline", "D4"): only those."""
    return [(v, depths, seed) for v in variants for seed in seeds for depths in VARIANTS[v][0]
            if configs is None or config_label(depths) in configs]


def run_config(variant: str, depths: tuple, seed: int, data_root, runs_dir: str, threads: int,
               dataset: str = "cuhk01", profile: str = "cpu", overrides: dict | None = None):
    """One run of the plan: ``profile`` on ``dataset``, the variant's fields, then ``overrides``."""
    return get_profile(profile, dataset=dataset, data_root=data_root, runs_dir=runs_dir, depths=depths, seed=seed,
                       num_threads=threads, **{**VARIANTS[variant][1], **(overrides or {})})


def parse_shard(text: str) -> tuple[int, int]:
    """``"k/n"`` -> (k, n) with 0 <= k < n."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard takes k/n, e.g. 0/2; got {text!r}") from None
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"--shard k/n needs 0 <= k < n; got {text!r}")
    return k, n


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None, help="the dataset folder (CUHK01: the one holding campus/)")
    parser.add_argument("--dataset", default="cuhk01", help="dataset name (default cuhk01)")
    parser.add_argument("--profile", default="cpu", choices=sorted(PROFILES), help="base profile (default cpu)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a field for every run, after the variant's (e.g. --set epochs=1 for a quick check)")
    parser.add_argument("--runs-dir", default="runs", help="where the runs are trained and reused")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per run")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated subset of {list(VARIANTS)} (default all, in that order)")
    parser.add_argument("--seeds", default="0,1,2", help="training seeds, e.g. 0,1,2 (default)")
    parser.add_argument("--configs", default=None, help="comma-separated subset of Baseline,D1,D2,D3,D4 (default all)")
    parser.add_argument("--shard", type=parse_shard, default=(0, 1), metavar="K/N",
                        help="train only every N-th run of the plan, starting at the K-th (default 0/1: all)")
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not variants or any(v not in VARIANTS for v in variants):
        parser.error(f"--variants takes a comma-separated subset of {list(VARIANTS)}, got {args.variants!r}")
    try:
        seeds = parse_seeds(args.seeds)
        overrides = parse_overrides(args.overrides)
    except ValueError as err:
        parser.error(str(err))
    configs = None if args.configs is None else [c.strip() for c in args.configs.split(",") if c.strip()]
    known = {config_label(d) for depths, _ in VARIANTS.values() for d in depths}
    if configs is not None and (not configs or any(c not in known for c in configs)):
        parser.error(f"--configs takes a comma-separated subset of {sorted(known)}, got {args.configs!r}")
    k, n = args.shard
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    print(f"{args.dataset}, {args.profile} profile, on {cpu_model()}:", flush=True)
    print("| variant | config | seed | R1 | R1 95% interval | mAP | run time | run |", flush=True)
    print("|---|---|---:|---:|---:|---:|---:|---|", flush=True)
    for variant, depths, seed in plan(variants, seeds, configs)[k::n]:
        config = run_config(variant, depths, seed, args.data_root, args.runs_dir, args.threads, args.dataset,
                            args.profile, overrides)
        r = train(config, progress=False)
        low, high = rank_interval(r["rank1"], r["num_query"])
        print(f"| {variant} | {config_label(depths)} | {seed} | {r['rank1']:.2f} | {low:.1f}-{high:.1f} | {r['mAP']:.2f} | "
              f"{r['timings']['total_s']:.0f} s | {r['name']} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
