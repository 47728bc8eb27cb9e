"""benchmarks/measure_depths.py: the plan of the CUHK01 depth study, its shards, and a quick run of the script."""
import argparse
import importlib
import sys
from pathlib import Path

import pytest

from sagkit.runs.folder import read_results

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
measure_depths = importlib.import_module("measure_depths")

pytestmark = pytest.mark.usefixtures("one_thread")


def test_plan_trains_whole_seeds_and_shards_split_it_without_overlap():
    plan = measure_depths.plan(["cpu", "residual"], [0, 1])
    assert plan[:5] == [("cpu", d, 0) for d in ((), (1,), (2,), (3,), (4,))]
    assert plan[10:] == [("residual", (1,), 0), ("residual", (4,), 0), ("residual", (1,), 1), ("residual", (4,), 1)]
    assert measure_depths.plan(["shared"], [1, 2], ["D1", "D4"]) == [
        ("shared", (1,), 1), ("shared", (4,), 1), ("shared", (1,), 2), ("shared", (4,), 2)]
    halves = plan[0::2], plan[1::2]
    assert sorted(halves[0] + halves[1]) == sorted(plan) and not set(halves[0]) & set(halves[1])
    assert measure_depths.parse_shard("1/2") == (1, 2)
    for bad in ("2/2", "x", "1/0", "-1/2"):
        with pytest.raises(argparse.ArgumentTypeError, match="--shard"):
            measure_depths.parse_shard(bad)


def test_each_variant_changes_only_its_fields():
    base = measure_depths.run_config("cpu", (1,), 0, None, "runs", 1)
    assert base.dataset == "cuhk01" and base.freeze_stages == 2 and base.bn_stats == "per_branch"
    for variant, (_, fields) in measure_depths.VARIANTS.items():
        config = measure_depths.run_config(variant, (1,), 2, None, "runs", 1)
        changed = {k for k in base.to_dict() if getattr(config, k) != getattr(base, k)}
        assert changed == set(fields) | {"seed"}, variant


def test_quick_run_on_the_tiny_profile_trains_the_shard_and_prints_each_run(data_root, tmp_path, capsys):
    argv = ["--dataset", "synthetic", "--profile", "tiny", "--data-root", str(data_root), "--runs-dir",
            str(tmp_path), "--variants", "residual", "--seeds", "0", "--shard", "1/2",
            "--set", "epochs=1", "--set", "max_train_batches=2"]
    assert measure_depths.main(argv) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| residual")]
    assert len(rows) == 1 and rows[0].startswith("| residual | D4 | 0 |")  # shard 1/2 of [D1, D4]
    (run,) = [p for p in tmp_path.iterdir() if (p / "results.json").is_file()]
    results = read_results(run)
    assert results["config"]["sag_output"] == "residual" and results["depths"] == [4]
    with pytest.raises(SystemExit):
        measure_depths.main(argv[:-4] + ["--variants", "huge"])
    with pytest.raises(SystemExit):
        measure_depths.main(argv[:-4] + ["--configs", "D5"])
