"""Command line: ``python -m sagkit {train,eval,export,embed,search,synth,bench,workbook,results}`` (``--help`` on each).

Errors from bad input are printed as one line ``sagkit <command>: error: ...`` with exit status 2.

This module is longer than ~300 lines: each subcommand's flags sit next to the handler that reads them, so
that a flag and its meaning are read in one place; the handlers themselves only call the library.
"""

from __future__ import annotations

import argparse
import errno
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from sagkit.atomic import WriteError
from sagkit.choices import parse_depths
from sagkit.cli_images import add_embed, add_search

__all__ = ["main", "build_parser", "parse_overrides", "CLIError"]


class CLIError(Exception):
    """A failure the command line reports as one line (exit status 2)."""


# ---------------------------------------------------------------------- helpers
def _literal(text: str) -> Any:
    """A JSON literal when ``text`` parses as one (numbers, true/false/null, lists, dicts), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_overrides(items: Sequence[str]) -> dict:
    """``["epochs=3", "dataset_options.num_train_ids=20"]`` → ``{"epochs": 3, "dataset_options":
    {"num_train_ids": 20}}``. Values are JSON literals when possible; dotted keys fill dict fields."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set {item!r} is not of the form key=value (e.g. --set epochs=3)")
        key, value = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ValueError(f"--set {item!r} has an empty key")
        parts = key.split(".")
        target = out
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ValueError(f"--set {item!r}: {part!r} is not a dict field")
        target[parts[-1]] = _literal(value)
    return out


def _parse_depths(values: list[str]) -> tuple:
    """``--depths 4`` / ``--depths 1 2`` / ``--depths 1,2`` / ``--depths baseline`` (or no value)."""
    text = " ".join(values).strip()
    if text.lower() in ("", "none", "()"):
        return ()
    try:
        return parse_depths(text)
    except ValueError as err:
        raise ValueError(f"--depths {text!r}: {err}") from None


def _optional_path(text: Optional[str]) -> Optional[str]:
    return text if text else None


def _check_at_least(flag: str, value: Optional[int], minimum: int) -> None:
    """CLIError naming ``flag`` when an integer option is below ``minimum`` (None: not given)."""
    if value is not None and value < minimum:
        raise CLIError(f"{flag} {value} is out of range: give an integer >= {minimum}")


