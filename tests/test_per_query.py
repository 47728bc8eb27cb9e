"""Per-query results saved with every final test, intervals in results.json and `sagkit eval`, seeds as run
folders, and the results folder that rebuilds Table 1 and Figure 3 without the runs."""
import json

import numpy as np
import pytest

from sagkit.cli import main
from sagkit.config import get_profile
from sagkit.runs.per_query import PER_QUERY_FILE, read_per_query, write_per_query
from sagkit.runs.grids import read_grid_stats
from sagkit.evaluation.bootstrap import paired_difference
from sagkit.report.results_folder import compare_variants, export_runs, write_tables
from sagkit.workbook import open_workbook

pytestmark = pytest.mark.usefixtures("one_thread")
QUICK = {"epochs": 1, "max_train_batches": 2}


@pytest.fixture(scope="module")
def trained(data_root, tmp_path_factory):
    """A tiny workbook with seeds 0 and 1 of the baseline and of D4 trained (one epoch of two batches each)."""
    base = tmp_path_factory.mktemp("stats")
    wb = open_workbook(data_root=data_root, profile="tiny", device="cpu", runs_dir=str(base / "runs"),
                       figures_dir=str(base / "figures"), overrides=QUICK, seeds="0,1")
    runs = {(depths, seed): wb.train(depths, seed=seed) for depths in ((), (4,)) for seed in wb.seeds}
    return base, wb, runs


def test_every_final_test_writes_per_query_results_matching_results_json(trained):
    _, wb, runs = trained
    for (depths, seed), results in runs.items():
        queries = read_per_query(results["run_dir"])
        assert set(queries.scores) == {"single", "single_rr", "multi", "multi_rr"}
        for name, prefix in (("single", ""), ("single_rr", "rerank_"), ("multi", "multi_"),
                             ("multi_rr", "multi_rerank_")):
            metrics = queries.scores[name].metrics()
            for metric in ("rank1", "rank5", "rank10", "mAP", "mINP"):
                assert metrics[metric] == pytest.approx(results[prefix + metric], abs=1e-9)
        assert len(queries.query_pids) == results["num_query"] == len(queries.scores["single"])
        for key in ("rank1", "rank5", "rank10", "mAP", "rerank_rank1", "multi_rank1", "multi_rerank_mAP"):
            low, high = results["intervals"][key]
            assert low <= results[key] <= high
        assert results["interval_method"]["resamples"] >= 1000


def test_seed_zero_keeps_its_run_key_and_other_seeds_get_their_own_folder(trained, data_root):
    _, wb, runs = trained
    plain = get_profile("tiny", data_root=data_root, device="cpu", **QUICK, depths=(4,))
    assert runs[((4,), 0)]["run_key"] == plain.run_key()
    assert runs[((4,), 1)]["run_key"] == plain.replace(seed=1).run_key() != plain.run_key()
    assert len({r["run_dir"] for r in runs.values()}) == 4
    assert wb.train((4,), seed=1)["finished_at"] == runs[((4,), 1)]["finished_at"]  # reused like any run


def test_a_run_without_the_file_gets_it_once_from_its_features(trained):
    _, wb, runs = trained
    run_dir = wb.run_dir((4,), seed=1)
    before = read_per_query(run_dir)
    (run_dir / PER_QUERY_FILE).unlink()
    again = wb.per_query((4,), seed=1)
    assert (run_dir / PER_QUERY_FILE).is_file() and again.same_queries(before)
    for name in before.scores:
        assert np.array_equal(again.scores[name].ap, before.scores[name].ap, equal_nan=True)
        assert np.array_equal(again.scores[name].hits, before.scores[name].hits)


def test_a_damaged_file_is_refused_by_name(trained, tmp_path):
    _, wb, runs = trained
    (tmp_path / PER_QUERY_FILE).write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="per_query.npz is not a readable per-query file"):
        read_per_query(tmp_path)
    partial = read_per_query(runs[((), 0)]["run_dir"])
    del partial.scores["single"]
    write_per_query(tmp_path, partial)
    with pytest.raises(ValueError, match="no single-query results"):
        read_per_query(tmp_path)
    with pytest.raises(FileNotFoundError, match="predates per-query results"):
        read_per_query(tmp_path / "nothing")


