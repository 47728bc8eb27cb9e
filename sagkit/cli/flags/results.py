"""``sagkit results {export,tables,compare,controls}``: their flags."""

from __future__ import annotations


ORDER = 8  # place among the subcommands of ``sagkit --help``

def add(sub) -> None:
    p = sub.add_parser(
        "results",
        help="keep run summaries in the results folder; rebuild the tables and Figure 3 from it",
        description="export: copy the finished runs of RUNS_DIR (results.json, per_query.npz) into "
        "<results-dir>/<dataset>/<run name>/. tables: rebuild Table 1 (with seeds, intervals and the paired "
        "comparison), Figure 3 and Tables 3-5 from the results folder alone. compare: the paired difference "
        "that one change of config (--set) makes, configuration by configuration. controls: the table of "
        "D4 against its controls (x2 input, output stride 16, uniform grid) with intervals and cost.",
    )
    actions = p.add_subparsers(dest="action", metavar="{export,tables,compare,controls}")
    actions.required = True
    export = actions.add_parser("export", help="copy finished runs into the results folder")
    export.add_argument("runs_dir", metavar="RUNS_DIR", help="folder holding run folders (e.g. runs)")
    export.add_argument("--results-dir", default="results")
    export.add_argument("--device", default="cpu", help="for runs that predate per_query.npz and lack kept features")
    export.set_defaults(handler="sagkit.cli.results:run_export")
    tabs = actions.add_parser("tables", help="rebuild Table 1, Figure 3 and Tables 3-5 from the results folder")
    tabs.add_argument("--results-dir", default="results")
    tabs.add_argument("--dataset", default="synthetic")
    tabs.add_argument("--profile", default="cpu", help="the profile whose runs make the tables (paper, cpu, tiny, bot)")
    tabs.add_argument("--seeds", default=None, help="only these seeds, e.g. 0,1,2 (default: every kept seed)")
    tabs.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      help="config fields the runs were trained with on top of the profile (as for train)")
    tabs.add_argument("--out", default=None, help="output folder (default: figures, or figures/<dataset>)")
    tabs.set_defaults(handler="sagkit.cli.results:run_tables")
    comp = actions.add_parser("compare", help="pair the runs of one change with the runs without it, per configuration")
    comp.add_argument("--results-dir", default="results")
    comp.add_argument("--dataset", default="synthetic")
    comp.add_argument("--profile", default="cpu", help="the profile both sides were trained from")
    comp.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", required=True,
                      help="the change: config fields of one side on top of the profile (e.g. bn_stats=shared)")
    comp.add_argument("--against", action="append", default=[], metavar="KEY=VALUE",
                      help="config fields of the other side (default: the profile as it is)")
    comp.add_argument("--out", default=None, help="also write the table as <out>.csv and <out>.md")
    comp.set_defaults(handler="sagkit.cli.results:run_compare")
    ctrl = actions.add_parser("controls", help="the controls table: why D4 wins (x2 input, OS16, uniform grid)")
    ctrl.add_argument("--results-dir", default="results")
    ctrl.add_argument("--dataset", default="synthetic")
    ctrl.add_argument("--profile", default="cpu", help="the profile the controls were trained from")
    ctrl.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      help="config fields the runs were trained with on top of the profile (as for train)")
    ctrl.add_argument("--out", default=None, help="output folder (default: <results-dir>/tables/<dataset>/<profile>)")
    ctrl.set_defaults(handler="sagkit.cli.results:run_controls")