# ---------------------------------------------------------------------- train
_TRAIN_FLAGS = {
    # flag dest -> config field
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


def _add_train(sub) -> None:
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
    p.set_defaults(func=_cmd_train)


def config_from_args(args: argparse.Namespace):
    """The ExperimentConfig that ``train`` arguments describe."""
    from sagkit.config import ExperimentConfig, get_profile

    overrides: dict[str, Any] = {}
    for dest, field_name in _TRAIN_FLAGS.items():
        value = getattr(args, dest, None)
        if value is not None:
            overrides[field_name] = _optional_path(value) if dest == "data_root" else value
    if args.depths is not None:
        overrides["depths"] = _parse_depths(args.depths)
    set_values = parse_overrides(args.overrides)
    if args.config:
        base = ExperimentConfig.from_json(Path(args.config), stored=True)
        _note_legacy_gaps(Path(args.config))
    elif args.profile is None:
        raise CLIError(no_profile_message())
    else:
        base = get_profile(args.profile)
    merged = base.to_dict()
    if overrides.get("dataset", set_values.get("dataset", base.dataset)) != base.dataset:
        merged["dataset_options"] = {}  # the base's options are for its own dataset (--set may give new ones)
    for key, value in set_values.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    merged.update(overrides)
    return ExperimentConfig.from_dict(merged)


def _note_legacy_gaps(path: Path) -> None:
    """Say on stderr which fields a ``--config`` file lacks that take their value from before they existed."""
    from sagkit.config import ExperimentConfig

    gaps = ExperimentConfig.legacy_gaps(json.loads(path.read_text(encoding="utf-8")))
    if gaps:
        values = ", ".join(f"{k}={json.dumps(v)}" for k, v in gaps.items())
        print(f"sagkit train: note: config file {path} lacks {', '.join(gaps)}: they take the values runs had "
              f"before these fields existed ({values}), as the run key does; write them in the file for "
              "today's defaults", file=sys.stderr)


def no_profile_message() -> str:
    """`sagkit train` without --profile or --config: ask for one, saying what each profile costs."""
    from sagkit.config import PROFILE_COSTS

    choices = "; ".join(f"{name}: {cost}" for name, cost in PROFILE_COSTS.items())
    return f"give --profile NAME (or --config FILE): the profiles differ by hours of training. {choices}"


def _cmd_train(args: argparse.Namespace) -> int:
    config = config_from_args(args)  # a bad config is reported at once, before torch is imported
    if args.print_config:
        print(config.to_json())
        return 0
    from sagkit.atomic import check_folder
    from sagkit.runs import train
    from sagkit.engine.distributed import env_dist_info

    check_folder(config.runs_dir, "--runs-dir")  # a --runs-dir that is a file: one line naming it
    _configure_logging()
    results = train(config, resume=not args.no_resume, retrain=args.retrain, progress=not args.no_progress,
                    wait=not args.no_wait, any_world_size=args.any_world_size)
    if env_dist_info().is_main:
        print(f"run: {results.run_dir}")
        print(_format_metrics(results.to_json()))
    return 0


_EVALUATION_LABELS = {"single": "", "single_rr": "with re-ranking: ", "multi": "multi-query: ",
                      "multi_rr": "multi-query with re-ranking: "}


def _format_metrics(m: dict) -> str:
    """The metrics of a results dict (``Retrieval.summary``), one line per evaluation that is there, each
    followed by its bootstrap interval ``[low, high]`` when ``m["intervals"]`` has it."""
    from sagkit.evaluation.bootstrap import SUMMARY_PREFIXES
    from sagkit.report.tables import COLUMNS

    intervals = m.get("intervals") or {}
    lines = []
    for evaluation, prefix in SUMMARY_PREFIXES.items():
        if f"{prefix}rank1" in m:
            cells = []
            for key, name in COLUMNS.items():
                span = intervals.get(prefix + key)
                cells.append(f"{name} {m[prefix + key]:.2f}" + (f" [{span[0]:.2f}, {span[1]:.2f}]" if span else ""))
            lines.append(_EVALUATION_LABELS[evaluation] + "  ".join(cells))
    if intervals and m.get("interval_method"):
        method = m["interval_method"]
        lines.append(f"[low, high]: {100 * method['confidence']:g}% {method['method']} ({method['resamples']} "
                     f"resamples, seed {method['seed']})")
    return "\n".join(lines)


# ---------------------------------------------------------------------- eval
def _add_eval(sub) -> None:
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
    p.set_defaults(func=_cmd_eval)


def _cmd_eval(args: argparse.Namespace) -> int:
    from sagkit.data.overlap import overlap_text
    from sagkit.runs.evaluate import evaluate_run, split_name
    from sagkit.runs.per_query import retrieval_queries
    from sagkit.evaluation.bootstrap import interval_method, run_intervals

    _check_at_least("--batch-size", args.batch_size, 1)
    _check_at_least("--num-workers", args.num_workers, 0)
    _configure_logging()
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
        print(_format_metrics(metrics))
        if overlap:
            print("TRAINING IDENTITIES IN THE TEST SPLIT: " + overlap_text(overlap, where))
    return 0


# ---------------------------------------------------------------------- export
def _add_export(sub) -> None:
    p = sub.add_parser(
        "export",
        help="write a run's model as an ONNX file",
        description="Write the eval-mode model of a run folder as ONNX (sagkit.runs.export): normalised "
        "N×3×H×W images in (H×W the run's input size), the retrieval embedding N×D out, batch size dynamic. "
        "onnxruntime checks the file against PyTorch before it is put in place.",
    )
    p.add_argument("run", help="run folder (runs/<name>)")
    p.add_argument("--out", metavar="FILE", help="ONNX file to write (default: <run name>.onnx in the current folder)")
    p.add_argument("--opset", type=int, default=None, metavar="N",
                   help="ONNX opset version (default: DEFAULT_OPSET of sagkit.runs.export, printed with the result); "
                   "a value outside the supported range is refused, naming the range")
    p.add_argument("--which", choices=("best", "last"), default="best", help="checkpoint of the run folder")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    try:
        from sagkit.runs.export import DEFAULT_OPSET, export_run
    except ModuleNotFoundError as err:
        if err.name not in ("onnx", "onnxruntime"):
            raise
        raise CLIError(f"export needs the {err.name} package: pip install -e '.[export]'") from None
    done = export_run(args.run, args.out, DEFAULT_OPSET if args.opset is None else args.opset, args.which)
    height, width = done.input_size
    print(done.path)
    print(f"opset {done.opset}; input N×3×{height}×{width} (N dynamic), embedding N×{done.embedding_dim}; "
          f"max |onnxruntime - torch| {done.max_abs_diff:.2g}")
    return 0


# ---------------------------------------------------------------------- synth
def _add_synth(sub) -> None:
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
    p.set_defaults(func=_cmd_synth)


def _cmd_synth(args: argparse.Namespace) -> int:
    from sagkit.data import make_synthetic_reid

    _check_at_least("--seed", args.seed, 0)
    kwargs = parse_overrides(args.overrides)
    if args.overwrite:
        kwargs["overwrite"] = True
    root = make_synthetic_reid(args.root, seed=args.seed, **kwargs)
    print(root)
    return 0


# ---------------------------------------------------------------------- bench
def benchmarks_dir() -> Path:
    """``benchmarks/`` of the source checkout (next to the ``sagkit`` package)."""
    import sagkit

    return Path(sagkit.__file__).resolve().parents[1] / "benchmarks"


def find_benchmarks(folder: Optional[Path] = None) -> dict[str, Path]:
    """``{name: file}`` for ``benchmarks/bench_<name>.py``."""
    folder = folder or benchmarks_dir()
    if not folder.is_dir():
        return {}
    return {p.stem[len("bench_"):]: p for p in sorted(folder.glob("bench_*.py"))}


GPU_CHECK = "gpu"  # `sagkit bench gpu`: the library's GPU check, not a file in benchmarks/


def _add_bench(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="run the benchmarks in benchmarks/, or the GPU check (bench gpu)",
        description="Run benchmarks/bench_<name>.py (each file's main(argv)); all of them unless --only or NAME. "
        "'sagkit bench gpu' runs the GPU check instead (sagkit.diagnostics.gpu_check): training of the baseline "
        "and D1..D4 under fp16+GradScaler and bf16, with and without torch.compile, re-ranking on CUDA against "
        "float64, evaluation features under AMP against fp32, a torchrun DDP step over NCCL and a short "
        "sagkit train under torchrun (killed, resumed, reused), within a 5-minute budget (--quick: 2.5); it "
        "prints one JSON report and exits 1 when a section failed or a precision or compile mode went untried, "
        "2 without a CUDA device (docs/gpu.md).",
    )
    p.add_argument("name", nargs="?", default=None,
                   help=f"'{GPU_CHECK}' for the GPU check, or one benchmark (the same as --only NAME)")
    p.add_argument("--only", action="append", default=[], metavar="NAME",
                   help="run only this benchmark (repeatable), e.g. --only training")
    p.add_argument("--quick", action="store_true",
                   help="pass --quick to each benchmark (smaller, faster); bench gpu: fewer steps and compiled cases")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    p.set_defaults(func=_cmd_bench)


def _cmd_bench_gpu(args: argparse.Namespace) -> int:
    from sagkit.diagnostics.gpu_check import full_plan, quick_plan, require_cuda, run_gpu_check

    if args.only or args.list:
        raise CLIError(f"'bench {GPU_CHECK}' takes no --only or --list (it is one check); run it alone")
    require_cuda()
    _configure_logging()
    report = run_gpu_check(quick_plan() if args.quick else full_plan())
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.name == GPU_CHECK:
        return _cmd_bench_gpu(args)
    if args.name is not None:
        args.only = [*args.only, args.name]
    found = find_benchmarks()
    if not found:
        raise FileNotFoundError(
            f"no benchmarks found in {benchmarks_dir()} (they live in the source checkout, not the installed "
            "package)"
        )
    if args.list:
        print("\n".join(found))
        return 0
    unknown = [n for n in args.only if n not in found]
    if unknown:
        raise ValueError(f"unknown benchmark(s) {unknown}: choose from {sorted(found)}")
    status = 0
    for name in args.only or list(found):
        spec = importlib.util.spec_from_file_location(f"sagkit_bench_{name}", found[name])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if not hasattr(module, "main"):
            raise ValueError(f"{found[name]} has no main(argv) function")
        print(f"== benchmark {name} ({found[name]})", flush=True)
        rc = module.main(["--quick"] if args.quick else [])
        status = status or (rc if isinstance(rc, int) else 0)  # some benchmarks return their results dict
    return status


# ---------------------------------------------------------------------- workbook
def _add_workbook(sub) -> None:
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
    p.set_defaults(func=_cmd_workbook)


def _cmd_workbook(args: argparse.Namespace) -> int:
    from sagkit.workbook import run_workbook

    _configure_logging()
    result = run_workbook(
        dataset=args.dataset, data_root=_optional_path(args.data_root), profile=args.profile,
        device=args.device, runs_dir=args.runs_dir, figures_dir=args.figures_dir, seeds=args.seeds,
    )
    return int(result) if isinstance(result, int) else 0


# ---------------------------------------------------------------------- results
def _add_results(sub) -> None:
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
    export.set_defaults(func=_cmd_results_export)
    tabs = actions.add_parser("tables", help="rebuild Table 1, Figure 3 and Tables 3-5 from the results folder")
    tabs.add_argument("--results-dir", default="results")
    tabs.add_argument("--dataset", default="synthetic")
    tabs.add_argument("--profile", default="cpu", help="the profile whose runs make the tables (paper, cpu, tiny, bot)")
    tabs.add_argument("--seeds", default=None, help="only these seeds, e.g. 0,1,2 (default: every kept seed)")
    tabs.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      help="config fields the runs were trained with on top of the profile (as for train)")
    tabs.add_argument("--out", default=None, help="output folder (default: figures, or figures/<dataset>)")
    tabs.set_defaults(func=_cmd_results_tables)
    comp = actions.add_parser("compare", help="pair the runs of one change with the runs without it, per configuration")
    comp.add_argument("--results-dir", default="results")
    comp.add_argument("--dataset", default="synthetic")
    comp.add_argument("--profile", default="cpu", help="the profile both sides were trained from")
    comp.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", required=True,
                      help="the change: config fields of one side on top of the profile (e.g. bn_stats=shared)")
    comp.add_argument("--against", action="append", default=[], metavar="KEY=VALUE",
                      help="config fields of the other side (default: the profile as it is)")
    comp.add_argument("--out", default=None, help="also write the table as <out>.csv and <out>.md")
    comp.set_defaults(func=_cmd_results_compare)
    ctrl = actions.add_parser("controls", help="the controls table: why D4 wins (x2 input, OS16, uniform grid)")
    ctrl.add_argument("--results-dir", default="results")
    ctrl.add_argument("--dataset", default="synthetic")
    ctrl.add_argument("--profile", default="cpu", help="the profile the controls were trained from")
    ctrl.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      help="config fields the runs were trained with on top of the profile (as for train)")
    ctrl.add_argument("--out", default=None, help="output folder (default: <results-dir>/tables/<dataset>/<profile>)")
    ctrl.set_defaults(func=_cmd_results_controls)


