"""python -m sagkit {train,eval,synth,bench,workbook}: help, a tiny train, eval of its run, errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sagkit.cli import bench as bench_handler, main, parse_overrides, workbook as workbook_handler

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ("train", "eval", "synth", "bench", "workbook")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_each_subcommand(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: sagkit {command}")


def test_module_entry_point_lists_the_subcommands():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "sagkit", "--help"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0
    for command in COMMANDS:
        assert command in proc.stdout


def test_overrides_are_json_literals_with_dotted_keys():
    assert parse_overrides(["epochs=3", "depths=[1,2]", "data_root=/x/y", "amp=off", "l2norm=null",
                            "dataset_options.num_train_ids=20"]) == {
        "epochs": 3, "depths": [1, 2], "data_root": "/x/y", "amp": "off", "l2norm": None,
        "dataset_options": {"num_train_ids": 20}}
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["epochs"])


def test_print_config_merges_profile_flags_and_sets(capsys):
    rc = main(["train", "--profile", "tiny", "--depths", "1", "3", "--epochs", "5", "--set", "seed=7",
               "--set", "dataset_options.num_test_ids=9", "--print-config"])
    assert rc == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["depths"] == [1, 3] and cfg["epochs"] == 5 and cfg["seed"] == 7
    assert cfg["dataset_options"]["num_test_ids"] == 9 and cfg["dataset_options"]["num_train_ids"] == 12
    main(["train", "--profile", "tiny", "--depths", "baseline", "--print-config"])
    assert json.loads(capsys.readouterr().out)["depths"] == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--profile", "tiny", "--set", "epoch=3"], "unknown ExperimentConfig field(s): 'epoch'"),
        (["train", "--profile", "nope"], "unknown profile 'nope'"),
        (["train", "--config", "missing.json"], "missing.json does not exist"),
        (["eval", "no/such/run"], "does not exist"),
        (["bench", "--only", "nope"], "unknown benchmark"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"sagkit {argv[0]}: error:") and message in err


def test_cuda_request_without_gpu(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rc = main(["train", "--profile", "tiny", "--device", "cuda", "--runs-dir", str(tmp_path)])
    assert rc == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_workbook_subcommand_calls_run_workbook(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(workbook_handler, "run_workbook", lambda **kwargs: calls.append(kwargs))
    rc = main(["workbook", "--dataset", "synthetic", "--data-root", "", "--profile", "tiny", "--device", "cpu",
               "--runs-dir", "r", "--figures-dir", "f"])
    assert rc == 0
    assert calls == [{"dataset": "synthetic", "data_root": None, "profile": "tiny", "device": "cpu",
                      "runs_dir": "r", "figures_dir": "f", "seeds": "0"}]
    assert main(["workbook", "--seeds", "0,1,2"]) == 0 and calls[-1]["seeds"] == "0,1,2"


def test_bench_lists_the_training_benchmark(capsys):
    assert main(["bench", "--list"]) == 0
    assert "training" in capsys.readouterr().out.split()


def test_synth_generates_a_dataset(tmp_path, capsys):
    root = tmp_path / "synth"
    rc = main(["synth", str(root), "--set", "num_train_ids=3", "--set", "num_test_ids=2", "--set", "images_per_id=2",
               "--set", "gallery_per_id=2", "--set", "height=32", "--set", "width=16"])
    assert rc == 0
    assert capsys.readouterr().out.strip() == str(root)
    assert (root / "manifest.json").is_file() and len(list((root / "bounding_box_train").iterdir())) == 6


@pytest.mark.slow
def test_tiny_train_then_eval_via_cli(tmp_path, capsys):
    runs = tmp_path / "runs"
    argv = ["train", "--profile", "tiny", "--depths", "baseline", "--epochs", "1", "--set", "max_train_batches=2",
            "--set", f"data_root={tmp_path / 'data'}", "--runs-dir", str(runs), "--device", "cpu", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    (run,) = list(runs.iterdir())
    assert f"run: {run}" in out and "R1 " in out and "with re-ranking" in out
    results = json.loads((run / "results.json").read_text())
    assert results["epochs"] == 1 and results["depths"] == []

    assert main(argv) == 0  # a second call reuses the finished run
    assert (run / "results.json").read_text() == json.dumps(results, indent=2, sort_keys=True) + "\n"
    capsys.readouterr()

    assert main(["eval", str(run), "--device", "cpu", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics.pop("interval_method") == results["interval_method"]
    for key, span in metrics.pop("intervals").items():  # the same per-query results, the same bootstrap
        assert span == pytest.approx(results["intervals"][key], abs=1e-9), key
    for key, value in metrics.items():
        assert value == pytest.approx(results[key], abs=1e-9), key
    assert main(["eval", str(run / "checkpoint_last.pt"), "--device", "cpu", "--no-rerank"]) == 0
    out = capsys.readouterr().out
    assert "R1 " in out and "re-ranking" not in out


def test_bench_takes_a_benchmark_whose_main_returns_its_results(tmp_path, monkeypatch):
    """bench_embed and bench_synthetic_probe return a dict from main(): `sagkit bench` must not fail on it."""
    (tmp_path / "bench_dict.py").write_text("def main(argv):\n    return {'rows': [1]}\n")
    (tmp_path / "bench_failing.py").write_text("def main(argv):\n    return 3\n")
    monkeypatch.setattr(bench_handler, "benchmarks_dir", lambda: tmp_path)
    assert main(["bench", "dict"]) == 0
    assert main(["bench", "failing"]) == 3
