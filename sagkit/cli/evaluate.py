"""``sagkit eval``: a trained model on a dataset's test split, with bootstrap intervals, as lines or JSON."""

from __future__ import annotations

import argparse
import json
import sys

from sagkit.cli.common import check_at_least, configure_logging, parse_overrides
from sagkit.cli.metrics import format_metrics
from sagkit.data.overlap import overlap_text
from sagkit.evaluation.bootstrap import interval_method, run_intervals
from sagkit.runs.evaluate import evaluate_run, split_name
from sagkit.runs.per_query import retrieval_queries


def run(args: argparse.Namespace) -> int:
    check_at_least("--batch-size", args.batch_size, 1)
    check_at_least("--num-workers", args.num_workers, 0)
    configure_logging()
    changes = {"rerank": not args.no_rerank, "multi_query": True}
    for key in ("flip", "batch_size", "num_workers"):
        if getattr(args, key) is not None:
            changes[key] = getattr(args, key)
    options = parse_overrides(args.overrides) if args.overrides else None
    retrieval, dataset = evaluate_run(args.path, which=args.which, dataset=args.dataset,
                                        data_root=args.data_root, options=options, device=args.device, use_cache=not args.no_cache,
                                        allow_train_overlap=args.allow_train_overlap, **changes)
    metrics = {**retrieval.summary(), "intervals": run_intervals(retrieval_queries(retrieval).scores),
               "interval_method": interval_method(), "protocol": dataset.protocol.describe()}
    scored = int(retrieval.single.queries.valid.sum())
    if scored < len(dataset.query):  # left out of every mean: said, never hidden in the query count
        metrics["queries_without_match"] = len(dataset.query) - scored
    overlap = retrieval.train_overlap
    where = split_name(dataset.name, options or {})
    if overlap:
        metrics["train_overlap"] = overlap
        print(f"sagkit eval: warning: {overlap_text(overlap, where)}", file=sys.stderr)
    if args.json:
        print(json.dumps(metrics, indent=2, sort_keys=True))
    else:
        unscored = f" ({len(dataset.query) - scored} left out: no valid match in the gallery)" \
            if scored < len(dataset.query) else ""
        print(f"{args.path} on {dataset.name}: {len(dataset.query)} queries{unscored}, {len(dataset.gallery)} gallery "
              f"images ({dataset.protocol.describe()})")
        print(format_metrics(metrics))
        if overlap:
            print("TRAINING IDENTITIES IN THE TEST SPLIT: " + overlap_text(overlap, where))
    return 0