def _cmd_results_export(args: argparse.Namespace) -> int:
    from sagkit.report.results_folder import export_runs

    written = export_runs(args.runs_dir, args.results_dir, device=args.device)
    for folder in written:
        print(folder)
    print(f"{len(written)} runs kept in {args.results_dir}")
    return 0


def _check_profile(name: str) -> None:
    """CLIError unless ``name`` is a profile (the results commands take any, not only the workbook's)."""
    from sagkit.config import PROFILES

    if name not in PROFILES:
        raise CLIError(f"--profile {name!r} is unknown: use one of {', '.join(PROFILES)}")


def _cmd_results_tables(args: argparse.Namespace) -> int:
    from sagkit.choices import parse_seeds
    from sagkit.report.results_folder import write_tables
    from sagkit.report.table_view import show_table1
    from sagkit.workbook.parameters import figures_dir_for

    _check_profile(args.profile)
    seeds = None if args.seeds is None else parse_seeds(args.seeds)

    out = Path(args.out) if args.out else figures_dir_for("figures", args.dataset)
    done = write_tables(args.results_dir, args.dataset, args.profile, out, seeds=seeds,
                        overrides=parse_overrides(args.overrides))
    print(show_table1(done["table1"], args.dataset, args.profile + "".join(f" --set {o}" for o in args.overrides)))
    print(f"{len(done['files'])} files written in {out}")
    return 0


