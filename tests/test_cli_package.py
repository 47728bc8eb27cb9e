"""The command line's shape: ``--help`` loads no torch, the dispatch table names the handler of every parser and
nothing else, the library's errors are one line; and ``run_config``, the one rule for which config a profile,
dataset, depths and seed mean, gives the configs of the three rules it replaced (CLI, workbook, results folder)."""

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sagkit.cli import main, synth as synth_handler
from sagkit.cli.parser import LIBRARY_ERRORS, build_parser, flag_modules, load
from sagkit.config import ExperimentConfig, get_profile
from sagkit.engine.device import DeviceUnavailableError
from sagkit.report.results_folder import profile_runs
from sagkit.report.controls import CONTROLS, SHALLOW_CONTROLS
from sagkit.runs.config import run_config
from sagkit.runs.record import RunResults, read_results

from record_fixtures import results_entries

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

# Every --help of the command, each in this process; then the heavy packages it imported, as JSON.
HELP_SCRIPT = """
import json, sys
from sagkit.cli import main
for argv in [[], *[verb.split() for verb in sys.argv[1:]]]:
    try:
        main([*argv, "--help"])
    except SystemExit as done:
        assert done.code == 0, argv
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "numpy", "pandas"))))
"""
VERBS = ("train", "eval", "export", "embed", "search", "synth", "bench", "workbook", "results", "results export",
         "results tables", "results compare", "results controls")


def test_help_of_every_command_imports_no_torch():
    proc = subprocess.run([sys.executable, "-c", HELP_SCRIPT, *VERBS], capture_output=True, text=True, env=ENV,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_module_entry_point_help_imports_no_torch():
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "sagkit", "--help"], capture_output=True,
                          text=True, env=ENV, cwd=ROOT, timeout=120)
    assert proc.returncode == 0 and "usage: sagkit" in proc.stdout
    imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    assert "sagkit.cli.parser" in imported and not [m for m in imported if m.split(".")[0] == "torch"]


def _leaf_parsers(parser: argparse.ArgumentParser, path: str = ""):
    """(command path, parser) of every parser without subcommands."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for action in subs:
        for name, child in action.choices.items():
            yield from _leaf_parsers(child, f"{path} {name}".strip())


HANDLERS = {path: parser.get_default("handler") for path, parser in _leaf_parsers(build_parser())}


def test_every_subcommand_names_a_handler_of_its_own():
    assert set(HANDLERS) == {"train", "eval", "export", "embed", "search", "synth", "bench", "workbook",
                             "results export", "results tables", "results compare", "results controls"}
    assert len(set(HANDLERS.values())) == len(HANDLERS)


def test_the_subcommands_keep_their_help_order():
    assert [m.__name__.rsplit(".", 1)[1] for m in flag_modules()] == [
        "train", "evaluate", "export", "images", "synth", "bench", "workbook", "results"]


@pytest.mark.parametrize("dotted", [*HANDLERS.values(), LIBRARY_ERRORS])
def test_the_handlers_name_existing_modules_and_functions(dotted):
    module, name = dotted.split(":")
    assert module.startswith("sagkit.cli.")
    target = load(dotted)
    assert callable(target) or all(issubclass(cls, Exception) for cls in target)


def test_a_library_error_is_one_line_and_another_error_a_traceback(monkeypatch, tmp_path, capsys):
    def refuse(*args, **kwargs):
        raise DeviceUnavailableError("no CUDA device here")

    monkeypatch.setattr(synth_handler, "make_synthetic_reid", refuse)
    assert main(["synth", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "sagkit synth: error: no CUDA device here\n"

    def crash(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(synth_handler, "make_synthetic_reid", crash)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["synth", str(tmp_path)])


# ---------------------------------------------------------------- run_config against the rules it replaced
def old_workbook_config(profile, dataset, depths, seed, overrides):
    """Workbook.config before run_config (data_root, runs_dir, device as the workbook passes them)."""
    fields = {"dataset": dataset, "data_root": None, "runs_dir": "runs", "device": "auto", "depths": tuple(depths)}
    if dataset != "synthetic":
        fields["dataset_options"] = {}
    fields.update(overrides)
    fields["seed"] = seed
    return get_profile(profile, **fields)


def old_results_config(profile, dataset, depths, seed, overrides):
    """profile_runs' config before run_config."""
    fields = {"dataset": dataset}
    if dataset != "synthetic":
        fields["dataset_options"] = {}
    fields.update({**overrides, "depths": depths, "seed": seed})
    return get_profile(profile, **fields)


