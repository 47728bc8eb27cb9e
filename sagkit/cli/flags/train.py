"""``sagkit train``: its flags, and which config field each sets."""

from __future__ import annotations

# flag dest -> config field
CONFIG_FLAGS = {
    "dataset": "dataset",
    "data_root": "data_root",
    "backbone": "backbone",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr_new": "lr_new",
    "lr_pretrained": "lr_pretrained",
    "device": "device",
    "amp": "amp",
    "runs_dir": "runs_dir",
    "name": "name",
    "seed": "seed",
    "num_workers": "num_workers",
    "freeze_stages": "freeze_stages",
}


ORDER = 1  # place among the subcommands of ``sagkit --help``

def add(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a config (JSON file) or a profile",
        description="Train one experiment into <runs-dir>/<name>/. A finished run with the same config is "
        "reused unless --retrain; an interrupted one is resumed. While another process trains the same run, "
        "this one waits for it and then reuses its results (--no-wait: exit instead). Under torchrun it "
        "trains with DDP: torchrun --nproc_per_node=N -m sagkit train ...",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--config", metavar="FILE", help="JSON config file (e.g. a run's config.json); a field it "
                     "lacks takes the value runs had before the field existed (LEGACY_VALUES), and is named")
    src.add_argument("--profile", default=None, help="named profile: paper, cpu, tiny or bot (one of --profile "
                     "and --config is required)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field; VALUE is a JSON literal when possible "
                   "(--set epochs=3 --set depths=[1,2] --set dataset_options.num_train_ids=20)")
    p.add_argument("--depths", nargs="*", metavar="D", help="SAG depths, e.g. --depths 4 or --depths 1 2; "
                   "'--depths baseline' (or no value) for the baseline")
    p.add_argument("--dataset", help="market1501, dukemtmc, cuhk03, cuhk01, msmt17 or synthetic")
    p.add_argument("--data-root", help="dataset folder")
    p.add_argument("--backbone", help="resnet18, resnet34, resnet50 or efficientnet_lite0")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr-new", type=float, help="learning rate of new layers (SAG, head)")
    p.add_argument("--lr-pretrained", type=float, help="learning rate of pre-trained layers")
    p.add_argument("--freeze-stages", type=int, help="-1 none, 0 stem, k stem and stages 1..k")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--amp", help="auto, bf16, fp16 or off")
    p.add_argument("--runs-dir", help="folder holding run folders (default runs)")
    p.add_argument("--name", help="run folder name (default: derived from the config)")
    p.add_argument("--seed", type=int)
    p.add_argument("--num-workers", type=int)
    p.add_argument("--retrain", action="store_true", help="train again even if a finished run exists")
    p.add_argument("--no-resume", action="store_true", help="start from scratch instead of resuming")
    p.add_argument("--any-world-size", action="store_true", help="reuse a finished run even when it was "
                   "trained by another number of processes (refused otherwise)")
    p.add_argument("--no-wait", action="store_true", help="when another process is training this run, exit "
                   "at once (status 2) instead of waiting for it and reusing its results; a lock left by a "
                   "killed process is taken over either way")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    p.set_defaults(handler="sagkit.cli.train:run")