def test_table1_over_seeds_and_the_results_folder_rebuild_it(trained, capsys):
    base, wb, runs = trained
    table = wb.table1().set_index("config")
    assert table.index.tolist() == ["Baseline", "D4"] and table["n_seeds"].tolist() == [2, 2]
    assert table.loc["D4", "R1"] == pytest.approx(np.mean([runs[((4,), s)]["rank1"] for s in (0, 1)]))
    assert table.loc["D4", "verdict_R1"] in ("better", "worse", "not distinguishable")
    one = open_workbook(data_root=wb.params.data_root, profile="tiny", device="cpu", runs_dir=str(base / "runs"),
                        overrides=QUICK).table1().set_index("config")  # default seeds: 0 alone
    assert one["n_seeds"].tolist() == [1, 1] and one.loc["D4", "R1"] == runs[((4,), 0)]["rank1"]

    kept = export_runs(base / "runs", base / "results")
    assert len(kept) == 4 and all(sorted(p.name for p in k.iterdir()) == ["grid_stats.json", "per_query.npz",
                                                                        "results.json"] for k in kept)
    d4 = next(k for k in kept if "-D4-" in k.name)
    assert read_grid_stats(d4)["depths"]["D4"]["num_images"] > 0
    assert read_grid_stats(next(k for k in kept if "-baseline-" in k.name))["depths"] == {}
    # the tables come from the results folder alone: the same Table 1 without the run folders
    rebuilt = write_tables(base / "results", "synthetic", "tiny", base / "rebuilt",
                           overrides=QUICK)["table1"].set_index("config")
    assert rebuilt[["R1", "mAP", "R1_low", "dmAP_high", "verdict_mAP"]].equals(
        table[["R1", "mAP", "R1_low", "dmAP_high", "verdict_mAP"]])
    assert (base / "rebuilt" / "fig3_depth_effect.png").stat().st_size > 0
    assert "R1_low" in (base / "rebuilt" / "table4_cuhk03.csv").read_text().splitlines()[0]
    capsys.readouterr()
    assert main(["results", "tables", "--results-dir", str(base / "results"), "--profile", "tiny", "--seeds", "0",
                 "--set", "epochs=1", "--set", "max_train_batches=2", "--out", str(base / "cli")]) == 0
    printed = capsys.readouterr().out
    assert "| config | seeds | R1 | mAP |" in printed and "| D4 | 0 |" in printed
    assert main(["results", "tables", "--results-dir", str(base / "results"), "--profile", "cpu"]) == 2
    assert "holds no finished run of profile 'cpu'" in capsys.readouterr().err


def test_compare_variants_pairs_a_change_with_the_runs_without_it(trained, capsys):
    base, wb, runs = trained
    shared = open_workbook(data_root=wb.params.data_root, profile="tiny", device="cpu", runs_dir=str(base / "runs"),
                           overrides={**QUICK, "bn_stats": "shared"}, seeds="0,1")
    with_change = {seed: shared.train((4,), seed=seed) for seed in (0, 1)}
    export_runs(base / "runs", base / "compared")
    frame = compare_variants(base / "compared", "synthetic", "tiny", {**QUICK, "bn_stats": "shared"}, QUICK)
    # the baseline has no upper branch: the same runs on both sides, left out
    assert frame["config"].tolist() == ["D4"] and frame.loc[0, "seeds"] == "0,1"
    assert frame.loc[0, "R1 with"] == pytest.approx(np.mean([with_change[s]["rank1"] for s in (0, 1)]))
    assert frame.loc[0, "R1 without"] == pytest.approx(np.mean([runs[((4,), s)]["rank1"] for s in (0, 1)]))
    ours = np.stack([read_per_query(with_change[s]["run_dir"]).scores["single"].values("mAP") for s in (0, 1)])
    theirs = np.stack([read_per_query(runs[((4,), s)]["run_dir"]).scores["single"].values("mAP") for s in (0, 1)])
    diff = paired_difference(ours, theirs)
    assert frame.loc[0, "dmAP"] == f"{100 * diff.estimate:+.2f} [{100 * diff.low:+.2f}, {100 * diff.high:+.2f}]"
    assert frame.loc[0, "verdict (mAP)"] == diff.verdict
    capsys.readouterr()
    assert main(["results", "compare", "--results-dir", str(base / "compared"), "--profile", "tiny",
                 *(f"--set={a}" for a in ("epochs=1", "max_train_batches=2", "bn_stats=shared")),
                 "--against", "epochs=1", "--against", "max_train_batches=2", "--out", str(base / "cmp" / "shared")]) == 0
    assert "| D4 | 0,1 |" in capsys.readouterr().out
    assert "| D4 | 0,1 |" in (base / "cmp" / "shared.md").read_text()
    assert (base / "cmp" / "shared.csv").read_text().startswith("config,seeds,R1 with")
    # a change no kept run was trained with: one clear line
    assert main(["results", "compare", "--results-dir", str(base / "compared"), "--profile", "tiny",
                 "--set", "epochs=7"]) == 2
    assert "train and export both sides first" in capsys.readouterr().err


def test_sagkit_eval_prints_intervals(trained, capsys):
    _, _, runs = trained
    results = runs[((4,), 0)]
    capsys.readouterr()
    assert main(["eval", results["run_dir"], "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert sorted(printed["intervals"]) == sorted(results["intervals"])
    for key, span in results["intervals"].items():
        assert printed["intervals"][key] == pytest.approx(span, abs=1e-9)
    assert main(["eval", results["run_dir"]]) == 0
    text = capsys.readouterr().out
    low, high = results["intervals"]["rank1"]
    assert f"R1 {results['rank1']:.2f} [{low:.2f}, {high:.2f}]" in text and "percentile bootstrap" in text


def test_results_commands_report_bad_input_in_one_line(tmp_path, capsys):
    cases = [
        (["results", "export", str(tmp_path / "no-runs")], "runs folder"),
        (["results", "tables", "--results-dir", str(tmp_path)], "export runs first"),
        (["results", "tables", "--seeds", "1,x"], "seeds must be one or more distinct non-negative integers"),
        (["results", "tables", "--profile", "huge"], "--profile 'huge' is unknown"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("sagkit results: error: ") and message in err and err.count("\n") == 1