def old_cli_config(profile, set_values, flags):
    """config_from_args before run_config: --set merged into the profile's dicts, then the flags."""
    base = get_profile(profile)
    merged = base.to_dict()
    if flags.get("dataset", set_values.get("dataset", base.dataset)) != base.dataset:
        merged["dataset_options"] = {}
    for key, value in set_values.items():
        merged[key] = {**merged[key], **value} if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else value
    merged.update(flags)
    return ExperimentConfig.from_dict(merged)


TRAINABLE = {"freeze_stages": -1, "epochs": 15, "lr_step": 10}  # the Makefile's figures lines
OVERRIDES = [{}, {"freeze_stages": 3}, {"freeze_stages": 2}, {"freeze_stages": 3, "bn_stats": "shared"},
             {"freeze_stages": 3, "sag_output": "residual"}, TRAINABLE, {**TRAINABLE, "bn_stats": "shared"},
             {"epochs": 1, "max_train_batches": 2}, {"epochs": 1, "val_ids": 0, "rerank": True},
             *[dict(control.fields) for control in (*CONTROLS, *SHALLOW_CONTROLS)]]
CASES = [(profile, dataset, depths, seed) for profile in ("cpu", "tiny", "paper", "bot")
         for dataset in ("synthetic", "cuhk01", "market1501", "msmt17")
         for depths in ((), (1,), (4,), (1, 2)) for seed in (0, 2)]


def outcome(make, *args, **kwargs):
    """The config ``make`` returns, or the message of the ValueError it raises (bot with one epoch, say)."""
    try:
        return make(*args, **kwargs)
    except ValueError as err:
        return str(err)


@pytest.mark.parametrize("overrides", OVERRIDES)
def test_run_config_is_each_old_rule(overrides):
    for profile, dataset, depths, seed in CASES:
        assert outcome(run_config, profile, dataset, depths, seed, **overrides) == outcome(
            old_results_config, profile, dataset, depths, seed, overrides)
        assert outcome(run_config, profile, dataset, depths, seed, data_root=None, runs_dir="runs", device="auto",
                       **overrides) == outcome(old_workbook_config, profile, dataset, depths, seed, overrides)
        flags = {"dataset": dataset, "depths": depths, "seed": seed}
        assert outcome(run_config, profile, **{**overrides, **flags}) == outcome(old_cli_config, profile, overrides,
                                                                               flags)


def test_dataset_options_of_another_dataset_start_empty_and_a_dict_updates_the_profiles():
    assert run_config("tiny", "msmt17", dataset_options={"include_val": True}).dataset_options == {"include_val": True}
    tiny = run_config("tiny", "synthetic", dataset_options={"num_test_ids": 9}).dataset_options
    assert tiny == {**get_profile("tiny").dataset_options, "num_test_ids": 9}  # as `train --set` has always done
    assert run_config("tiny").dataset_options == get_profile("tiny").dataset_options
    base = get_profile("cpu", dataset="cuhk03", dataset_options={"split": 1})  # e.g. a --config file
    assert run_config(base, seed=1).dataset_options == {"split": 1}
    assert run_config(base, "cuhk01").dataset_options == {}


def test_results_folder_finds_what_train_trains_with_a_dict_field(capsys):
    """`results tables --set dataset_options.KEY=V` selects the runs `train --profile P --set ...` trains."""
    argv = ["train", "--profile", "tiny", "--depths", "4", "--set", "dataset_options.num_test_ids=9", "--print-config"]
    assert main(argv) == 0
    trained = ExperimentConfig.from_json(capsys.readouterr().out)
    kept = [(RunResults.from_json(results_entries(config=trained.to_dict(), finished_at="1")), None)]
    assert profile_runs(kept, "tiny", {"dataset_options": {"num_test_ids": 9}}) == kept
    assert profile_runs(kept, "tiny") == []


def test_every_kept_run_is_found_as_before():
    """For each profile and --set of the Makefile's figures lines (and the controls'), the runs kept in results/
    that the results folder selects are those the old rule selected."""
    kept = [(dataclasses.replace(read_results(path.parent), finished_at=str(path)), None)
            for path in sorted((ROOT / "results").glob("*/*/results.json"))]
    assert kept
    def old_rule_selects(results, overrides):
        config = ExperimentConfig.from_run(dict(results.config))
        wanted = old_results_config("cpu", config.dataset, config.depths, config.seed, overrides)
        return wanted.result_fields() == config.result_fields()

    found = set()
    for overrides in OVERRIDES:
        chosen = [results.finished_at for results, _ in profile_runs(kept, "cpu", overrides)]
        assert chosen == sorted(results.finished_at for results, _ in kept if old_rule_selects(results, overrides))
        found.update(chosen)
    assert len(found) > len(kept) / 2
