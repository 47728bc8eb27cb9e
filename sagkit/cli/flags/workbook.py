"""``sagkit workbook``: its flags."""

from __future__ import annotations


ORDER = 7  # place among the subcommands of ``sagkit --help``

def add(sub) -> None:
    p = sub.add_parser(
        "workbook",
        help="run the notebooks: train the ablation and write the figures",
        description="Run the workbook (sagkit.workbook.run_workbook): trains what the notebooks need, "
        "reusing finished runs, and writes figures and tables into a working folder (not the committed ones).",
    )
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--data-root", default=None, help="dataset folder (empty: the default location)")
    p.add_argument("--profile", default="cpu", help="paper, cpu, tiny or bot")
    p.add_argument("--device", default="auto")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--figures-dir", default=None, help="where figures and tables go (default: "
                   "<runs-dir>/figures/<dataset>/, git-ignored; the committed ones come from `make figures`)")
    p.add_argument("--seeds", default="0", help="training seeds of the ablation, e.g. 0,1,2 (one run each; "
                   "Table 1 gives their mean, spread and 95%% interval)")
    p.set_defaults(handler="sagkit.cli.workbook:run")
