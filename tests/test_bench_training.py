"""benchmarks/bench_training.py: the rows of a --freeze run and its argument errors (tiny input, one step)."""
import importlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
bench_training = importlib.import_module("bench_training")

pytestmark = pytest.mark.usefixtures("one_thread")


def test_freeze_runs_lite0_with_each_setting_and_baseline_ratios_of_one():
    result = bench_training.run(True, 2, 1, 64, 32, freezes=[3, 1])
    rows = result["rows"]
    assert [(r["frozen"], r["depths"]) for r in rows] == [(3, "baseline"), (3, "D4"), (1, "baseline"), (1, "D4")]
    assert all(r["backbone"] == "efficientnet_lite0" and r["img_per_s"] > 0 for r in rows)
    assert rows[0]["time_ratio"] == rows[2]["time_ratio"] == 1.0
    assert rows[3]["gflop_per_img"] > rows[1]["gflop_per_img"]  # more stages train: more backward FLOPs
    assert result["loader"]["cpu_profile_D4_step_img_per_s"] == rows[1]["img_per_s"]


@pytest.mark.parametrize("value", ["x", "5", ""])
def test_freeze_takes_integers_from_minus_one_to_four(value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench_training.main(["--freeze", value])
    assert exit_info.value.code == 2 and "--freeze takes comma-separated integers" in capsys.readouterr().err
