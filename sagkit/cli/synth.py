"""``sagkit synth``: the synthetic dataset in a folder (``sagkit.data.make_synthetic_reid``)."""

from __future__ import annotations

import argparse

from sagkit.cli.common import check_at_least, parse_overrides
from sagkit.data import make_synthetic_reid


def run(args: argparse.Namespace) -> int:
    check_at_least("--seed", args.seed, 0)
    kwargs = parse_overrides(args.overrides)
    if args.overwrite:
        kwargs["overwrite"] = True
    root = make_synthetic_reid(args.root, seed=args.seed, **kwargs)
    print(root)
    return 0
