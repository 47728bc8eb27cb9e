"""``sagkit synth``: its flags."""

from __future__ import annotations


ORDER = 5  # place among the subcommands of ``sagkit --help``

def add(sub) -> None:
    p = sub.add_parser(
        "synth",
        help="generate the synthetic dataset (Market-1501 layout)",
        description="Generate the synthetic re-id dataset into ROOT (Market-1501 layout); an identical "
        "existing one is reused.",
    )
    p.add_argument("root", help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="size option, e.g. --set num_train_ids=50 --set images_per_id=4")
    p.add_argument("--overwrite", action="store_true", help="replace a different synthetic set that sagkit wrote in "
                   "ROOT (only the files its manifest.json lists; a folder holding other files is refused)")
    p.set_defaults(handler="sagkit.cli.synth:run")
