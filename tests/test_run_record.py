"""RunResults (sagkit.runs.record): results.json as one typed record that old files load into unchanged."""
import json
from pathlib import Path

import pytest

from record_fixtures import results_entries
from sagkit.runs.record import RESULTS_FILE, RunResults, is_complete, read_results, write_results

KEPT = sorted((Path(__file__).resolve().parents[1] / "results").rglob(RESULTS_FILE))


def test_every_kept_results_json_reads_back_and_is_written_byte_for_byte(tmp_path):
    assert len(KEPT) > 50
    for path in KEPT:
        results = read_results(path.parent)
        assert results.to_json() == json.loads(path.read_text()), path
        write_results(tmp_path, results)
        assert (tmp_path / RESULTS_FILE).read_bytes() == path.read_bytes(), path


def test_a_file_from_before_the_later_entries_loads_and_round_trips_without_them(tmp_path):
    old = results_entries(config={"seed": 3, "epochs": 1}, depths=[2, 4])
    del old["world_size"]
    path = tmp_path / RESULTS_FILE
    path.write_text(json.dumps(old))
    results = read_results(tmp_path)
    assert results.processes == 1 and results.world_size is None and results.seed == 3
    assert results.depths == (2, 4) and results.intervals is None and results.cmc is None
    assert results.evaluations() == {"single": {"rank1": 50.0, "rank5": 60.0, "rank10": 70.0, "mAP": 40.0}}
    assert results.to_json() == old and "world_size" not in results.to_json()
    assert is_complete(tmp_path)


def test_a_new_file_keeps_every_evaluation_and_an_entry_it_does_not_know():
    entries = results_entries(world_size=2, rerank_rank1=51.0, rerank_rank5=61.0, rerank_rank10=71.0,
                              rerank_mAP=41.0, multi_mINP=9.0, intervals={"rank1": [40.0, 60.0]}, future={"x": 1})
    results = RunResults.from_json(entries)
    assert results.processes == 2 and results.extra == {"future": {"x": 1}}
    assert results.metrics["multi_mINP"] == 9.0 and set(results.evaluations()) == {"single", "single_rr"}
    assert RunResults.from_json(results.to_json()) == results and results.to_json() == entries
    assert results["rank1"] == 50.0 and dict(results) == entries  # read-only mapping view, as train() returned


@pytest.mark.parametrize("key", ["num_query", "config", "run_key", "mAP"])
def test_a_results_json_missing_a_required_entry_is_one_error_naming_the_file_and_entry(key, tmp_path):
    entries = results_entries()
    del entries[key]
    (tmp_path / RESULTS_FILE).write_text(json.dumps(entries))
    with pytest.raises(ValueError, match=rf"{tmp_path / RESULTS_FILE}: entry '{key}' is missing: restore it"):
        read_results(tmp_path)


def test_a_value_of_the_wrong_type_is_named():
    with pytest.raises(ValueError, match=r"x.json: entry 'num_classes' is True, not a whole number"):
        RunResults.from_json(results_entries(num_classes=True), "x.json")
    with pytest.raises(ValueError, match=r"x.json: entry 'best_epoch' is 1.5, not a whole number"):
        RunResults.from_json(results_entries(best_epoch=1.5), "x.json")
    assert read_results(Path("/nonexistent")) is None
