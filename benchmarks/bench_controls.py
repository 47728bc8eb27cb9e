"""Cost of D4 and its controls (issue 22): parameters, forward GFLOPs per image and training img/s on this CPU.

Each control is the ``cpu`` profile's model (EfficientNet-Lite0, stem and stages 1-2 frozen, channels_last)
with the control's fields (``sagkit.report.controls``). Training speed is timed on random 160×64 batches of 32 with
SGD (forward, backward, update; no data loading), one intra-op thread. The controls are timed in interleaved
rounds (each round times every control once) and the median per control is kept, so that a change of load on
a shared machine hits every control alike. The result goes to ``results/bench/controls_speed.json``, which
``sagkit results controls`` reads for the table's "train img/s" column (with the CPU named).

    python benchmarks/bench_controls.py [--rounds 5] [--steps 3] [--shallow] [--out results/bench/controls_speed.json]

``--quick`` (what ``sagkit bench --quick`` passes): one round of one step, written only where ``--out`` says.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script or by `sagkit bench`, which loads it by path
from bench_training import seconds_per_step  # noqa: E402
from measure_bn_stats import cpu_model  # noqa: E402

from sagkit.atomic import atomic_write_text
from sagkit.config import get_profile
from sagkit.report.controls import CONTROLS, SHALLOW_CONTROLS
from sagkit.engine.builders import build_model, model_cost

NUM_CLASSES = 485  # CUHK01's training identities under split 0 (the classifier's size barely matters)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (default 5)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per control and round (default 3)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--shallow", action="store_true", help="also D1-D3 and their uniform controls")
    parser.add_argument("--out", default=None, help="default results/bench/controls_speed.json (none with --quick)")
    parser.add_argument("--quick", action="store_true", help="one round of one step; nothing written without --out")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.steps = 1, 1
    elif args.out is None:
        args.out = "results/bench/controls_speed.json"
    if args.rounds < 1 or args.steps < 1 or args.batch < 2:
        parser.error("--rounds and --steps must be >= 1 and --batch >= 2")
    torch.set_num_threads(1)
    controls = CONTROLS + (SHALLOW_CONTROLS[1:] if args.shallow else ())
    base = get_profile("cpu")
    models, costs = {}, {}
    for control in controls:
        config = base.replace(depths=control.depths, **control.fields)
        model = build_model(config, NUM_CLASSES, pretrained=False).to(memory_format=torch.channels_last).train()
        models[control.label] = (model, config)
        costs[control.label] = model_cost(config, NUM_CLASSES)
    times: dict[str, list[float]] = {label: [] for label in models}
    for round_ in range(args.rounds):
        for label, (model, config) in models.items():
            times[label].append(seconds_per_step(model, args.batch, config.height, config.width, NUM_CLASSES,
                                                 steps=args.steps, warmup=1, channels_last=True))
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    rows = {label: {"img_per_s": args.batch / statistics.median(times[label]), **costs[label]} for label in models}
    report = {"cpu": cpu_model(), "threads": 1, "batch": args.batch, "profile": "cpu", "height": base.height,
              "width": base.width, "rounds": args.rounds, "steps": args.steps, "controls": rows}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(args.out), json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(f"cpu profile on {report['cpu']}, 1 thread, batch {args.batch}, median of {args.rounds} interleaved rounds")
    print("| control | params (M) | forward GFLOPs | train img/s |")
    print("|---|---:|---:|---:|")
    for label, row in rows.items():
        print(f"| {label} | {row['params_M']:.2f} | {row['gflops']:.3f} | {row['img_per_s']:.1f} |")
    print(f"written to {args.out}" if args.out else "not written (--quick without --out)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