def _cmd_results_compare(args: argparse.Namespace) -> int:
    from sagkit.report.results_folder import compare_variants
    from sagkit.report.tables import to_markdown, write_table

    _check_profile(args.profile)
    frame = compare_variants(args.results_dir, args.dataset, args.profile, parse_overrides(args.overrides),
                             parse_overrides(args.against))
    if frame.empty:
        raise CLIError(f"no configuration of {args.results_dir}/{args.dataset} was kept both with "
                       f"{' '.join(args.overrides)} and with {' '.join(args.against) or 'the profile as it is'}: "
                       "train and export both sides first")
    print(to_markdown(frame), end="")
    if args.out:
        out = Path(args.out)
        change = ", ".join(args.overrides)
        write_table(frame, out.parent, out.name, title=f"{args.dataset}: with {change} against "
                    f"{', '.join(args.against) or 'the profile as it is'} ({args.profile} profile)")
    return 0


def _cmd_results_controls(args: argparse.Namespace) -> int:
    from sagkit.report.controls import controls_summary, kept_controls
    from sagkit.report.tables import to_markdown

    _check_profile(args.profile)
    out = Path(args.out) if args.out else Path(args.results_dir) / "tables" / args.dataset / args.profile
    done = kept_controls(args.results_dir, args.dataset, args.profile, out, parse_overrides(args.overrides))
    for name in ("controls", "controls_shallow"):
        if name in done:
            print(to_markdown(controls_summary(done[name])), end="")
    print(f"{len(done['files'])} files written in {out}")
    return 0


