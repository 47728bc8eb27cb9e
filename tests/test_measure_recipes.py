"""benchmarks/measure_recipes.py: each recipe changes only its own fields, and a quick run prints its table."""
import importlib
import sys
from pathlib import Path

import pytest

from sagkit.runs.folder import read_results

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
measure_recipes = importlib.import_module("measure_recipes")

pytestmark = pytest.mark.usefixtures("one_thread")


def test_each_recipe_changes_only_its_fields_over_the_cpu_profile():
    base = measure_recipes.row_config("cpu", "cuhk01", None, "runs", 1, (4,), {}, {})
    assert base.freeze_stages == 2 and base.optimizer == "sgd"
    for name, (_, fields) in measure_recipes.RECIPES.items():
        config = measure_recipes.row_config("cpu", "cuhk01", None, "runs", 1, (4,), fields, {})
        changed = {k for k in base.to_dict() if getattr(config, k) != getattr(base, k)}
        assert changed <= set(fields) and all(getattr(config, k) == v for k, v in fields.items()), name
    # The "before" row is the run kept in results/ from the cpu profile of the time.
    before = measure_recipes.row_config("cpu", "cuhk01", None, "runs", 1, (), measure_recipes.RECIPES["before"][1], {})
    assert before.run_name() == "cuhk01-efficientnet_lite0-baseline-cd486a58fd"
    assert read_results(ROOT / "results" / "cuhk01" / before.run_name())["config"]["freeze_stages"] == 3
    adam = measure_recipes.RECIPES["triplet_adam"][1]
    assert adam["optimizer"] == "adam" and adam["lr_pretrained"] == adam["lr_new"] == adam["lr_sag"] == 3.5e-4
    # --set comes last: it overrides the recipe's own value.
    quick = measure_recipes.row_config("cpu", "cuhk01", None, "runs", 1, (4,), adam, {"warmup_epochs": 1})
    assert quick.warmup_epochs == 1 and quick.optimizer == "adam"


def test_quick_run_prints_one_line_per_run_and_the_table(data_root, tmp_path, capsys):
    argv = ["--dataset", "synthetic", "--profile", "tiny", "--data-root", str(data_root), "--runs-dir",
            str(tmp_path), "--only", "triplet_adam", "--configs", "baseline",
            "--set", "epochs=3", "--set", "lr_step=2", "--set", "max_train_batches=2"]
    assert measure_recipes.main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    label = "+ label smoothing, BNNeck, P×K, triplet (Adam 3.5e-4)"
    assert len([line for line in out if line.startswith(f"| {label} | baseline |")]) == 1
    assert len([line for line in out if line.startswith(f"| {label} | ") and " s) |" in line]) == 1
    (run,) = [p for p in tmp_path.iterdir() if (p / "results.json").is_file()]
    config = read_results(run)["config"]
    assert config["optimizer"] == "adam" and config["losses"] == {"ce": 1.0, "triplet": 1.0}
    assert config["warmup_epochs"] == 2 and config["sampler"] == "identity"
    with pytest.raises(SystemExit):
        measure_recipes.main(argv + ["--configs", "D5"])
    with pytest.raises(SystemExit):
        measure_recipes.main(argv + ["--candidate", "[1, 2]"])


def test_measure_bn_stats_keeps_reading_the_runs_of_its_table():
    # benchmarks/measure_bn_stats.py measured the cpu profile of its time (stages 1-3 frozen): its rows must
    # still name the runs kept in results/, whatever the profile is today.
    measure_bn_stats = importlib.import_module("measure_bn_stats")
    results = ROOT / "results" / "cuhk01"
    for recipe, depths, bn_stats in measure_bn_stats.ROWS:
        config = measure_bn_stats.row_config(recipe, depths, bn_stats, None, "runs", 1)
        kept = read_results(results / config.run_name())
        assert kept is not None, (recipe, depths, bn_stats)
        assert kept["config"]["freeze_stages"] == (3 if recipe == "cpu" else -1)
