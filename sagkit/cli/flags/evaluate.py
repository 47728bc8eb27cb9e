"""``sagkit eval``: its flags."""

from __future__ import annotations

import argparse


ORDER = 2  # place among the subcommands of ``sagkit --help``

def add(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a checkpoint or run folder on a dataset",
        description="Evaluate a trained model (run folder or checkpoint .pt) on a dataset's query/gallery "
        "split and print rank-1/5/10 and mAP (percent), with and without re-ranking, each with its 95% percentile "
        "bootstrap interval over the queries.",
    )
    p.add_argument("path", help="run folder (runs/<name>) or checkpoint file")
    p.add_argument("--which", choices=("best", "last"), default="best", help="checkpoint of a run folder")
    p.add_argument("--dataset", help="dataset name (default: the one the model was trained on)")
    p.add_argument("--data-root", help="dataset folder (default: the training config's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="dataset option, e.g. --set split=1 (replaces the training config's options)")
    p.add_argument("--no-rerank", action="store_true", help="skip k-reciprocal re-ranking")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                   help="average features of the image and its mirror (default: the config's flip_eval)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--num-workers", type=int, default=None)
    p.add_argument("--no-cache", action="store_true", help="extract the features again instead of reading those "
                   "kept in the run folder (<run>/features/, written by training and earlier evaluations)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--allow-train-overlap", action="store_true", help="evaluate even when the test split shares "
                   "identities with the model's training split (e.g. --set split=1 on a split-0 run); the "
                   "output and the JSON (train_overlap) then say how many")
    p.set_defaults(handler="sagkit.cli.evaluate:run")