# ---------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sagkit",
        description="Self Attention Grid (SAG) for person re-identification: train, evaluate, export to ONNX, "
        "embed and search your own images, generate synthetic data, benchmark, run the workbook, keep results "
        "and rebuild the tables from them.",
    )
    sub = parser.add_subparsers(dest="command",
                                metavar="{train,eval,export,embed,search,synth,bench,workbook,results}")
    sub.required = True
    _add_train(sub)
    _add_eval(sub)
    _add_export(sub)
    add_embed(sub)
    add_search(sub)
    _add_synth(sub)
    _add_bench(sub)
    _add_workbook(sub)
    _add_results(sub)
    return parser


def _configure_logging() -> None:
    import logging

    logger = logging.getLogger("sagkit")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m sagkit`` and of the ``sagkit`` script. Returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("sagkit: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - every failure becomes one readable line, exit status 2
        if not _is_user_error(err):
            raise
        text = _error_text(err)
        print(f"sagkit {args.command}: error: {text}", file=sys.stderr)
        return 2


def _error_text(err: BaseException) -> str:
    """The message on one line (a layout hint's lines are joined). An error raised in a DataLoader worker
    comes back with the worker's traceback in its message; only the original error's own line is kept."""
    if isinstance(err, OSError) and not isinstance(err, WriteError) and err.errno in _OS_ADVICE and err.filename:
        return " ".join(f"{err.filename}: {err.strerror}; {_OS_ADVICE[err.errno]}".split())
    text = str(err).strip()
    if text.startswith("Caught ") and "Original Traceback" in text:
        text = text.splitlines()[-1].split(": ", 1)[-1]
    return " ".join(text.split())


# A file system that refuses a write (full, over quota, read-only, not permitted): what the user can do.
_OS_ADVICE = {
    errno.ENOSPC: "the disk is full: free space there, or write elsewhere (--runs-dir, --results-dir, --out)",
    errno.EDQUOT: "the disk quota is used up: free space, or write elsewhere (--runs-dir, --results-dir, --out)",
    errno.EROFS: "the folder is read-only: write elsewhere (--runs-dir, --results-dir, --out)",
    errno.EACCES: "permission denied: make it accessible, or use another folder (--runs-dir, --results-dir, --out)",
    errno.EPERM: "not permitted: make it accessible, or use another folder (--runs-dir, --results-dir, --out)",
}


def _is_user_error(err: BaseException) -> bool:
    if isinstance(err, (CLIError, ValueError, FileNotFoundError, FileExistsError, NotADirectoryError,
                        IsADirectoryError)):
        return True  # decided without importing torch, which the classes below need
    if isinstance(err, WriteError) or isinstance(err, OSError) and err.errno in _OS_ADVICE:
        return True
    from sagkit.data import BadImageError
    from sagkit.engine.device import DeviceUnavailableError
    from sagkit.runs.lock import RunLocked
    from sagkit.engine.trainer import TrainingDiverged
    from sagkit.workbook.runner import NotebookFailed

    return isinstance(err, (BadImageError, DeviceUnavailableError, TrainingDiverged, RunLocked, NotebookFailed))
