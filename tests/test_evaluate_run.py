"""One way to score a finished run: the trainer's final test, `sagkit eval` and the workbook all go through
sagkit.runs.evaluate.score_test_split and give the same numbers for one tiny run."""
import json
import shutil

import pytest

from sagkit.cli import main
from sagkit.engine.feature_cache import FEATURES_DIR
from sagkit.runs import evaluate, training
from sagkit.workbook import open_workbook

pytestmark = pytest.mark.usefixtures("one_thread")


def test_trainer_cli_and_workbook_score_a_run_through_one_function(data_root, tmp_path, monkeypatch, capsys):
    calls = []
    real = evaluate.score_test_split

    def spy(model, config, dataset, **kwargs):
        calls.append(kwargs.get("cache") is not None)
        return real(model, config, dataset, **kwargs)

    monkeypatch.setattr(evaluate, "score_test_split", spy)
    monkeypatch.setattr(training, "score_test_split", spy)
    wb = open_workbook(data_root=data_root, profile="tiny", device="cpu", runs_dir=str(tmp_path / "runs"),
                       figures_dir=str(tmp_path / "fig"), overrides={"epochs": 1, "max_train_batches": 2})
    results = wb.train(())
    assert calls == [True]  # the trainer's final test, its features kept for the others
    shutil.rmtree(tmp_path / "runs" / results.name / FEATURES_DIR)  # the others extract them again
    fresh, _ = evaluate.evaluate_run(results.run_dir, device="cpu", use_cache=False)
    assert fresh.summary() == pytest.approx(results.metrics, abs=1e-9)
    assert main(["eval", results.run_dir, "--json", "--device", "cpu", "--no-cache"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert {k: printed[k] for k in results.metrics} == pytest.approx(results.metrics, abs=1e-9)
    assert wb.evaluate(()).summary() == pytest.approx(results.metrics, abs=1e-9)
    assert calls == [True, False, False, True]
